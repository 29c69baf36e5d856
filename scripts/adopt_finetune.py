"""Make a finished fine-tune run (scripts/cpu_finetune.sh) the committed checkpoint, by the rule fixed before
the runs: its final held-out PSNR must beat the checkpoint's last one (the test sets are only watched).

    python scripts/adopt_finetune.py CK [CK ...] [--runs runs/ft] [--checkpoints checkpoints] [--float32]

For each adopted run the previous weights are kept as <run>/previous.safetensors (for `awsrn-bench compare`),
a float16 run also gets <run>/model_fp32.safetensors from its last resumable state (for
scripts/fp16_storage_check.py), and model.safetensors, model.json, recipe.json and train_log.csv are copied into
checkpoints/CK/. --float32 commits a float16 run's float32 weights instead (recipe.json then says
save_dtype float32), for a checkpoint whose float16 round trip moves a score by more than the 0.001 dB issue 9
allows (results/fp16_storage.csv; later cycles of it then store float32 too). Grading stays a separate step (scripts/eval_checkpoints.py --only CK). Exit 1 when a run is
not adopted, 2 on a missing or unfinished run (a run its --time-budget shortened counts as finished when it
reached the horizon the budget fitted: recipe.json ``schedule_complete``).
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmark.checkpoints import model_from_checkpoint, save_native  # noqa: E402

FILES = ("model.safetensors", "model.json", "recipe.json", "train_log.csv")


def last_val(log: Path) -> float:
    """The held-out PSNR of the last validated row of a train_log.csv."""
    vals = pd.read_csv(log)["val_psnr"].dropna()
    if vals.empty:
        raise ValueError(f"{log}: no validated row")
    return float(vals.iloc[-1])


def finished(run: Path) -> bool:
    """A run is finished when model.safetensors exists and recipe.json says it reached its iterations, or that
    its time budget ended it at the horizon the budget fitted (``schedule_complete``: the lr decayed to its end);
    a run cut by the budget's hard stop or by a signal is not."""
    if not (run / "model.safetensors").is_file():
        return False
    r = json.loads((run / "recipe.json").read_text())
    return r.get("iters_reached") == r.get("iters") or r.get("schedule_complete") is True


def write_fp32(run: Path) -> Path:
    """model_fp32.safetensors: the run's final weights in float32 (a float16 run stores half precision only)."""
    state = torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=False)
    model = model_from_checkpoint(run / "model.safetensors")
    model.load_state_dict(state["model"])
    return save_native(model, run / "model_fp32.safetensors")


def adopt(name: str, runs: Path, checkpoints: Path, float32: bool = False) -> tuple[bool, str]:
    run, ck = runs / name, checkpoints / name
    if not finished(run):
        raise FileNotFoundError(f"{run}: no finished run (model.safetensors missing, or it stopped before the end "
                                "of its schedule)")
    new, old = last_val(run / "train_log.csv"), last_val(ck / "train_log.csv")
    line = f"{name}: held-out {old:.4f} -> {new:.4f} dB ({new - old:+.4f})"
    if new <= old:
        return False, line + ": kept the checkpoint"
    recipe = json.loads((run / "recipe.json").read_text())
    half = recipe.get("save_dtype") == "float16"
    fp32 = half and (run / "checkpoint.pt").is_file()
    if half and not fp32:
        # a GPU run brings back its float16 weights only (scripts/gpu_train.sh packs no checkpoint.pt): those
        # are the model, graded as stored; there is no float32 twin to round-trip against or to commit
        if float32:
            raise FileNotFoundError(f"{run}: --float32 needs {run / 'checkpoint.pt'} (the run's float32 state); "
                                    "a GPU run brings back its float16 weights only")
        line += " (float16 weights as trained: no float32 state came back)"
    shutil.copy2(ck / "model.safetensors", run / "previous.safetensors")
    if fp32:
        write_fp32(run)
    for f in FILES:
        shutil.copy2(run / f, ck / f)
    if fp32 and float32:
        shutil.copy2(run / "model_fp32.safetensors", ck / "model.safetensors")
        (ck / "recipe.json").write_text(json.dumps({**recipe, "save_dtype": "float32"}, indent=2) + "\n")
        line += " (stored in float32)"
    return True, line + f": adopted (previous weights: {run / 'previous.safetensors'})"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="+", help="checkpoint labels, e.g. awsrn-m-x4")
    ap.add_argument("--runs", type=Path, default=Path("runs/ft"))
    ap.add_argument("--checkpoints", type=Path, default=Path("checkpoints"))
    ap.add_argument("--float32", action="store_true",
                    help="commit a float16 run's float32 weights (when float16 storage moves PSNR by > 0.001 dB)")
    args = ap.parse_args(argv)
    rc = 0
    for name in args.names:
        try:
            ok, line = adopt(name, args.runs, args.checkpoints, args.float32)
        except (FileNotFoundError, ValueError, KeyError) as exc:
            print(f"adopt_finetune: {exc}", file=sys.stderr)
            return 2
        print(line)
        rc = rc or (0 if ok else 1)
    return rc


if __name__ == "__main__":
    sys.exit(main())
