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


def cmd_evaluate(args) -> int:
    from .evaluate import evaluate
    store = None if args.no_store else Path(args.out) / "store"
    res = evaluate(args.model, args.datasets, args.scale, args.protocol, weights=args.weights,
                   self_ensemble=args.self_ensemble, data_root=args.data_root, store=store, device=args.device,
                   tile=args.tile, save_dir=Path(args.out) / "sr" if args.save_images else None,
                   deploy=args.deploy, progress=not args.quiet)
    cols = ["model", "scale", "dataset", "protocol", "psnr", "ssim", "n_images", "self_ensemble", "deploy",
            "forward_s"]
    summary = res.summary[cols] if not res.summary.empty else res.summary
    emit(summary, args.format, floatfmt=".4f")
    if not args.quiet:
        print(f"wall {res.wall_s:.2f} s, forward {res.images['forward_s'].sum() if not res.images.empty else 0:.2f} s",
              file=sys.stderr)
    for path, why in res.skipped:
        print(f"skipped {path}: {why}", file=sys.stderr)
    if res.skipped:
        print(f"{len(res.skipped)} image(s) skipped", file=sys.stderr)
    return 0 if not res.images.empty else 1


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

    s = sub.add_parser("evaluate", help="PSNR/SSIM on the test sets under a protocol")
    s.add_argument("--model", default=None, help="registry name (e.g. awsrn-s, bicubic); omit to use --weights alone")
    s.add_argument("--scale", type=_scales, default=(2,), help="scale or comma-separated scales")
    s.add_argument("--weights", default=None, help="checkpoint (official, super-image or native)")
    s.add_argument("--datasets", default="Set5,Set14,B100,Urban100")
    s.add_argument("--protocol", default="matlab", choices=["matlab", "rgb", "super-image"])
    s.add_argument("--self-ensemble", action="store_true", help="average the 8 flips/rotations (the paper's '+')")
    s.add_argument("--deploy", action="store_true", help="evaluate the reparameterized deploy form")
    s.add_argument("--data-root", default=None, help="data root (default: $AWSRN_DATA)")
    s.add_argument("--out", default="results", help="results folder; the store lives in <out>/store")
    s.add_argument("--no-store", action="store_true", help="do not read or write the results store")
    s.add_argument("--save-images", action="store_true", help="write SR images to <out>/sr/")
    s.add_argument("--device", default="cpu")
    s.add_argument("--tile", type=int, default=None, help="LR tile size (default: tile only large images)")
    s.add_argument("--format", **fmt)
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=cmd_evaluate)

    s = sub.add_parser("convert", help="write any readable checkpoint in the native safetensors format")
    s.add_argument("input")
    s.add_argument("output")
    s.set_defaults(func=cmd_convert)
    return p


def main(argv=None) -> int:
    from .checkpoints import CheckpointError
    from .data import ImageReadError
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (CheckpointError, KeyError, ValueError, FileNotFoundError, ImageReadError) as exc:
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"awsrn-bench {args.command}: error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
