"""Argument types and the parser class shared by the CLI and the ablation plugins: every bad value is one
line naming the flag, the value and what was expected (exit 2)."""
from __future__ import annotations

import argparse
import sys


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


def device(text: str) -> str:
    import re

    import torch
    if not re.fullmatch(r"cpu|cuda(:\d+)?", text):
        raise argparse.ArgumentTypeError(f"expected cpu, cuda or cuda:N, got {text!r}")
    if text.startswith("cuda") and not torch.cuda.is_available():
        raise argparse.ArgumentTypeError(f"{text!r}: CUDA is not available here (torch {torch.__version__}); "
                                         f"use --device cpu or install a CUDA build of torch (README)")
    return text
