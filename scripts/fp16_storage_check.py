"""Does float16 storage of a checkpoint move its scores? Each float32 checkpoint is graded as stored and
after a round trip through float16 (what `--save-dtype float16` / `--compact-above` store), on the
same images with the matlab protocol.

    python scripts/fp16_storage_check.py CK[,CK...] --data-root ../shared/data [--datasets Set5,Set14]
        [--out results/fp16_storage.csv]   # replaces the rows of these checkpoints, keeps the others

CK: a weights file, or the name of a committed checkpoint (awsrn-s-x4: checkpoints/awsrn-s-x4/model.safetensors).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmark.checkpoints import CheckpointError, model_from_checkpoint, read_checkpoint  # noqa: E402
from benchmark.evaluate import evaluate  # noqa: E402
from benchmark.results import write_table  # noqa: E402


def fp16_roundtrip(path) -> tuple[torch.nn.Module, torch.nn.Module]:
    """(model as stored, the same model with every tensor rounded to float16 and back)."""
    full = model_from_checkpoint(path).eval()
    half = model_from_checkpoint(path).eval()
    half.load_state_dict({k: v.half().float() for k, v in full.state_dict().items()})
    return full, half


def compare(path, datasets, data_root) -> pd.DataFrame:
    if any(v.dtype != torch.float32 for v in read_checkpoint(path).state_dict.values()):
        raise ValueError(f"{path}: not stored in float32")
    full, half = fp16_roundtrip(path)
    a = evaluate(full, datasets, data_root=data_root, progress=False).summary
    b = evaluate(half, datasets, data_root=data_root, progress=False).summary
    df = a[["dataset", "scale", "psnr", "ssim"]].merge(b[["dataset", "psnr", "ssim"]], on="dataset",
                                                       suffixes=("_fp32", "_fp16"))
    df.insert(0, "checkpoint", str(path))
    df["d_psnr"] = df.psnr_fp16 - df.psnr_fp32
    df["d_ssim"] = df.ssim_fp16 - df.ssim_fp32
    return df


def weights_path(ck: str) -> str:
    """A file as given; a committed checkpoint's name as its model.safetensors (the path the rows are keyed by)."""
    named = Path("checkpoints") / ck / "model.safetensors"
    return str(named) if not Path(ck).is_file() and named.is_file() else ck


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoints")
    ap.add_argument("--datasets", default="Set5,Set14")
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    try:
        df = pd.concat([compare(weights_path(p), args.datasets.split(","), args.data_root)
                        for p in args.checkpoints.split(",")])
    except (CheckpointError, ValueError) as exc:
        print(f"fp16_storage_check: {exc}", file=sys.stderr)
        return 2
    print(df.to_string(index=False))
    if args.out:
        # the rows of the checkpoints checked now replace their earlier rows; the others stay (some were
        # float32 copies that lived only on the GPU machine of their run)
        out = Path(args.out)
        if out.is_file():
            old = pd.read_csv(out)
            df = pd.concat([old[~old.checkpoint.isin(df.checkpoint)], df], ignore_index=True)
        write_table(df, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
