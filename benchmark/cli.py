"""``awsrn-bench``: the command-line interface. Each subcommand parses its flags and calls the
Python API; nothing is computed here."""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path

import pandas as pd


from .argtypes import Parser as _Parser
from .argtypes import add_config_flags, config_values, key_values, names, run_reporting
from .argtypes import device as _device
from .argtypes import int_at_least as _int_at_least
from .argtypes import name_list as _name_list
from .argtypes import scale as _scale
from .argtypes import scales as _scales
from .argtypes import subset_of as _subset_of
from .results import emit


def _out_dir(path: str | Path, flag: str = "--out") -> Path:
    """A folder the command can write into (created if missing), or one clear error."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{flag} {path}: is a file; expected a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"{flag} {path}: cannot create the folder ({exc.strerror})") from exc
    if not os.access(path, os.W_OK):
        raise ValueError(f"{flag} {path}: the folder is not writable")
    return path


def cmd_list(args) -> int:
    from .registry import get_variant, list_variants, pretrained_scales
    # pretrained: the scales with a trained checkpoint (create_model(..., pretrained=True), evaluate --pretrained)
    rows = [{"model": n, "pretrained": ",".join(map(str, pretrained_scales(n))),
             "description": get_variant(n).description} for n in list_variants(args.pattern)]
    if not rows:
        print(f"no variant matches {args.pattern!r}", file=sys.stderr)
        return 1
    emit(pd.DataFrame(rows), args.format)
    return 0


def cmd_complexity(args) -> int:
    from .complexity import complexity_table
    df = complexity_table(args.pattern, args.scales)
    if args.out:
        from .results import write_table
        write_table(df, _out_dir(args.out) / "complexity.csv")
    emit(df, args.format, floatfmt=".3f")
    return 0


def cmd_convert(args) -> int:
    from .checkpoints import convert
    ck = convert(args.input, args.output)
    scale = f"x{ck.config.scale}" if ck.config.scale else "multi-scale"
    print(f"wrote {args.output} ({scale}, from {args.input})")
    return 0


def cmd_evaluate(args) -> int:
    from .evaluate import evaluate
    from .registry import get_variant
    if args.model is not None:
        supported = get_variant(args.model).scales
        bad = [s for s in args.scales if s not in supported]
        if bad:
            raise ValueError(f"--scales {bad[0]}: {args.model} runs at scales {', '.join(map(str, supported))}")
    if not args.no_store or args.save_images:
        _out_dir(args.out)
    store = None if args.no_store else Path(args.out) / "store"
    if args.pretrained:
        from .registry import pretrained_weights
        if args.model is None:
            raise ValueError("--pretrained needs --model (the registry name whose trained checkpoints to grade)")
        for scale in args.scales:      # every scale's file checked before any grading starts
            pretrained_weights(args.model, scale, args.data_root)
    res = evaluate(args.model, args.datasets, args.scales, args.protocol, weights=args.weights,
                   self_ensemble=args.self_ensemble, data_root=args.data_root, store=store, device=args.device,
                   tile=args.tile, save_dir=Path(args.out) / "sr" if args.save_images else None,
                   deploy=args.deploy, progress=not args.quiet, graph=args.graph, pretrained=args.pretrained)
    cols = ["model", "scale", "dataset", "protocol", "psnr", "ssim", "n_images", "self_ensemble", "deploy",
            "forward_s"]
    summary = res.summary[cols] if not res.summary.empty else res.summary
    emit(summary, args.format, floatfmt=".4f")
    if not args.quiet:
        print(f"wall {res.wall_s:.2f} s, forward {res.images['forward_s'].sum() if not res.images.empty else 0:.2f} s",
              file=sys.stderr)
    for r in res.summary.itertuples():
        if getattr(r, "n_nonfinite", 0):
            print(f"warning: {r.dataset} x{r.scale}: {r.n_nonfinite} image(s) gave a non-finite PSNR (SR equal to "
                  f"HR) and are left out of the mean", file=sys.stderr)
    for path, why in res.skipped:
        print(f"skipped {path}: {why}", file=sys.stderr)
    if res.skipped:
        print(f"{len(res.skipped)} image(s) skipped", file=sys.stderr)
    return 0 if not res.images.empty else 1


def cmd_upscale(args) -> int:
    from .evaluate import model_for
    from .upscale import upscale
    if args.model is None and (args.pretrained or args.weights is None):
        raise ValueError("upscale needs --model NAME with --pretrained, or --weights FILE (with or without --model)")
    if args.model is not None and not args.pretrained and args.weights is None:
        raise ValueError(f"upscale needs weights for {args.model}: --pretrained (its trained weights) or "
                         "--weights FILE; a model with random weights upscales nothing worth keeping")
    net, name, _ = model_for(args.model, args.scale, args.weights, args.deploy, args.pretrained)
    out = _out_dir(args.out)

    def report(path, what):
        if isinstance(what, Exception):
            print(f"skipped: {what}", file=sys.stderr)
        elif not args.quiet:
            print(f"{path} -> {what}", file=sys.stderr)

    res = upscale(net, args.scale, args.inputs, out, device=args.device, self_ensemble=args.self_ensemble,
                  tile=args.tile, progress=report)
    print(f"{name} x{args.scale}: {len(res.written)} image(s) written to {out}"
          + (f", {len(res.failed)} skipped" if res.failed else ""), file=sys.stderr)
    return 0 if not res.failed else 1


def cmd_compare(args) -> int:
    from .compare import compare
    _out_dir(args.out)
    table = compare(args.a, args.b, args.scale, datasets=names(args.datasets), protocol=args.protocol,
                    data_root=args.data_root, store=Path(args.out) / "store", device=args.device,
                    n_resamples=args.resamples, seed=args.seed, progress=not args.quiet)
    if args.format == "csv":    # the documented columns: per set and all images pooled, B minus A
        table = table[table.dataset != "all-sets-equal"]
        emit(table[["dataset", "metric", "n_images", "mean_diff", "ci_low", "ci_high", "p_value"]], "csv")
    else:
        emit(table[["dataset", "metric", "n_images", "mean_a", "mean_b", "mean_diff", "ci_low", "ci_high",
                    "p_value", "weighting"]], args.format, floatfmt=".4f")
    if not args.quiet:
        print(f"B - A, B = {args.b}, A = {args.a}; 95% paired bootstrap (BCa, {args.resamples} resamples, seed "
              f"{args.seed}); p: Wilcoxon signed-rank (all-sets-equal: sign-flip permutation)", file=sys.stderr)
    return 0


def cmd_sweep(args) -> int:
    from .sweep import EVAL_COLUMNS, load_spec, report, sweep
    jobs = load_spec(args.spec)        # a bad spec is one line and exit 2, before anything runs
    _out_dir(args.out)
    rows, outcomes = sweep(jobs, args.out, backend=args.backend, address=args.address, workers=args.workers,
                           data_root=args.data_root)
    graded = rows[rows.get("dataset", pd.Series(dtype=str)).fillna("").astype(str) != ""] if not rows.empty else rows
    table = graded.reindex(columns=EVAL_COLUMNS) if not graded.empty else pd.DataFrame(columns=EVAL_COLUMNS)
    emit(table, args.format, floatfmt=".4f")
    return 1 if report(outcomes, jobs) else 0


def cmd_bench(args) -> int:
    from . import bench
    from .results import write_table
    log = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731   (stdout holds the table)
    if args.what == "gpu":
        lr_hw = _lr_hw(args.lr_size)
        written = bench.device_check(args.out, names(args.data), args.data_root, args.device, names(args.datasets),
                                     args.pattern, args.scales, lr_hw, args.repeats, args.eager_iters,
                                     args.fast_iters, key_values(args.set), log=log, stages=args.stages,
                                     eval_scale=args.eval_scale, batch=args.batch, patch=args.patch)
        emit(pd.DataFrame([{"table": k, "path": str(v)} for k, v in written.items()]), args.format)
        return 0
    if args.what == "eval-overhead":
        df = bench.eval_overhead(names(args.datasets), args.data_root, args.device, args.threads, scale=args.scale)
        cols = ["lr_cache", "n_images", "wall_s", "forward_s", "wall_over_forward", "device", "threads"]
        name = "eval_overhead"
    else:
        path = bench.table_path(_out_dir(args.out), "train_throughput", args.device) if args.out else None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        df = bench.train_throughput(names(args.data), args.device, args.model, args.scale, args.eager_iters,
                                    args.fast_iters, overrides=key_values(args.set), log=log,
                                    on_row=(lambda d: write_table(d, path)) if path is not None else None,
                                    batch=args.batch, patch=args.patch)
        cols = [c for c in df.columns if c not in ("model", "scale", "torch_version")]
        name = "train_throughput"
    if args.out:
        path = bench.table_path(_out_dir(args.out), name, args.device)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_table(df, path)
    emit(df[cols], args.format, floatfmt=".3f")
    return 0


def _lr_hw(text: str | None):
    if not text:
        return None
    try:
        return tuple(int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"--lr-size expects HxW like 180x320, got {text!r}") from None


def _latency_spec(args, deploy=None):
    from .latency import LatencySpec
    lr_hw = _lr_hw(args.lr_size)
    return LatencySpec(preset="custom" if lr_hw else args.preset, lr_hw=lr_hw, batch=args.batch, device=args.device,
                       precision=args.precision, channels_last=args.channels_last, compile=args.compile,
                       deploy=args.deploy if deploy is None else deploy, warmup=args.warmup, repeats=args.repeats,
                       threads=args.threads, graph=getattr(args, "graph", False),
                       bandwidth_gbs=getattr(args, "bandwidth_gbs", None))


def cmd_latency(args) -> int:
    from .latency import latency_table
    store = None if args.no_store else str(Path(args.out) / "store")
    df = latency_table(args.pattern, args.scales, _latency_spec(args), store)
    cols = ["model", "scale", "device", "preset", "lr_h", "lr_w", "precision", "deploy", "channels_last", "graph",
            "latency_ms", "p90_ms", "mean_ms", "std_ms", "peak_mem_mib", "traffic_mb", "floor_ms", "x_floor",
            "threads", "repeats"]
    emit(df[cols], args.format, floatfmt=".2f")
    return 0


def cmd_side_by_side(args) -> int:
    from .latency import side_by_side
    from .results import write_table
    df = side_by_side(spec=_latency_spec(args, deploy=False))
    if args.save:
        write_table(df, Path(args.out) / "latency_side_by_side.csv")
        (Path(args.out) / "latency_side_by_side.md").write_text(df.to_markdown(index=False, floatfmt=".2f") + "\n")
    emit(df, args.format, floatfmt=".2f")
    return 0


def cmd_train(args) -> int:
    from .train import TrainConfig, TrainingInterrupted, train
    out = args.out or f"runs/{args.model}-x{args.scale}"
    _out_dir(out)
    cfg = TrainConfig(out=out, **config_values(TrainConfig, args, args.config_fields))
    try:
        summary = train(cfg, resume=args.resume, progress=not args.quiet)
    except TrainingInterrupted as exc:      # saved; run_reporting prints the one line and exits 128 + signal
        print(json.dumps(exc.summary))
        raise
    print(json.dumps(summary))
    if args.datasets and int(os.environ.get("RANK", "0")) == 0:
        from .evaluate import evaluate
        res = evaluate(None, args.datasets, [args.scale], weights=Path(cfg.out) / "model.safetensors",
                       data_root=args.data_root, store=Path(cfg.out) / "store", progress=not args.quiet)
        from .results import write_table
        write_table(res.summary, Path(cfg.out) / "eval.csv")
        emit(res.summary[["dataset", "scale", "psnr", "ssim", "n_images"]], "table")
    return 0


# per-run recipe keys a --runs item may set (MODEL:SCALE[:PATCH][:KEY=VALUE...]); the rest come from the flags
_RUN_KEYS = {"patch": int, "batch": int, "lr": float, "train_subset": int, "hr_rescale": int, "min_hr_side": int,
             "ema": float, "loss": str, "name": str}


def run_spec(item: str, args=None) -> dict:
    """One --runs item -> {model, scale, name and the _RUN_KEYS (unset ones from ``args``, else None)};
    ValueError names the item and what is expected. scripts/gpu_carry.py reads the names with it."""
    parts = item.split(":")
    expected = f"--runs: {item!r} is not MODEL:SCALE[:PATCH][:KEY=VALUE...] (keys: {', '.join(_RUN_KEYS)})"
    if len(parts) < 2 or not parts[1].isdigit():
        raise ValueError(expected)
    spec = {"model": parts[0], "scale": int(parts[1]), "name": None,
            **{k: getattr(args, k, None) for k in _RUN_KEYS if k != "name"}}
    for i, part in enumerate(parts[2:]):
        if i == 0 and part.isdigit():
            spec["patch"] = int(part)
            continue
        key, _, value = part.partition("=")
        if key not in _RUN_KEYS or not value:
            raise ValueError(expected)
        try:
            spec[key] = _RUN_KEYS[key](value)
        except ValueError:
            raise ValueError(f"--runs: {item!r}: {key}={value!r} is not {_RUN_KEYS[key].__name__}") from None
    spec["name"] = spec["name"] or f"{spec['model']}-x{spec['scale']}"
    return spec


def cmd_train_group(args) -> int:
    from .complexity import count_params
    from .registry import create_model
    from .train import TrainConfig, TrainingInterrupted, train_group
    common = config_values(TrainConfig, args, args.config_fields)
    cfgs = []
    for item in names(args.runs):
        try:
            spec = run_spec(item, args)
        except ValueError as e:
            print(e, file=sys.stderr)
            return 2
        model, scale, name = spec["model"], spec["scale"], spec["name"]
        prev = Path(args.continue_from) / name / "model.safetensors" if args.continue_from else None
        big = args.compact_above is not None and count_params(create_model(model, scale=scale)) > args.compact_above
        cfgs.append(TrainConfig(**{**common, **{k: spec[k] for k in _RUN_KEYS if k != "name"},
                                   "save_dtype": "float16" if big else common["save_dtype"]},
                                model=model, scale=scale, out=str(Path(args.out) / name),
                                init_from=str(prev) if prev is not None and prev.is_file() else None))
    _out_dir(args.out)
    from .results import write_table
    try:
        df = train_group(cfgs, time_budget_s=args.time_budget, resume=args.resume, progress=not args.quiet)
    except TrainingInterrupted as exc:      # saved; run_reporting prints the one line and exits 128 + signal
        write_table(exc.summary, Path(args.out) / "group.csv")
        raise
    write_table(df, Path(args.out) / "group.csv")
    emit(df, "table")
    return 0


def cmd_reproduce(args) -> int:
    from .reproduce import reproduce
    _out_dir(args.out)
    reproduce(args.data_root, args.out, args.checkpoints, latency_repeats=args.latency_repeats,
              progress=not args.quiet, fresh=args.fresh)
    return 0


def cmd_ablate(args) -> int:
    """An ablation plugin (benchmark.plugins): its module is imported only now, and parses its own flags."""
    from .plugins import run_cli
    return run_cli(args.plugin, args.args)


def _add_latency_flags(s, preset="720p"):
    s.add_argument("--device", default="cpu", type=_device)
    s.add_argument("--preset", default=preset, choices=["720p", "ntire"])
    s.add_argument("--lr-size", default=None, help="custom LR size HxW (overrides --preset)")
    s.add_argument("--batch", type=_int_at_least(1), default=1)
    s.add_argument("--precision", default="fp32", choices=["fp32", "fp16", "bf16"])
    s.add_argument("--channels-last", action="store_true")
    s.add_argument("--compile", action="store_true", help="torch.compile the model first")
    s.add_argument("--warmup", type=_int_at_least(0), default=10)
    s.add_argument("--repeats", type=_int_at_least(1), default=50)
    s.add_argument("--threads", type=_int_at_least(1), default=None, help="CPU threads (pinned for the run)")
    s.add_argument("--out", default="results")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="awsrn-bench", description="Benchmarks and ablations of AWSRN: the paper's tables, every variant "
                "measured the same way (PSNR/SSIM, parameters, Multi-Adds, latency), the AWMS ablations.")
    sub = p.add_subparsers(dest="command", required=True)
    from .train import TrainConfig     # its fields are the flags of train, train-group and bench's step size
    fmt = dict(choices=["table", "csv", "md", "latex"], default="table")

    s = sub.add_parser("list", help="list registered variants")
    s.add_argument("pattern", nargs="?", default="*", help="shell-style wildcard, e.g. 'awsrn-s*'")
    s.add_argument("--format", **fmt)
    s.set_defaults(func=cmd_list)

    s = sub.add_parser("complexity", help="params and Multi-Adds next to the paper's")
    s.add_argument("pattern", nargs="?", default=None, help="wildcard (default: the four released variants)")
    s.add_argument("--scales", type=_scales, default=(2, 3, 4, 8))
    s.add_argument("--format", **fmt)
    s.add_argument("--out", default=None, help="results folder: also write <out>/complexity.csv")
    s.set_defaults(func=cmd_complexity)

    s = sub.add_parser("evaluate", help="PSNR/SSIM on the test sets under a protocol")
    s.add_argument("--model", default=None, help="registry name (e.g. awsrn-s, bicubic); omit to use --weights alone")
    s.add_argument("--scales", type=_scales, default=(2,), help="comma-separated scales, e.g. 2,3,4")
    w = s.add_mutually_exclusive_group()
    w.add_argument("--weights", default=None, help="checkpoint (official, super-image or native)")
    w.add_argument("--pretrained", action="store_true",
                   help="the trained weights of --model at each scale: this project's checkpoint "
                        "(checkpoints/<model>-x<scale>; $AWSRN_CHECKPOINTS sets the folder), a peer's official file")
    s.add_argument("--datasets", default="Set5,Set14,B100,Urban100", type=_name_list)
    s.add_argument("--protocol", default="matlab", choices=["matlab", "basicsr", "rgb", "super-image"])
    s.add_argument("--self-ensemble", action="store_true", help="average the 8 flips/rotations (the paper's '+')")
    s.add_argument("--deploy", action="store_true", help="evaluate the reparameterized deploy form")
    s.add_argument("--graph", action="store_true", help="CUDA: replay each forward from a CUDA graph captured per "
                   "input shape (pays where shapes repeat: tiles)")
    s.add_argument("--data-root", default=None, help="data root (default: $AWSRN_DATA)")
    s.add_argument("--out", default="results", help="results folder; the store lives in <out>/store")
    s.add_argument("--no-store", action="store_true", help="do not read or write the results store")
    s.add_argument("--save-images", action="store_true", help="write SR images to <out>/sr/")
    s.add_argument("--device", default="cpu", type=_device)
    s.add_argument("--tile", type=_int_at_least(16), default=None, help="LR tile size (default: tile only large images)")
    s.add_argument("--format", **fmt)
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=cmd_evaluate)

    s = sub.add_parser("upscale", help="super-resolve your own images (files or folders) with a trained model")
    s.add_argument("inputs", nargs="+", help="image files or folders of images")
    s.add_argument("--model", default=None, help="registry name (e.g. awsrn-s); omit to use --weights alone")
    s.add_argument("--scale", type=int, required=True, choices=[2, 3, 4, 8])
    w = s.add_mutually_exclusive_group()
    w.add_argument("--weights", default=None, help="checkpoint (official, super-image or native)")
    w.add_argument("--pretrained", action="store_true",
                   help="the trained weights of --model at --scale: this project's checkpoint "
                        "(checkpoints/<model>-x<scale>), a peer's official file")
    s.add_argument("--out", default="sr", help="folder for <stem>_x<scale>.png (default sr)")
    s.add_argument("--self-ensemble", action="store_true", help="average the 8 flips/rotations (the paper's '+')")
    s.add_argument("--deploy", action="store_true", help="run the reparameterized deploy form")
    s.add_argument("--device", default="cpu", type=_device)
    s.add_argument("--tile", type=_int_at_least(16), default=None, help="LR tile size (default: tile only large images)")
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=cmd_upscale)

    s = sub.add_parser("compare", help="B minus A on the same images: paired 95%% intervals and p-values")
    s.add_argument("a", help="NAME, NAME=WEIGHTS or NAME=pretrained (this project's checkpoint at --scale), e.g. "
                             "bicubic or awsrn-s=checkpoints/awsrn-s-x4/model.safetensors")
    s.add_argument("b", help="NAME, NAME=WEIGHTS or NAME=pretrained")
    s.add_argument("--scale", type=_scale, required=True)
    s.add_argument("--datasets", default="Set5", type=_name_list)
    s.add_argument("--protocol", default="matlab", choices=["matlab", "basicsr", "rgb", "super-image"])
    s.add_argument("--data-root", default=None, help="data root (default: $AWSRN_DATA)")
    s.add_argument("--out", default="results", help="results folder; the store lives in <out>/store")
    s.add_argument("--device", default="cpu", type=_device)
    s.add_argument("--resamples", type=_int_at_least(100), default=9999, help="bootstrap/permutation resamples")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--format", **fmt)
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=cmd_compare)

    s = sub.add_parser("bench", help="the suite's own speed: evaluate overhead, training throughput, the GPU check")
    kinds = s.add_subparsers(dest="what", required=True)
    out_help = "results folder: writes <out>/<table>_cpu.csv, or <out>/gpu/<table>_gpu.csv on a GPU"
    k = kinds.add_parser("eval-overhead", help="evaluate() wall time over the sum of forward times (AWSRN-S x2)")
    k.add_argument("--datasets", default="Set5,Set14,B100,Urban100", type=_name_list)
    k.add_argument("--threads", type=_int_at_least(1), default=None)
    k.add_argument("--scale", type=_scale, default=2, help="AWSRN-S at this scale (default 2, issue 10's measure)")
    k.add_argument("--out", default=None, help=out_help + " (default: print only)")
    k = kinds.add_parser("train-throughput", help="training step: eager vs fast (and the CUDA graph) in one process")
    k.add_argument("--model", default="awsrn-s")
    k.add_argument("--scale", type=_scale, default=4)
    k.add_argument("--out", default=None, help=out_help + " (default: print only)")
    k = kinds.add_parser("gpu", help="the GPU check as one run: train throughput, eval overhead, latency forms",
                         description="Writes <out>/gpu/{train_throughput,eval_overhead,latency}_gpu.csv; with "
                                     "--device cpu (and tiny settings) it is the dry run of the same script.")
    k.add_argument("--datasets", default="Set5,Set14,B100,Urban100", type=_name_list, help="for eval overhead")
    k.add_argument("--eval-scale", type=_scale, default=2, help="eval overhead: AWSRN-S at this scale")
    k.add_argument("pattern", nargs="?", default=None, help="latency: wildcard (default: the four released variants)")
    k.add_argument("--scales", type=_scales, default=(2, 3, 4), help="latency scales")
    k.add_argument("--lr-size", default=None, help="latency: LR size HxW instead of the 720p preset")
    k.add_argument("--repeats", type=_int_at_least(1), default=50, help="latency repeats per form")
    stages = ("train_throughput", "eval_overhead", "latency")      # benchmark.bench.STAGES (torch-free here)
    k.add_argument("--stages", type=_subset_of(stages), default=stages,
                   help="comma-separated, some of " + ",".join(stages) + " (default: all, in that order)")
    k.add_argument("--out", default="results", help=out_help)
    for name in ("train-throughput", "gpu"):
        k = kinds.choices[name]
        k.add_argument("--data", required=True, help="training folders, comma-separated")
        k.add_argument("--eager-iters", type=_int_at_least(1), default=300)
        k.add_argument("--fast-iters", type=_int_at_least(2), default=2000)
        k.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config field (repeatable)")
        # the step's size, with train's flags and defaults (TrainConfig is where they are written)
        add_config_flags(k, TrainConfig, skip=tuple(f.name for f in dataclasses.fields(TrainConfig)
                                                    if f.name not in ("batch", "patch")))
    for k in kinds.choices.values():
        k.add_argument("--device", default="cuda" if k.prog.endswith(" gpu") else "cpu", type=_device)
        k.add_argument("--data-root", default=None)
        k.add_argument("--format", **fmt)
    s.set_defaults(func=cmd_bench)

    s = sub.add_parser("sweep", help="run the evaluate/train jobs of a YAML or JSON spec, locally or on Ray")
    s.add_argument("spec", help="file with a list 'jobs'; each has kind: evaluate|train and that command's keys")
    s.add_argument("--backend", default="local", choices=["local", "ray", "group"])
    s.add_argument("--address", default=None, help="join this Ray cluster (default: start a local Ray)")
    s.add_argument("--workers", type=_int_at_least(1), default=None, help="local Ray: CPUs, i.e. jobs at once")
    s.add_argument("--out", default="results", help="results folder; the store and the ledger live in <out>/store")
    s.add_argument("--data-root", default=None, help="data root for jobs that do not name one (default: $AWSRN_DATA)")
    s.add_argument("--format", **fmt)
    s.set_defaults(func=cmd_sweep)

    s = sub.add_parser("latency", help="forward latency (CUDA events on GPU, perf_counter on CPU)")
    s.add_argument("pattern", nargs="?", default=None, help="wildcard (default: the four released variants)")
    s.add_argument("--scales", type=_scales, default=(2, 3, 4))
    s.add_argument("--deploy", action="store_true", help="time the reparameterized deploy form")
    s.add_argument("--graph", action="store_true", help="CUDA: time replays of the forward captured as a CUDA graph")
    s.add_argument("--bandwidth-gbs", type=float, default=None,
                   help="memory bandwidth for the traffic floor (default: known GPUs by name; none on a CPU)")
    s.add_argument("--no-store", action="store_true")
    s.add_argument("--format", **fmt)
    _add_latency_flags(s)
    s.set_defaults(func=cmd_latency)

    s = sub.add_parser("side-by-side", help="training form vs deploy form vs super-image (S x2, L x4)")
    s.add_argument("--save", action="store_true", help="write <out>/latency_side_by_side.{csv,md}")
    s.add_argument("--format", **fmt)
    _add_latency_flags(s)
    s.set_defaults(func=cmd_side_by_side)

    s = sub.add_parser("train", help="train a registry variant (L1, Adam, the paper's schedule)",
                       description="The flags are the fields of benchmark.train.TrainConfig.")
    s.add_argument("--out", default=None, help="run folder (default runs/<model>-x<scale>)")
    s.set_defaults(config_fields=add_config_flags(s, TrainConfig, skip=("out",), defaults={"data": None}))
    s.add_argument("--resume", action="store_true", help="continue from <out>/checkpoint.pt")
    s.add_argument("--datasets", default=None, type=names, help="test sets graded at the end, e.g. Set5,Set14")
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=cmd_train)

    s = sub.add_parser("train-group", help="train several variants together on one GPU (one CUDA stream each)",
                       description="The recipe flags are the fields of benchmark.train.TrainConfig, shared by "
                                   "every run; --runs sets each run's model, scale and its own keys.")
    s.add_argument("--runs", required=True,
                   help=f"comma-separated MODEL:SCALE[:PATCH][:KEY=VALUE...] with keys {', '.join(_RUN_KEYS)} "
                        "(name: the run folder; default <model>-x<scale>), e.g. awsrn-s:2,awsrn-l:8:40,awsrn-s:4:batch=64:lr=2e-3:name=s4-b64")
    s.add_argument("--out", default="runs", help="folder of the runs: each run goes to <out>/<name>")
    s.add_argument("--continue-from", default=None,
                   help="folder of earlier runs: a run starts from <folder>/<name>/model.safetensors "
                        "when it exists (a new segment)")
    s.set_defaults(config_fields=add_config_flags(
        s, TrainConfig, skip=("model", "scale", "out", "init_from", "time_budget_s"),
        defaults={"data": None, "iters": 1_000_000, "schedule": "cosine", "val_every": 5000, "log_every": 500,
                  "ckpt_every": 5000, "device": "cuda"}))
    s.add_argument("--time-budget", type=float, default=None, help="seconds of training for the whole group")
    s.add_argument("--compact-above", type=int, default=None,
                   help="store model.safetensors as float16 for variants with more parameters than this")
    s.add_argument("--resume", action="store_true", help="continue each run from <out>/checkpoint.pt")
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=cmd_train_group)

    s = sub.add_parser("reproduce", help="the main job: every table and figure in results/")
    s.add_argument("--data-root", default=None, help="default $AWSRN_DATA; none: the embedded skimage set")
    s.add_argument("--out", default="results")
    s.add_argument("--checkpoints", default="checkpoints")
    s.add_argument("--latency-repeats", type=_int_at_least(1), default=20)
    s.add_argument("--fresh", action="store_true", help="regrade everything: the store's rows are deleted first")
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=cmd_reproduce)

    from .plugins import available
    s = sub.add_parser("ablate", help="AWMS ablations (plugins): " + ", ".join(sorted(available())),
                       description="awsrn-bench ablate NAME --help lists NAME's own flags")
    s.add_argument("plugin", choices=sorted(available()), help="the ablation to run")
    s.add_argument("args", nargs=argparse.REMAINDER, help="its flags")
    s.set_defaults(func=cmd_ablate)

    s = sub.add_parser("convert", help="write any readable checkpoint in the native safetensors format")
    s.add_argument("input")
    s.add_argument("output")
    s.set_defaults(func=cmd_convert)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return run_reporting(f"awsrn-bench {args.command}", args.func, args)


if __name__ == "__main__":
    sys.exit(main())
