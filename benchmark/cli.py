"""``awsrn-bench``: the command-line interface. Each subcommand parses its flags and calls the
Python API; nothing is computed here."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd


def _scales(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"--scales expects comma-separated integers like 2,3,4, got {text!r}")


def emit(df: pd.DataFrame, fmt: str, out: str | None = None, floatfmt: str = ".4f") -> None:
    """Print (or write to ``out``) a DataFrame as table, csv, md or latex."""
    if fmt == "csv":
        text = df.to_csv(index=False)
    elif fmt == "md":
        text = df.to_markdown(index=False, floatfmt=floatfmt) + "\n"
    elif fmt == "latex":
        text = df.to_latex(index=False, float_format=lambda v: format(v, floatfmt), na_rep="--")
    else:
        text = df.to_string(index=False) + "\n"
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(text)
    else:
        sys.stdout.write(text)


def cmd_list(args) -> int:
    from .registry import get_variant, list_variants
    rows = [{"name": n, "description": get_variant(n).description} for n in list_variants(args.pattern)]
    if not rows:
        print(f"no variant matches {args.pattern!r}", file=sys.stderr)
        return 1
    emit(pd.DataFrame(rows), args.format)
    return 0


def cmd_complexity(args) -> int:
    from .complexity import complexity_table
    emit(complexity_table(args.pattern, args.scales), args.format, args.out, floatfmt=".3f")
    return 0


def cmd_convert(args) -> int:
    from .checkpoints import convert
    ck = convert(args.input, args.output)
    print(f"wrote {args.output} ({ck.config.scale}x, from {args.input})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="awsrn-bench", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    fmt = dict(choices=["table", "csv", "md", "latex"], default="table")

    s = sub.add_parser("list", help="list registered variants")
    s.add_argument("pattern", nargs="?", default="*", help="shell-style wildcard, e.g. 'awsrn-s*'")
    s.add_argument("--format", **fmt)
    s.set_defaults(func=cmd_list)

    s = sub.add_parser("complexity", help="params and Multi-Adds next to the paper's")
    s.add_argument("pattern", nargs="?", default=None, help="wildcard (default: the four released variants)")
    s.add_argument("--scales", type=_scales, default=(2, 3, 4, 8))
    s.add_argument("--format", **fmt)
    s.add_argument("--out", default=None, help="write to this file instead of stdout")
    s.set_defaults(func=cmd_complexity)

    s = sub.add_parser("convert", help="write any readable checkpoint in the native safetensors format")
    s.add_argument("input")
    s.add_argument("output")
    s.set_defaults(func=cmd_convert)
    return p


def main(argv=None) -> int:
    from .checkpoints import CheckpointError
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (CheckpointError, KeyError, ValueError, FileNotFoundError) as exc:
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"awsrn-bench {args.command}: error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
