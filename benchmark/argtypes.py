"""Argument types and the parser class shared by the CLI and the ablation plugins: every bad value is one
line naming the flag, the value and what was expected (exit 2)."""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import types
import typing


def run_reporting(prog: str, func, args) -> int:
    """``func(args)``, with the errors of bad input (a missing or unreadable file, a bad key or value, failed
    jobs) printed as one line, ``<prog>: error: ...``, exit status 2, instead of a traceback; an interrupt as one
    line too, exit status 128 + the signal."""
    from .checkpoints import CheckpointError
    from .data import ImageReadError
    from .sweep import JobsFailed
    try:
        return func(args)
    except (CheckpointError, KeyError, ValueError, FileNotFoundError, ImageReadError, OSError, JobsFailed) as exc:
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        if isinstance(exc, OSError) and not isinstance(exc, FileNotFoundError):
            msg = f"{exc.filename or ''}: {exc.strerror or exc}".lstrip(": ")
        print(f"{prog}: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:      # Ctrl-C; a training's TrainingInterrupted says what it saved
        print(f"{prog}: {str(exc) or 'interrupted'}", file=sys.stderr)
        return 128 + getattr(exc, "signum", 2)


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors: the flag, the value and what was expected (exit 2), no usage block."""

    def error(self, message):
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        sys.exit(2)


def int_at_least(lo: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer >= {lo}, got {text!r}")
        if value < lo:
            raise argparse.ArgumentTypeError(f"expected an integer >= {lo}, got {value}")
        return value
    parse.__name__ = f"integer >= {lo}"
    return parse


def scale(text: str) -> int:
    from .config import SCALES
    try:
        value = int(text)
    except ValueError:
        value = None
    if value not in SCALES:
        raise argparse.ArgumentTypeError(f"expected one of {', '.join(map(str, SCALES))}, got {text!r}")
    return value


def scales(text: str) -> tuple[int, ...]:
    parts = [t.strip() for t in text.split(",") if t.strip()]
    if not parts:
        raise argparse.ArgumentTypeError(f"expected comma-separated scales like 2,3,4, got {text!r}")
    return tuple(scale(t) for t in parts)


def seed_list(text: str) -> tuple[int, ...]:
    try:
        seeds = tuple(int(t) for t in text.split(",") if t.strip())
    except ValueError:
        seeds = ()
    if not seeds or len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"expected distinct comma-separated integers like 1,2,3, got {text!r}")
    return seeds


def name_list(text: str) -> str:
    if not [t for t in text.split(",") if t.strip()]:
        raise argparse.ArgumentTypeError(f"expected comma-separated names like Set5,Set14, got {text!r}")
    return text


def subset_of(allowed: tuple[str, ...]):
    """A comma-separated subset of ``allowed``, as a tuple in the order given."""
    def parse(text: str) -> tuple[str, ...]:
        picked = tuple(t.strip() for t in text.split(",") if t.strip())
        bad = [t for t in picked if t not in allowed]
        if not picked or bad:
            raise argparse.ArgumentTypeError(f"expected some of {','.join(allowed)}, got {text!r}")
        return picked
    return parse


def device(text: str) -> str:
    import re

    import torch
    if not re.fullmatch(r"cpu|cuda(:\d+)?", text):
        raise argparse.ArgumentTypeError(f"expected cpu, cuda or cuda:N, got {text!r}")
    if text.startswith("cuda") and not torch.cuda.is_available():
        raise argparse.ArgumentTypeError(f"{text!r}: CUDA is not available here (torch {torch.__version__}); "
                                         f"use --device cpu or install a CUDA build of torch (README)")
    return text


def names(text: str) -> tuple[str, ...]:
    """Comma-separated names -> a tuple (empty text: an empty tuple)."""
    return tuple(t.strip() for t in (text or "").split(",") if t.strip())


def key_values(items) -> dict:
    """Repeated KEY=VALUE flags -> a dict (values parsed as JSON when they can be: 2, true, [3,5])."""
    out = {}
    for item in items or []:
        if "=" not in item:
            raise ValueError(f"--set expects key=value, got {item!r}")
        k, v = item.split("=", 1)
        try:
            out[k] = json.loads(v)
        except json.JSONDecodeError:
            out[k] = v
    return out


def _flag_type(f: dataclasses.Field, hint):
    kind, lo = f.metadata.get("kind"), f.metadata.get("minimum")
    if kind == "scale":
        return scale
    if kind == "device":
        return device
    base = [a for a in typing.get_args(hint) if a is not type(None)] if typing.get_origin(hint) in (
        typing.Union, types.UnionType) else [hint]
    t = base[0]
    if typing.get_origin(t) is tuple:
        return names
    if t is int:
        return int_at_least(lo) if lo is not None else int
    return t


def add_config_flags(parser: argparse.ArgumentParser, cls, skip=(), defaults: dict | None = None) -> list[str]:
    """One flag per field of the dataclass ``cls`` (``--field-name``, or the field's ``flag`` metadata; a bool
    that defaults to True becomes ``--no-field``), with the field's help, type and choices. ``defaults``
    replaces a field's default for this command. Returns the names of the fields that got a flag, so that
    the parsed values go back with :func:`config_values`: the dataclass is the one place they are written."""
    hints = typing.get_type_hints(cls)
    added = []
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        default = (defaults or {}).get(f.name, f.default if f.default is not dataclasses.MISSING else None)
        flag = f.metadata.get("flag", "--" + f.name.replace("_", "-"))
        helptext = f.metadata.get("help", "")
        if hints[f.name] is bool:
            if default:
                parser.add_argument("--no-" + f.name.replace("_", "-"), dest=f.name, action="store_false",
                                    help="turn off " + helptext)
            else:
                parser.add_argument(flag, dest=f.name, action="store_true", help=helptext)
        elif f.metadata.get("kind") == "key_values":
            parser.add_argument(flag, dest=f.name, action="append", metavar="KEY=VALUE", help=helptext)
        else:
            if isinstance(default, tuple):
                default = ",".join(default)
            parser.add_argument(flag, dest=f.name, type=_flag_type(f, hints[f.name]), default=default,
                                metavar=flag.lstrip("-").replace("-", "_").upper(),
                                choices=f.metadata.get("choices"), help=helptext + (
                                    f" (default {default})" if default not in (None, "") else ""))
        added.append(f.name)
    return added


def config_values(cls, args: argparse.Namespace, fields: list[str]) -> dict:
    """The parsed values of ``add_config_flags``'s fields, as the dataclass ``cls`` takes them."""
    kinds = {f.name: f.metadata.get("kind") for f in dataclasses.fields(cls)}
    return {name: key_values(getattr(args, name)) if kinds[name] == "key_values" else getattr(args, name)
            for name in fields}
