"""Does bf16 autocast cost PSNR late in training? A paired check on the CPU, for the GPU recipe.

Continues one trained checkpoint twice from the same state, with the same seed and so the same patches, once in
float32 and once under bf16 autocast (float32 master weights and Adam state, as the GPU step keeps them), and
writes both runs' validations side by side with their difference:

    python scripts/bf16_check.py --data-root ../shared/data [--checkpoint checkpoints/awsrn-s-x2] [--iters 600]

-> results/bf16_training_check.csv. On a GPU, bf16 with channels_last makes the CUDA-graph step 1.49x faster
(results/gpu/train_throughput_gpu.csv); this says what the speed would cost.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmark import report  # noqa: E402
from benchmark.results import write_table  # noqa: E402
from benchmark.train import TrainConfig, train  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default="checkpoints/awsrn-s-x2")
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--iters", type=int, default=600)
    ap.add_argument("--lr", type=float, default=1e-4, help="a late-training lr (cosine from here to 0)")
    ap.add_argument("--out", default="results")
    args = ap.parse_args(argv)
    ck = Path(args.checkpoint)
    info = report.checkpoint_info(ck / "model.safetensors")
    root = Path(args.data_root or "../shared/data")
    data = (str(root / "train" / "T91"), str(root / "train" / "BSD200"))
    frames = []
    with tempfile.TemporaryDirectory() as tmp:
        for amp in ("none", "bf16"):
            out = Path(tmp) / amp
            cfg = TrainConfig(model=info["model"], scale=int(info["scale"]), data=data, out=str(out),
                              iters=args.iters, lr=args.lr, schedule="cosine", val_every=args.iters // 3,
                              log_every=args.iters // 6, ckpt_every=args.iters, amp=amp,
                              init_from=str(ck / "model.safetensors"), monitor=("Set5",), data_root=str(root))
            train(cfg, progress=False)
            log = pd.read_csv(out / "train_log.csv")
            log = log[(log.segment == log.segment.max()) & log.val_psnr.notna()]
            frames.append(log[["iter", "loss", "val_psnr", "psnr_Set5"]].assign(amp=amp))
            shutil.rmtree(out)
    fp32, bf16 = (f.set_index("iter") for f in frames)
    table = pd.DataFrame({"checkpoint": ck.name, "iter": fp32.index, "lr": args.lr,
                          "loss_fp32": fp32.loss.values, "loss_bf16": bf16.loss.values,
                          "val_psnr_fp32": fp32.val_psnr.values, "val_psnr_bf16": bf16.val_psnr.values,
                          "psnr_Set5_fp32": fp32.psnr_Set5.values, "psnr_Set5_bf16": bf16.psnr_Set5.values})
    table["d_val_psnr"] = table.val_psnr_bf16 - table.val_psnr_fp32
    table["d_psnr_Set5"] = table.psnr_Set5_bf16 - table.psnr_Set5_fp32
    path = Path(args.out) / "bf16_training_check.csv"
    write_table(table, path)
    print(table.to_string(index=False))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
