"""Training step speed, eager vs fast, side by side in one process, and (on CUDA) a check that the
CUDA-graph step equals the eager step on a fixed batch.

    python scripts/train_speed.py --data DIR[,DIR] --device cuda --out results/gpu/train_throughput_gpu.csv

Rows: one per configuration (AWSRN-S x4 unless --model/--scale), with it/s and patches/s over the timed
iterations (after untimed warm-up iterations), the device name and the speed-up over eager batch 16.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmark.results import device_name, write_table  # noqa: E402
from benchmark.train import EagerStep, GraphStep, TrainConfig, Trainer, make_optimizer  # noqa: E402


def graph_equals_eager(device: str, steps: int = 3) -> dict:
    """The same fixed batch through the eager fused step and the CUDA-graph step: loss and parameters."""
    from benchmark import create_model
    g = torch.Generator().manual_seed(0)
    lr_u8 = torch.randint(0, 256, (16, 3, 48, 48), generator=g, dtype=torch.uint8).to(device)
    hr_u8 = torch.randint(0, 256, (16, 3, 192, 192), generator=g, dtype=torch.uint8).to(device)
    cfg = TrainConfig(data=("unused",), device=device)
    out = {}
    for graph in (False, True):
        torch.manual_seed(0)
        model = create_model("awsrn-s", scale=4).to(device)
        opt = make_optimizer(model, cfg, torch.device(device), graph=graph)
        if graph:
            step = GraphStep(model, model, opt, lr_u8.shape, hr_u8.shape, torch.device(device))
            for _ in range(steps):
                step(lr_u8, hr_u8)
        else:
            step = EagerStep(model, opt, torch.device(device))
            for _ in range(steps):
                step(lr_u8.float() / 255.0, hr_u8.float() / 255.0)
        torch.cuda.synchronize()
        out[graph] = (float(step.loss_sum), {k: v.detach().clone() for k, v in model.state_dict().items()})
    (le, se), (lg, sg) = out[False], out[True]
    diff = max(float((se[k] - sg[k]).abs().max()) for k in se)
    return {"loss_eager": le, "loss_graph": lg, "max_param_diff": diff, "equal": abs(le - lg) < 1e-4 * abs(le) and diff < 1e-4}


def throughput(cfg: TrainConfig, warmup: int, timed: int) -> float:
    t = Trainer(cfg, progress=False)
    for _ in range(warmup):
        t.step()
    t.sync()
    t0 = time.perf_counter()
    for _ in range(timed):
        t.step()
    t.sync()
    return timed / (time.perf_counter() - t0)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--model", default="awsrn-s")
    ap.add_argument("--scale", type=int, default=4)
    ap.add_argument("--eager-iters", type=int, default=300)
    ap.add_argument("--fast-iters", type=int, default=2000)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    tmp = tempfile.mkdtemp()
    base = TrainConfig(model=args.model, scale=args.scale, data=tuple(d for d in args.data.split(",") if d),
                       out=f"{tmp}/run", iters=10**7, val_every=10**9, log_every=10**9, ckpt_every=10**9,
                       device=args.device)
    cuda = args.device.startswith("cuda")
    if cuda:
        check = graph_equals_eager(args.device)
        print(f"graph step vs eager step, fixed batch, 3 steps: {check}", flush=True)
    configs = [("eager", dict(fast=False), args.eager_iters),
               ("fast, no graph", dict(fast=True, graph=False), args.eager_iters),
               ("fast", dict(fast=True), args.fast_iters),
               ("fast, batch 64", dict(fast=True, batch=64), args.fast_iters // 2)]
    if not cuda:
        configs = configs[:2]
    rows = []
    for name, kw, n in configs:
        cfg = replace(base, out=f"{tmp}/{len(rows)}", **kw)
        rate = throughput(cfg, warmup=max(10, n // 10), timed=n)
        rows.append({"config": name, "model": args.model, "scale": args.scale, "batch": cfg.batch, "patch": cfg.patch,
                     "it_per_s": rate, "patches_per_s": rate * cfg.batch, "iters_timed": n,
                     "device": device_name(args.device), "torch_version": torch.__version__})
        print(rows[-1], flush=True)
    df = pd.DataFrame(rows)
    df["speedup_it_vs_eager"] = df.it_per_s / df.it_per_s.iloc[0]
    df["speedup_patches_vs_eager"] = df.patches_per_s / df.patches_per_s.iloc[0]
    if cuda:
        df["graph_equals_eager"] = check["equal"]
        df["graph_max_param_diff"] = check["max_param_diff"]
    print(df.to_string(index=False))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        write_table(df, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
