"""``awsrn-bench bench``: measurements of the suite's own speed, written as tables with the device name.

* ``eval-overhead``: how much time ``evaluate()`` adds to the model's forward passes (AWSRN-S x2, random
  init: the cost does not depend on the weights), once with an empty LR cache and once warm (the second pass
  in the same process: LR on disk, decoded pairs in memory, see ``data.PairCache``). The goal is a
  wall time of at most 1.05x the forward time on a CPU and 1.5x on a GPU.
* ``train-throughput``: the training step, eager vs fast (and on CUDA: the CUDA-graph step, and a check
  that it equals the eager step on a fixed batch), side by side in one process.
* ``gpu``: the measurements a lent GPU is for, as one prepared run: the two above and the latency table
  (training form and deploy form in fp32, fp16 and bf16, NCHW and channels_last). ``--device cpu`` with tiny
  settings is its dry run.

Each table goes to ``table_path(out, name, device)``: ``<out>/<name>_cpu.csv`` on the CPU and
``<out>/gpu/<name>_gpu.csv`` on a GPU, with the device name in a column.
"""
from __future__ import annotations

import tempfile
import time
from dataclasses import replace

import pandas as pd
import torch

from pathlib import Path

from .results import device_name, environment


def table_path(out: str | Path, name: str, device: str) -> Path:
    """Where a measured table of this device lives: ``<out>/<name>_cpu.csv`` or ``<out>/gpu/<name>_gpu.csv``."""
    if str(device).startswith("cuda"):
        return Path(out) / "gpu" / f"{name}_gpu.csv"
    return Path(out) / f"{name}_cpu.csv"


# the forms timed by ``bench gpu``: (deploy, precision, channels_last, graph); layouts and modes are chosen by
# measurement, not by habit (fp16 was slower than fp32 for AWSRN-L x4 on an H200 in NCHW)
# (deploy, precision, channels_last, graph); the graph forms come early so that a run cut short keeps them
LATENCY_FORMS = ((False, "fp32", False, False), (True, "fp32", False, False), (True, "fp32", True, True),
                 (True, "fp16", True, True), (True, "bf16", True, True), (True, "fp16", True, False),
                 (True, "fp16", False, False), (True, "fp32", True, False), (True, "bf16", True, False))
STAGES = ("train_throughput", "eval_overhead", "latency")


def latency_forms(pattern: str | None, scales, device: str, preset: str = "720p", lr_hw=None, repeats: int = 50,
                  forms=LATENCY_FORMS, on_form=None) -> pd.DataFrame:
    """The latency table of every form in ``forms`` (one row per model, scale and form). ``on_form`` gets the
    rows so far after each form (``bench gpu`` writes them, so an interrupted run keeps what it measured)."""
    from .latency import LatencySpec, latency_table
    frames = []
    for deploy, precision, cl, graph in forms:
        if graph and not str(device).startswith("cuda"):
            continue                    # a CUDA graph needs CUDA (the CPU dry run times the other forms)
        spec = LatencySpec(preset="custom" if lr_hw else preset, lr_hw=lr_hw, device=device, precision=precision,
                           channels_last=cl, deploy=deploy, repeats=repeats, warmup=max(1, min(10, repeats)),
                           graph=graph)
        frames.append(latency_table(pattern, scales, spec))
        if on_form is not None:
            on_form(pd.concat(frames, ignore_index=True))
    return pd.concat(frames, ignore_index=True)


def device_check(out: str | Path, data, data_root=None, device: str = "cuda", datasets=("Set5", "Set14", "B100",
                 "Urban100"), pattern: str | None = None, scales=(2, 3, 4), lr_hw=None, latency_repeats: int = 50,
                 eager_iters: int = 300, fast_iters: int = 2000, overrides: dict | None = None,
                 log=print, stages=STAGES, eval_scale: int = 2, batch: int | None = None,
                 patch: int | None = None) -> dict[str, Path]:
    """``bench gpu``: train throughput, evaluate overhead and the latency forms on ``device``, each table
    written as soon as it is measured (an interrupted run keeps what it finished). -> {name: path}."""
    from .results import write_table
    unknown = set(stages) - set(STAGES)
    if unknown:
        raise ValueError(f"stages: unknown {sorted(unknown)}, expected some of {', '.join(STAGES)}")
    written = {}
    paths = {name: table_path(out, name, device) for name in STAGES}

    def write(name):            # each table rewritten as it grows: a run cut short keeps what it measured
        return lambda df: write_table(df, paths[name])

    measures = (("train_throughput", lambda: train_throughput(data, device, eager_iters=eager_iters,
                                                            fast_iters=fast_iters, overrides=overrides, log=log,
                                                            on_row=write("train_throughput"), batch=batch,
                                                            patch=patch)),
              ("eval_overhead", lambda: eval_overhead(datasets, data_root, device, scale=eval_scale)),
              ("latency", lambda: latency_forms(pattern, scales, device, lr_hw=lr_hw, repeats=latency_repeats,
                                                on_form=write("latency"))))
    for name, measure in measures:
        if name not in stages:
            continue
        log(f"== {name} on {device_name(device)}")
        path = paths[name]
        path.parent.mkdir(parents=True, exist_ok=True)
        write_table(measure(), path)
        written[name] = path
        log(f"wrote {path}")
    return written


def eval_overhead(datasets=("Set5", "Set14", "B100", "Urban100"), data_root=None, device: str = "cpu",
                  threads: int | None = None, model: str = "awsrn-s", scale: int = 2) -> pd.DataFrame:
    """One row per LR-cache state (cold, warm): images, wall seconds, the sum of forward seconds, their ratio."""
    from .evaluate import evaluate
    if threads:
        torch.set_num_threads(threads)
    rows = []
    with tempfile.TemporaryDirectory() as cache:
        for state in ("cold", "warm"):
            torch.manual_seed(0)
            res = evaluate(model, list(datasets), [scale], data_root=data_root, cache_dir=cache, device=device,
                           progress=False)
            fwd = float(res.images["forward_s"].sum())
            rows.append({"model": model, "scale": scale, "datasets": "+".join(datasets), "lr_cache": state,
                         "n_images": len(res.images), "wall_s": res.wall_s, "forward_s": fwd,
                         "wall_over_forward": res.wall_s / fwd, **environment(device)})
    return pd.DataFrame(rows)


def graph_equals_eager(device: str, steps: int = 3, ema: float = 0.9, awms_one_conv: bool = False) -> dict:
    """The same fixed batch through the eager fused step and the CUDA-graph step, both updating a weight
    average (``ema``, as ``train --ema``): loss, parameters and averages. ``awms_one_conv``: both with the AWMS
    trained as one conv (``train --awms-one-conv``)."""
    from .registry import create_model
    from .train import EagerStep, GraphStep, TrainConfig, WeightEMA, make_optimizer
    g = torch.Generator().manual_seed(0)
    lr_u8 = torch.randint(0, 256, (16, 3, 48, 48), generator=g, dtype=torch.uint8).to(device)
    hr_u8 = torch.randint(0, 256, (16, 3, 192, 192), generator=g, dtype=torch.uint8).to(device)
    cfg = TrainConfig(data=("unused",), device=device)
    out = {}
    for graph in (False, True):
        torch.manual_seed(0)
        model = create_model("awsrn-s", scale=4).to(device)
        model.tail.one_conv = awms_one_conv
        avg = WeightEMA(model, ema) if ema else None
        opt = make_optimizer(model, cfg, torch.device(device), graph=graph)
        if graph:
            step = GraphStep(model, model, opt, lr_u8.shape, hr_u8.shape, torch.device(device), ema=avg)
            for _ in range(steps):
                step(lr_u8, hr_u8)
        else:
            step = EagerStep(model, opt, torch.device(device), ema=avg)
            for _ in range(steps):
                step(lr_u8.float() / 255.0, hr_u8.float() / 255.0)
        torch.cuda.synchronize()
        averages = [t.detach().clone() for t in avg.tensors()] if avg is not None else []
        out[graph] = (float(step.loss_sum), {k: v.detach().clone() for k, v in model.state_dict().items()}, averages)
    (le, se, ae), (lg, sg, ag) = out[False], out[True]
    diff = max(float((se[k] - sg[k]).abs().max()) for k in se)
    ema_diff = max((float((a - b).abs().max()) for a, b in zip(ae, ag)), default=0.0)
    return {"loss_eager": le, "loss_graph": lg, "max_param_diff": diff, "max_ema_diff": ema_diff,
            "equal": abs(le - lg) < 1e-4 * abs(le) and diff < 1e-4 and ema_diff < 1e-4}


def cpu_isa() -> str:
    """The vector instructions PyTorch's CPU kernels use here, and whether bfloat16 runs natively: e.g.
    'AVX2' (bf16 emulated) or 'AVX512, native bf16'."""
    from .train import native_bf16
    return torch.backends.cpu.get_cpu_capability() + (", native bf16" if native_bf16("cpu") else "")


def _rate(cfg, warmup: int, timed: int) -> float:
    from .train import Trainer
    t = Trainer(cfg, progress=False)
    for _ in range(warmup):
        t.step()
    t.sync()
    t0 = time.perf_counter()
    for _ in range(timed):
        t.step()
    t.sync()
    return timed / (time.perf_counter() - t0)


def train_throughput(data, device: str = "cuda", model: str = "awsrn-s", scale: int = 4, eager_iters: int = 300,
                     fast_iters: int = 2000, overrides: dict | None = None, log=print, on_row=None,
                     batch: int | None = None, patch: int | None = None) -> pd.DataFrame:
    """One row per configuration: it/s and patches/s over the timed iterations (after untimed warm-up), the
    speed-up over eager; on CUDA also whether the graph step equals the eager step. ``on_row`` gets the table
    so far after each configuration (so a run cut short keeps what it measured). ``batch``/``patch``: the
    step's size (default: the trainer's, 16 patches of 48 px; the "batch 64" row keeps its own batch)."""
    from .train import TrainConfig
    tmp = tempfile.mkdtemp()
    size = {k: v for k, v in dict(batch=batch, patch=patch).items() if v is not None}
    base = TrainConfig(model=model, scale=scale, data=tuple(data), out=f"{tmp}/run", iters=10**7, val_every=10**9,
                       val_images=0, log_every=10**9, ckpt_every=10**9, device=device, overrides=overrides or {},
                       **size)
    cuda = device.startswith("cuda")
    check = None
    if cuda:
        check = {False: graph_equals_eager(device)}
        log(f"graph step vs eager step, fixed batch, 3 steps: {check[False]}")
        try:        # the forms with the AWMS as one conv are checked on their own (scripts/gpu_train.sh reads it)
            check[True] = graph_equals_eager(device, awms_one_conv=True)
        except Exception as exc:
            check[True] = {"equal": False, "max_param_diff": float("nan"), "max_ema_diff": float("nan"),
                           "error": f"{type(exc).__name__}: {exc}"[:300]}
        log("the same with the AWMS as one conv: " + ", ".join(f"{k} {v}" for k, v in check[True].items()))
    configs = [("eager", dict(fast=False), eager_iters),
               ("fast, no graph", dict(fast=True, graph=False), eager_iters),
               ("fast", dict(fast=True), fast_iters),
               ("fast, bf16", dict(fast=True, amp="bf16"), fast_iters),
               ("fast, bf16, channels_last", dict(fast=True, amp="bf16", channels_last=True), fast_iters),
               ("fast, channels_last", dict(fast=True, channels_last=True), fast_iters),
               # the weight average (train --ema) is one more foreach kernel in the graph: what it costs
               ("fast, bf16, channels_last, ema 0.999", dict(fast=True, amp="bf16", channels_last=True, ema=0.999),
                fast_iters),
               ("fast, batch 64", dict(fast=True, batch=64), fast_iters // 2),
               # the AWMS trained as one conv of its largest kernel (train --awms-one-conv): 81 taps instead of 164
               ("fast, bf16, channels_last, AWMS one conv",
                dict(fast=True, amp="bf16", channels_last=True, awms_one_conv=True), fast_iters),
               # last, since compiling takes a while: the compiled model (Inductor fuses the elementwise ops
               # between the convolutions) inside our graph, with bf16 and channels_last; then the other
               # way to static shapes, torch.compile's own CUDA graphs (Adam outside them)
               ("fast, compiled in the graph, bf16, channels_last",
                dict(fast=True, compile=True, amp="bf16", channels_last=True), fast_iters),
               ("fast, compiled in the graph, bf16, channels_last, AWMS one conv",
                dict(fast=True, compile=True, amp="bf16", channels_last=True, awms_one_conv=True), fast_iters),
               ("fast, compile reduce-overhead", dict(fast=True, compile=True, compile_mode="reduce-overhead"),
                fast_iters)]
    if not cuda:
        # no CUDA graph on the CPU; bf16 autocast is the CPU's own lever (oneDNN bf16 convolutions, where the
        # CPU has AVX512-BF16/AMX), the same recipe as `train --amp bf16`
        configs = configs[:2] + [("fast, no graph, bf16", dict(fast=True, graph=False, amp="bf16"), eager_iters),
                                 ("fast, no graph, bf16, channels_last",
                                  dict(fast=True, graph=False, amp="bf16", channels_last=True), eager_iters),
                                 ("fast, no graph, bf16, channels_last, ema 0.999",
                                  dict(fast=True, graph=False, amp="bf16", channels_last=True, ema=0.999), eager_iters),
                                 ("fast, no graph, AWMS one conv",
                                  dict(fast=True, graph=False, awms_one_conv=True), eager_iters),
                                 ("fast, no graph, bf16, channels_last, AWMS one conv",
                                  dict(fast=True, graph=False, amp="bf16", channels_last=True, awms_one_conv=True),
                                  eager_iters)]
    rows = []
    for name, kw, n in configs:
        cfg = replace(base, out=f"{tmp}/{len(rows)}", **kw)
        row = {"step": name, "model": model, "scale": scale, "batch": cfg.batch, "patch": cfg.patch,
               "amp": cfg.amp, "channels_last": cfg.channels_last, "awms_one_conv": cfg.awms_one_conv, "iters_timed": n,
               "device": device_name(device), "torch_version": torch.__version__}
        if not cuda:        # two CPUs of one name may differ in what bf16 costs (native_bf16)
            row["cpu_isa"] = cpu_isa()
        try:
            rate = _rate(cfg, warmup=max(2, min(10, n // 10)), timed=n)
            row.update(it_per_s=rate, patches_per_s=rate * cfg.batch, error="")
        except Exception as exc:       # one failing form is recorded; a device run measures the others
            row.update(it_per_s=float("nan"), patches_per_s=float("nan"), error=f"{type(exc).__name__}: {exc}"[:300])
        rows.append(row)
        log(rows[-1])
        if on_row is not None:
            on_row(_throughput_table(rows, check))
    return _throughput_table(rows, check)


def _throughput_table(rows: list[dict], check: dict | None) -> pd.DataFrame:
    """``check``: {awms_one_conv: graph_equals_eager(...)}; each row gets the check of its own AWMS form."""
    df = pd.DataFrame(rows)
    df["speedup_it_vs_eager"] = df.it_per_s / df.it_per_s.iloc[0]
    df["speedup_patches_vs_eager"] = df.patches_per_s / df.patches_per_s.iloc[0]
    if check is not None:
        for column, key in (("graph_equals_eager", "equal"), ("graph_max_param_diff", "max_param_diff"),
                            ("graph_max_ema_diff", "max_ema_diff")):
            df[column] = [check[bool(one)][key] for one in df.awms_one_conv]
    return df
