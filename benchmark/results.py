"""The results store: append-only tidy tables with provenance, written atomically.

Layout: ``<root>/<kind>/<run-key>.csv`` (one file per model x weights x scale x dataset x protocol x options)
with ``<run-key>.json`` beside it holding the provenance. Each file is rewritten whole through a temp file
and ``os.replace`` after every completed row, so a kill at any moment leaves either the old or the new file,
never a torn one; a rerun reads what is there and skips it.
"""
from __future__ import annotations

import json
import platform
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import torch

from .atomic import atomic_write_text


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


# Column names of tables written before the vocabulary was unified (README "Vocabulary"). Records that only a
# GPU run can make again (results/gpu/) keep the names they were written with; readers rename on the way in.
LEGACY_COLUMNS = {"variant": "model", "median_ms": "latency_ms", "config": "step", "train_iters": "iters",
                  "train_gpu_minutes": "gpu_minutes", "set5_psnr": "psnr_Set5", "train_form_ms": "latency_ms_train",
                  "deploy_form_ms": "latency_ms_deploy", "super_image_ms": "latency_ms_super_image"}


def read_table(path: str | Path, **kw) -> pd.DataFrame:
    """A results CSV with its columns in the current vocabulary (see ``LEGACY_COLUMNS``)."""
    df = pd.read_csv(path, **kw)
    return df.rename(columns={k: v for k, v in LEGACY_COLUMNS.items() if k in df and v not in df})


def write_table(df: pd.DataFrame, path: str | Path) -> None:
    """Write a CSV atomically."""
    atomic_write_text(path, df.to_csv(index=False))


def code_version() -> str:
    """``<package version>+g<commit>`` when run from a git checkout (``-dirty`` if modified)."""
    from . import __version__
    try:
        root = Path(__file__).resolve().parent.parent
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True,
                             text=True, timeout=5).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return f"{__version__}+g{sha}{'-dirty' if dirty else ''}" if sha else __version__
    except (OSError, subprocess.SubprocessError):
        return __version__


def device_name(device: torch.device | str) -> str:
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"cpu: {line.split(':', 1)[1].strip()}"
    except OSError:
        pass
    return f"cpu: {platform.processor() or platform.machine()}"


def environment(device: torch.device | str = "cpu", precision: str = "fp32") -> dict:
    """Provenance shared by every row of a run."""
    return {"code_version": code_version(), "torch_version": torch.__version__,
            "device": device_name(device), "precision": precision, "threads": torch.get_num_threads()}


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.+-]+", "-", str(text)).strip("-")


class ResultStore:
    def __init__(self, root: str | Path):
        self.root = Path(root)

    def run_path(self, kind: str, key: dict) -> Path:
        name = "__".join(_slug(f"{k}={v}") for k, v in key.items())
        return self.root / kind / f"{name}.csv"

    def read_run(self, kind: str, key: dict) -> pd.DataFrame:
        path = self.run_path(kind, key)
        return pd.read_csv(path) if path.is_file() else pd.DataFrame()

    def write_run(self, kind: str, key: dict, rows: pd.DataFrame, provenance: dict) -> Path:
        path = self.run_path(kind, key)
        write_table(rows, path)
        atomic_write_text(path.with_suffix(".json"), json.dumps({**key, **provenance}, indent=2, default=str) + "\n")
        return path

    def read_all(self, kind: str) -> pd.DataFrame:
        files = sorted((self.root / kind).glob("*.csv"))
        frames = [pd.read_csv(f) for f in files if f.stat().st_size > 0]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
