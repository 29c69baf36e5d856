"""AWMS adaptive weights: the learned lambda of each branch and what each branch actually contributes.

lambda alone ignores the scale of the branch conv's own weights, so the contribution is measured as the
energy (mean square) of the branch output PixelShuffle(lambda_k conv_k(f)) on a dataset, and its share of
the four branches' total.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from benchmark.data import LRCache, list_images, model_input, prepare_pair
from benchmark.protocols import get_protocol

NAME = "awms-weights"
HELP = "the learned lambda and the energy share of each AWMS branch, per checkpoint"
VARIANTS = "every trained checkpoint (all AWMS branches)"
MEASURES = "lambda_k; energy share of branch k on a dataset"
TABLE = "awms_weights"                    # results/<TABLE>.csv and its figure fig_<TABLE>.png
FIGURE = f"fig_{TABLE}.png"


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
                         "lambda": model.tail.lambdas()[k],
                         "energy": energy[k], "energy_share": energy[k] / total if total else np.nan,
                         "dataset": dataset})
    return pd.DataFrame(rows)


def plot(df: pd.DataFrame, out: Path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    labels = list(dict.fromkeys(df.checkpoint))
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    width = 0.8 / max(1, len(labels))
    for i, lab in enumerate(labels):
        g = df[df.checkpoint == lab]
        x = np.arange(len(g)) + i * width
        axes[0].bar(x, g["lambda"], width, label=lab)
        axes[1].bar(x, g["energy_share"], width, label=lab)
    for ax, title in zip(axes, ("learned lambda_k", "energy share of branch k")):
        ax.set_xticks(np.arange(4) + 0.4 - width / 2, ["3x3", "5x5", "7x7", "9x9"])
        ax.set_title(title)
        ax.grid(alpha=0.3, axis="y")
    axes[0].axhline(0.25, color="k", lw=0.8, ls="--")
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def add_arguments(parser) -> None:
    parser.add_argument("checkpoints", help="native checkpoints, comma-separated")
    parser.add_argument("--datasets", default="Set5", help="the test set whose images give the energy shares")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--out", default="results",
                        help="results folder: <out>/awms_weights.csv (these checkpoints' rows replaced) and its figure")
    parser.add_argument("--format", default="table", choices=["table", "csv", "md", "latex"])


def main(args) -> int:
    from pathlib import Path

    from benchmark.results import emit, read_table, write_table
    paths = [p for p in args.checkpoints.split(",") if p]
    datasets = [d for d in args.datasets.split(",") if d]
    if len(datasets) != 1:
        raise ValueError(f"--datasets {args.datasets}: the energy shares are taken on one test set, e.g. Set5")
    df = run({Path(p).resolve().parent.name: p for p in paths}, datasets[0], args.data_root)
    path = Path(args.out) / f"{TABLE}.csv"
    if path.is_file():                      # the other checkpoints' rows stay
        old = read_table(path)
        df = pd.concat([old[~old.checkpoint.isin(df.checkpoint.unique())], df], ignore_index=True)
    write_table(df, path)
    plot(df, Path(args.out) / FIGURE)
    emit(df[["checkpoint", "scale", "kernel", "lambda", "energy_share"]], args.format)
    return 0


if __name__ == "__main__":   # the same as `awsrn-bench ablate awms-weights ...`
    import sys

    from benchmark.plugins import run_cli
    sys.exit(run_cli(NAME, sys.argv[1:], prog="python -m ablations.awms_weights"))
