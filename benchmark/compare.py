"""``awsrn-bench compare A B``: two models on the same images, B minus A with paired intervals.

A model is ``NAME`` (a registry variant: ``bicubic``, ``awsrn-s`` with random weights, ...) or
``NAME=WEIGHTS`` (``awsrn-s=checkpoints/awsrn-s-x4/model.safetensors``), or ``NAME=pretrained``: the checkpoint this
project trained for NAME at the compared scale, or a peer's official weights
(``registry.pretrained_weights``). Both are evaluated through the
results store, so a model already graded on these images is read back, not run again.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .evaluate import evaluate
from .stats import N_RESAMPLES, SEED, paired_table


PRETRAINED = "pretrained"      # NAME=pretrained: checkpoints/<NAME>-x<scale>/model.safetensors


@dataclass(frozen=True)
class ModelSpec:
    name: str
    weights: str | None = None

    def weights_at(self, scale: int, data_root=None) -> str | Path | None:
        """The weights file to grade at ``scale`` (``pretrained`` resolved to that scale's checkpoint, or a peer's
        official weights beside ``data_root``)."""
        if self.weights == PRETRAINED:
            from .registry import pretrained_weights
            return pretrained_weights(self.name, scale, data_root)
        return self.weights

    @classmethod
    def parse(cls, text: str) -> "ModelSpec":
        name, sep, weights = text.partition("=")
        if not name or (sep and not weights):
            raise ValueError(f"model {text!r}: expected NAME, NAME=WEIGHTS or NAME=pretrained")
        if weights and weights != PRETRAINED and not Path(weights).is_file():
            raise ValueError(f"model {text!r}: weights file {weights} does not exist")
        from .registry import get_variant
        get_variant(name)     # an unknown name fails here with the registry's message
        return cls(name, weights or None)

    @property
    def label(self) -> str:
        return f"{self.name}={self.weights}" if self.weights else self.name


def compare(a: str | ModelSpec, b: str | ModelSpec, scale: int, datasets=("Set5",), protocol: str = "matlab",
            data_root=None, store: str | Path | None = "results/store", device: str = "cpu",
            n_resamples: int = N_RESAMPLES, seed: int = SEED, progress: bool = False) -> pd.DataFrame:
    """Per-dataset and pooled B - A differences of PSNR and SSIM (``benchmark.stats.paired_table``), with
    the models' labels, the protocol and scale, the resample count and the seed as columns."""
    a, b = (m if isinstance(m, ModelSpec) else ModelSpec.parse(m) for m in (a, b))
    # a missing pretrained checkpoint fails before any grading
    weights = [m.weights_at(scale, data_root) for m in (a, b)]
    per = []
    for m, w in zip((a, b), weights):
        res = evaluate(m.name, list(datasets), [scale], protocol, weights=w, data_root=data_root,
                       store=store, device=device, progress=progress)
        if res.images.empty:
            raise ValueError(f"{m.label}: no image of {', '.join(datasets)} could be graded")
        per.append(res.images)
    table = paired_table(per[0], per[1], n_resamples=n_resamples, seed=seed)
    return table.assign(a=a.label, b=b.label, scale=scale, protocol=protocol, n_resamples=n_resamples, seed=seed)
