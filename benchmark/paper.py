"""The AWSRN paper's results table (arXiv 1904.02358, Table "Quantitative results"), as data.

The CSV in ``benchmark/reference/`` is a copy of ../shared/reference/awsrn_paper_table.csv,
including its ``note`` column (the AWSRN-SD x3 Set14 typo).
"""
from __future__ import annotations

from functools import lru_cache
from importlib import resources

import pandas as pd

DATASETS = ("Set5", "Set14", "B100", "Urban100", "Manga109")


@lru_cache(maxsize=None)
def _reference_table(filename: str) -> pd.DataFrame:
    with resources.files("benchmark.reference").joinpath(filename).open() as fh:
        df = pd.read_csv(fh)
    df["note"] = df["note"].fillna("")
    return df


def paper_table() -> pd.DataFrame:
    """Wide table: one row per (method, scale) with params_k, multi_adds_g and PSNR/SSIM columns."""
    return _reference_table("awsrn_paper_table.csv")


def paper_metrics_long() -> pd.DataFrame:
    """Tidy table: method, scale, dataset, psnr, ssim (rows without a value dropped)."""
    df = paper_table()
    rows = []
    for ds in DATASETS:
        p, s = f"{ds.lower()}_psnr", f"{ds.lower()}_ssim"
        part = df[["method", "scale", p, s, "note"]].rename(columns={p: "psnr", s: "ssim"})
        part.insert(2, "dataset", ds)
        rows.append(part)
    out = pd.concat(rows, ignore_index=True)
    return out.dropna(subset=["psnr"]).reset_index(drop=True)


def peers_table() -> pd.DataFrame:
    """Published numbers of peers that are not rows of the AWSRN paper (IMDN), same columns."""
    return _reference_table("peers_published.csv")


def published_row(method: str, scale: int) -> dict | None:
    """The AWSRN paper's row for ``method`` at ``scale``, else a peer's own published row, else None."""
    row = paper_row(method, scale)
    if row is None:
        df = peers_table()
        hit = df[(df["method"] == method) & (df["scale"] == scale)]
        row = None if hit.empty else hit.iloc[0].to_dict()
    return row


def paper_row(method: str, scale: int) -> dict | None:
    """The paper's row for ``method`` (e.g. 'AWSRN-S') at ``scale``, or None when not reported."""
    df = paper_table()
    hit = df[(df["method"] == method) & (df["scale"] == scale)]
    return None if hit.empty else hit.iloc[0].to_dict()
