"""AWMS adaptive weights: the learned lambda of each branch and what each branch actually contributes.

lambda alone ignores the scale of the branch conv's own weights, so the contribution is measured as the
energy (mean square) of the branch output PixelShuffle(lambda_k conv_k(f)) on a dataset, and its share of
the four branches' total.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from benchmark.data import LRCache, list_images, model_input, prepare_pair
from benchmark.protocols import get_protocol

NAME = "awms_weights"
VARIANTS = "every trained checkpoint (all AWMS branches)"
MEASURES = "lambda_k; energy share of branch k on a dataset"
FIGURE = "fig_awms_lambda.png"


@torch.no_grad()
def branch_energy(model, dataset: str = "Set5", data_root=None, max_images: int = 5) -> dict[int, float]:
    proto, cache = get_protocol("matlab"), LRCache()
    energy = {k: 0.0 for k in model.tail.kernels}
    for ref in list_images(dataset, data_root)[:max_images]:
        _, lr = prepare_pair(ref, model.scale, proto, cache)
        f = model.features(model.normalize(model_input(lr)))
        for k in model.tail.kernels:
            energy[k] += float(model.tail.branch(k, f).pow(2).mean())
    return energy


def run(checkpoints: dict[str, str], dataset: str = "Set5", data_root=None) -> pd.DataFrame:
    """``checkpoints``: label -> path of a native checkpoint."""
    from benchmark.checkpoints import model_from_checkpoint
    rows = []
    for label, path in checkpoints.items():
        model = model_from_checkpoint(path).eval()
        energy = branch_energy(model, dataset, data_root)
        total = sum(energy.values())
        for k in model.tail.kernels:
            rows.append({"checkpoint": label, "scale": model.scale, "kernel": k,
                         "lambda": float(getattr(model.tail, f"scale_k{k}").scale.detach()),
                         "energy": energy[k], "energy_share": energy[k] / total if total else np.nan,
                         "dataset": dataset})
    return pd.DataFrame(rows)
