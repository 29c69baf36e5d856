"""Branch pruning: the paper's claim that "the redundant scale branch can be removed according to the
adaptive weights", tested. Every non-empty subset of {3, 5, 7, 9} is applied to a trained checkpoint
without retraining (and, with ``finetune_iters > 0``, after a short fine-tune from the full model):
delta PSNR/SSIM against delta params, Multi-Adds and CPU latency.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from benchmark.config import AWMS_KERNELS, AWSRNConfig

NAME = "branch-pruning"
HELP = "all 15 AWMS subsets of a checkpoint, without retraining and (--finetune-iters) fine-tuned"
VARIANTS = "the 15 non-empty subsets of the AWMS kernels {3,5,7,9}"
MEASURES = "delta PSNR/SSIM vs delta params, Multi-Adds, latency; Pareto front"
TABLE = "branch_pruning"                  # results/<TABLE>.csv (+ _finetune), figures fig_<table>.png
FIGURE = f"fig_{TABLE}.png"

SUBSETS = [c for r in range(1, 5) for c in combinations(AWMS_KERNELS, r)]


def pareto(df: pd.DataFrame, cost: str = "multi_adds_g", gain: str = "psnr") -> pd.Series:
    """True where no other row has lower-or-equal cost and higher gain."""
    flags = []
    for _, r in df.iterrows():
        dominated = ((df[cost] <= r[cost]) & (df[gain] > r[gain])).any()
        flags.append(not dominated)
    return pd.Series(flags, index=df.index)


def run(checkpoint: str, variant: str | None = None, datasets=("Set5",), data_root=None, finetune_iters: int = 0,
        train_data=(), latency_lr=(64, 64), out_dir: str | None = None, backend: str = "local",
        address: str | None = None, workers: int | None = None, gpus_per_job: float | None = None,
        store=None, subsets=None, curve_points: int = 10, **train_kw) -> pd.DataFrame:
    """Rows per subset, arm ('none', 'finetune-N') and dataset; ``train_kw`` goes to the fine-tune's
    ``TrainConfig`` (batch, patch, seed, ...); the fine-tunes are submitted as ``benchmark.sweep`` jobs
    (``backend='ray'``: in parallel). With ``store`` the per-image rows go into the results store, keyed
    by the pruned model's name and the weights it was made from, so a rerun reads them back. ``subsets``
    (default all 15) limits the study; the full set is always included, as the deltas' reference. Each
    ``d_psnr`` against the full model of the same arm comes with ``ci_low``/``ci_high`` (95% paired bootstrap
    over the images) and ``p`` (Wilcoxon signed-rank).

    The stages: fine-tune every subset (when ``finetune_iters``), grade every subset in each arm, then the
    deltas against the full model, their intervals and the Pareto front."""
    from benchmark.checkpoints import file_sha256, read_checkpoint
    cfg = read_checkpoint(checkpoint).config
    subsets = [tuple(x) for x in (subsets or SUBSETS)]
    if tuple(AWMS_KERNELS) not in subsets:
        subsets.append(tuple(AWMS_KERNELS))
    pr = _PruningRun(checkpoint, variant, cfg, finetune_iters, out_dir, train_kw)
    if finetune_iters:
        _finetune(pr, subsets, train_data, curve_points, backend, address, workers, gpus_per_job, data_root)
    df, per_image = _grade(pr, subsets, datasets, data_root, store, latency_lr)
    df = mark_pareto(add_intervals(_add_deltas(df), per_image))
    if finetune_iters:
        from ablations.training_studies import recipe_note
        df = add_separation(df, read_finetune_curves(checkpoint, subsets, finetune_iters, out_dir, train_kw))
        recipe = {k: v for k, v in train_kw.items() if k != "device"}
        df["recipe"] = np.where(df.retrain != "none", recipe_note(pr.device, recipe), "")
    return df.assign(weights_sha256=file_sha256(checkpoint))   # which version of the checkpoint file


@dataclass(frozen=True)
class _PruningRun:
    """What every stage of one ``run`` shares: the checkpoint, the registry name it was trained as, its config,
    the fine-tune budget (0: no fine-tuned arm), where the fine-tunes go and their recipe."""
    checkpoint: str
    variant: str | None    # None: trained and graded as awsrn-s, named awsrn[awms=...] in the store
    cfg: AWSRNConfig
    finetune_iters: int
    out_dir: str | None
    train_kw: dict

    @property
    def registry_name(self) -> str:
        return self.variant or "awsrn-s"

    @property
    def device(self) -> str:
        return self.train_kw.get("device", "cpu")

    @property
    def structure(self) -> dict:
        return {k: getattr(self.cfg, k) for k in ("n_lfb", "n_awru", "n_feats", "block_feats")}

    def tune_dir(self, sub) -> Path:
        return finetune_dir(self.checkpoint, sub, self.finetune_iters, self.out_dir, self.train_kw)


def _finetune(pr: _PruningRun, subsets, train_data, curve_points, backend, address, workers, gpus_per_job, data_root):
    """Fine-tune each subset from the full checkpoint as ``sweep`` jobs. The full set is fine-tuned too: it is the
    control that the fine-tuned subsets are measured against (the extra iterations alone move a short-schedule
    checkpoint); an interrupted arm resumes."""
    from ablations.training_studies import curve_schedule
    from benchmark.sweep import Job, run_training_jobs
    share = (gpus_per_job if gpus_per_job is not None else 1.0) if pr.device.startswith("cuda") else 0.0
    jobs = [Job(i, "train", {"model": pr.registry_name, "scale": pr.cfg.scale, "data": list(train_data),
                             "out": str(pr.tune_dir(sub)), "iters": pr.finetune_iters, "lr": 1e-4, "schedule": "cosine",
                             **curve_schedule(pr.finetune_iters, curve_points), "init_from": str(pr.checkpoint),
                             "overrides": {**pr.structure, "awms_kernels": sub}, **pr.train_kw}, num_gpus=share)
            for i, sub in enumerate(subsets)]
    run_training_jobs(jobs, Path(pr.out_dir or "runs") / "prune", backend=backend, address=address,
                      workers=workers, data_root=data_root)


def _grade(pr: _PruningRun, subsets, datasets, data_root, store, latency_lr) -> tuple[pd.DataFrame, dict]:
    """One row per (subset, arm, dataset) with its cost (params, Multi-Adds, CPU latency of the pruned deploy
    form), and the per-image rows behind each (``per_image``: (kernels, arm) -> rows) for the intervals."""
    from benchmark.checkpoints import load_pruned
    from benchmark.complexity import awms_subset_multi_adds, count_params
    from benchmark.evaluate import evaluate
    from benchmark.latency import LatencySpec, measure
    from benchmark.models import AWSRN
    from benchmark.registry import create_model
    cfg, scale = pr.cfg, pr.cfg.scale
    spec = LatencySpec(preset="custom", lr_hw=latency_lr, warmup=2, repeats=10, threads=1, deploy=True)
    # one fvcore count of the full model gives every subset's Multi-Adds (the branches are independent)
    subset_macs = awms_subset_multi_adds(AWSRN(replace(cfg, awms_kernels=tuple(AWMS_KERNELS))), scale)
    rows, per_image = [], {}
    for sub in subsets:
        tag = "".join(map(str, sub))
        model = AWSRN(replace(cfg, awms_kernels=sub))
        load_pruned(model, pr.checkpoint)
        # the store's identity of a pruned model: its structure and the file its weights come from
        name = pr.variant or "awsrn"
        model.provenance = replace(model.provenance, model=f"{name}[awms={tag}]")
        modes = [("none", model)]
        if pr.finetune_iters:
            ft = create_model(pr.registry_name, scale=scale, weights=pr.tune_dir(sub) / "model.safetensors",
                              awms_kernels=sub, **pr.structure)
            ft.provenance = replace(ft.provenance, model=f"{name}[awms={tag},finetune-{pr.finetune_iters}]")
            modes.append((f"finetune-{pr.finetune_iters}", ft))
        torch.manual_seed(0)
        lat, _ = measure(model, scale, spec)
        for mode, m in modes:
            res = evaluate(m.eval(), list(datasets), [scale], data_root=data_root, store=store, progress=False,
                           device=pr.device)   # graded where it was fine-tuned
            per_image[tag, mode] = res.images
            for _, r in res.summary.iterrows():
                rows.append({"kernels": tag, "n_branches": len(sub), "retrain": mode,
                             "dataset": r.dataset, "scale": scale, "psnr": r.psnr, "ssim": r.ssim,
                             "params": count_params(m), "multi_adds_g": subset_macs[tuple(sub)],
                             "latency_ms": lat["latency_ms"], "latency_lr": f"{latency_lr[0]}x{latency_lr[1]}"})
    return pd.DataFrame(rows), per_image


def _add_deltas(df: pd.DataFrame) -> pd.DataFrame:
    """``d_<col>`` against the full model of the same arm (no retraining vs no retraining, fine-tuned vs
    fine-tuned)."""
    full = df[df.kernels == "3579"].set_index(["dataset", "retrain"])
    key = pd.MultiIndex.from_frame(df[["dataset", "retrain"]])
    for col in ("psnr", "ssim", "params", "multi_adds_g", "latency_ms"):
        df[f"d_{col}"] = df[col].to_numpy() - full[col].reindex(key).to_numpy()
    return df


def mark_pareto(df: pd.DataFrame) -> pd.DataFrame:
    """``pareto``: the rows on the Multi-Adds / PSNR front within each (dataset, arm)."""
    df["pareto"] = False
    for _, g in df.groupby(["dataset", "retrain"]):
        df.loc[g.index, "pareto"] = pareto(g)
    return df


def split_current(table: pd.DataFrame, checkpoints: dict) -> tuple[pd.DataFrame, list[str]]:
    """The rows made from the checkpoints as they are now (``weights_sha256`` equal to the sha256 of
    ``checkpoints[label]``), and the labels whose rows were made from another version of the file, or
    before the column existed: a retrained checkpoint's old fine-tunes must not be read as its own."""
    from benchmark.checkpoints import file_sha256
    now = table.checkpoint.map({label: file_sha256(p) for label, p in checkpoints.items()})
    made = table["weights_sha256"] if "weights_sha256" in table else pd.Series(np.nan, index=table.index)
    ok = made.notna() & (made == now)
    return table[ok], sorted(set(table.checkpoint[~ok]))


def finetune_dir(checkpoint, sub, finetune_iters: int, out_dir=None, recipe: dict | None = None) -> Path:
    """Keyed by the checkpoint's content (a retrained checkpoint never reuses old fine-tunes), the subset,
    the budget and the recipe keys that differ from the defaults (``benchmark.train.run_tag``)."""
    from benchmark.checkpoints import file_sha256
    from benchmark.train import run_tag
    return (Path(out_dir or "runs") / "prune" / f"{Path(checkpoint).resolve().parent.name}-{file_sha256(checkpoint)[:12]}"
            / f"awms{''.join(map(str, sub))}-{finetune_iters}it{run_tag(recipe or {})}")


def read_finetune_curves(checkpoint, subsets, finetune_iters: int, out_dir=None, recipe: dict | None = None):
    """Each fine-tune's held-out learning curve: one row per (kernels, iter), ``seed`` from its recipe,
    ``weights_sha256`` of the checkpoint it started from."""
    from ablations.training_studies import read_curves
    from benchmark.checkpoints import file_sha256
    runs = [("".join(map(str, sub)), {}, (recipe or {}).get("seed", 1),
             finetune_dir(checkpoint, sub, finetune_iters, out_dir, recipe)) for sub in subsets]
    return read_curves(runs).rename(columns={"model": "kernels"}).assign(weights_sha256=file_sha256(checkpoint))


def add_separation(df: pd.DataFrame, curves: pd.DataFrame) -> pd.DataFrame:
    """The fine-tuned rows get ``separated_at_iter``, ``points_separated``, ``d_val_half`` and ``d_val_final``:
    when each subset's held-out curve parted from the fine-tuned full model's, and by how much halfway and at
    the end (``benchmark.stats.separation``)."""
    from benchmark.stats import separation
    sep = separation(curves, "3579", key="kernels").set_index("kernels")
    tuned = df.retrain != "none"
    for col in ("separated_at_iter", "points_separated", "d_val_half", "d_val_final"):
        df[col] = np.nan
        df.loc[tuned, col] = df.loc[tuned, "kernels"].map(sep[col]).to_numpy()
    return df


def add_intervals(df: pd.DataFrame, per_image: dict) -> pd.DataFrame:
    """``ci_low, ci_high, p`` of each row's ``d_psnr``: the subset's per-image PSNR against the full model's
    in the same arm, on the same images (``per_image``: (kernels, arm) -> per-image rows)."""
    from benchmark.stats import diff_columns
    out = []
    for _, r in df.iterrows():
        mine = per_image[r.kernels, r.retrain]
        full = per_image["3579", r.retrain]
        ds = lambda d: d[d.dataset == r.dataset]  # noqa: E731
        out.append(diff_columns(ds(mine), ds(full)))
    return pd.concat([df.reset_index(drop=True), pd.DataFrame(out)], axis=1)


def removal_vs_weights(pruning: pd.DataFrame, weights: pd.DataFrame) -> pd.DataFrame:
    """The paper's claim in one table: for each single-branch removal (three branches left), its cost in
    each arm next to the removed branch's learned lambda and energy share (``ablations.awms_weights``)."""
    one = pruning[pruning.n_branches == 3].copy()
    one["removed"] = one.kernels.astype(str).map(lambda k: next(int(c) for c in "3579" if c not in k))
    w = weights.drop_duplicates(["checkpoint", "kernel"]).rename(columns={"kernel": "removed"})
    one = one.merge(w[["checkpoint", "removed", "lambda", "energy_share"]], on=["checkpoint", "removed"], how="left")
    cols = ["checkpoint", "dataset", "retrain", "removed", "lambda", "energy_share", "d_psnr", "ci_low", "ci_high",
            "p", "d_multi_adds_g"]
    cols = [c for c in cols if c in one]
    return one[cols].sort_values(["checkpoint", "dataset", "retrain", "lambda"]).reset_index(drop=True)


def merge_into(df: pd.DataFrame, path: str | Path, figure: bool = True) -> pd.DataFrame:
    """Write ``df`` (with a ``checkpoint`` column) into the table at ``path``, replacing that checkpoint's
    rows and keeping the others, and (``figure``) draw the table's figure next to it; returns the whole table."""
    from benchmark.results import write_table

    path = Path(path)
    if path.is_file():
        old = pd.read_csv(path, dtype={"kernels": str})
        df = pd.concat([old[~old.checkpoint.isin(df.checkpoint.unique())], df], ignore_index=True)
    write_table(df, path)
    if figure:
        plot(df, path.with_name(f"fig_{path.stem}.png"))
    return df


def plot(df: pd.DataFrame, out: Path, ncols: int = 4):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    groups = list(df.groupby(["checkpoint", "dataset"]))
    n = max(1, len(groups))
    cols, rows = min(ncols, n), -(-n // ncols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.6 * rows), squeeze=False)
    for ax in axes.flat[len(groups):]:
        ax.axis("off")
    for ax, ((ck, ds), g) in zip(axes.flat, groups):
        for mode, gm in g.groupby("retrain"):
            dots = ax.scatter(gm.d_multi_adds_g, gm.d_psnr, label=f"retrain: {mode}")
            if "ci_low" in gm:     # 95% paired bootstrap interval of each difference
                ax.errorbar(gm.d_multi_adds_g, gm.d_psnr, yerr=[gm.d_psnr - gm.ci_low, gm.ci_high - gm.d_psnr],
                            fmt="none", ecolor=dots.get_facecolor()[0], elinewidth=0.8, capsize=2)
            front = gm[gm.pareto].sort_values("d_multi_adds_g")
            # the front as a staircase: the best PSNR reachable at or below each Multi-Adds budget
            ax.step(front.d_multi_adds_g, front.d_psnr, where="post", lw=1)
            for _, r in gm.iterrows():
                ax.annotate(r.kernels, (r.d_multi_adds_g, r.d_psnr), fontsize=6)
        ax.set_title(f"{ck}, {ds}", fontsize=9)
        ax.set_xlabel("delta Multi-Adds (G)")
        ax.set_ylabel("delta PSNR (dB), bars: 95% CI")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def plot_curves(table: pd.DataFrame, curves: pd.DataFrame, out: Path, ncols: int = 4):
    """One panel per checkpoint: each fine-tune's held-out PSNR minus the fine-tuned full model's against
    iteration (``curves/branch_pruning_finetune.csv``), dotted where it separated for good (``separated_at_iter``)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from ablations.training_studies import plot_curves as draw
    checkpoints = list(dict.fromkeys(curves.checkpoint))
    cols, rows = min(ncols, len(checkpoints)), -(-len(checkpoints) // ncols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 3.8 * rows), squeeze=False)
    for ax in axes.flat[len(checkpoints):]:
        ax.axis("off")
    for ax, ck in zip(axes.flat, checkpoints):
        tuned = table[(table.checkpoint == ck) & (table.retrain != "none")]
        draw(ax, tuned, curves[curves.checkpoint == ck], key="kernels", baseline="3579")
        ax.set_title(f"{ck}: fine-tuned subsets against the fine-tuned 3579", fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def add_arguments(parser) -> None:
    from benchmark.argtypes import int_at_least
    parser.add_argument("checkpoint")
    parser.add_argument("--model", default="awsrn-s", help="the registry name the checkpoint was trained as")
    parser.add_argument("--finetune-iters", type=int_at_least(0), default=0, help="0: without retraining only")
    parser.add_argument("--data", default="", help="training folders for the fine-tune, comma-separated")
    parser.add_argument("--datasets", default="Set5")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--out", default="results",
                        help="results folder: <out>/branch_pruning_finetune.csv (with --finetune-iters, else "
                             "branch_pruning.csv), shared by all checkpoints (this checkpoint's rows replaced)")
    parser.add_argument("--subsets", type=kernel_subsets, default=None,
                        help="only these AWMS subsets, e.g. 357,579 (default all 15; the full set 3579 is always added)")
    parser.add_argument("--runs-dir", default="runs", help="the fine-tunes go to <runs-dir>/prune/ (a rerun resumes them)")
    parser.add_argument("--format", default="table", choices=["table", "csv", "md", "latex"])
    add_recipe_arguments(parser)
    add_backend_arguments(parser)


def kernel_subsets(text: str) -> list[tuple[int, ...]]:
    """``'357,579'`` -> ``[(3, 5, 7), (5, 7, 9)]``; each a non-empty subset of the AWMS kernels."""
    import argparse
    out = []
    for part in text.split(","):
        sub = tuple(sorted({int(c) for c in part if c.isdigit()}))
        if not sub or not part.strip().isdigit() or len(sub) != len(part.strip()) or not set(sub) <= set(AWMS_KERNELS):
            raise argparse.ArgumentTypeError(f"expected subsets of the AWMS kernels {''.join(map(str, AWMS_KERNELS))} "
                                             f"written as digits, e.g. 357,579; got {part!r}")
        out.append(sub)
    return out


def add_recipe_arguments(parser, keep=("device", "batch", "patch", "amp", "channels_last", "val_images", "seed")) -> None:
    """The training flags a study or fine-tune passes on to every run (``train``'s flags of the same name)."""
    from benchmark.argtypes import add_config_flags
    from benchmark.train import TrainConfig
    fields = add_config_flags(parser, TrainConfig, skip=[f for f in TrainConfig.__dataclass_fields__ if f not in keep])
    parser.set_defaults(recipe_fields=fields)


def add_backend_arguments(parser) -> None:
    """The trainings go through `awsrn-bench sweep`: locally or as Ray tasks."""
    from benchmark.argtypes import int_at_least
    parser.add_argument("--backend", default="local", choices=["local", "ray", "group"])
    parser.add_argument("--address", default=None, help="join this Ray cluster (default: a local Ray)")
    parser.add_argument("--workers", type=int_at_least(1), default=None, help="local Ray: trainings at once")
    parser.add_argument("--gpus-per-job", type=float, default=None,
                        help="Ray: the share of a GPU each training asks for on CUDA (default 1)")


def main(args) -> int:
    from benchmark.argtypes import config_values
    from benchmark.results import emit
    from benchmark.train import TrainConfig
    recipe = config_values(TrainConfig, args, args.recipe_fields)
    df = run(args.checkpoint, args.model, tuple(args.datasets.split(",")), args.data_root, args.finetune_iters,
             [d for d in args.data.split(",") if d], out_dir=args.runs_dir, subsets=args.subsets, backend=args.backend,
             address=args.address, workers=args.workers, gpus_per_job=args.gpus_per_job, **recipe)
    label = Path(args.checkpoint).resolve().parent.name
    df = df.assign(checkpoint=label)
    merge_into(df, Path(args.out) / ("branch_pruning_finetune.csv" if args.finetune_iters else "branch_pruning.csv"))
    if args.finetune_iters:
        curves = read_finetune_curves(args.checkpoint, sorted(set(df.kernels.map(lambda k: tuple(map(int, k))))),
                                      args.finetune_iters, args.runs_dir, recipe)
        curves = merge_into(curves.assign(checkpoint=label), Path(args.out) / "curves" / "branch_pruning_finetune.csv",
                            figure=False)
        table = pd.read_csv(Path(args.out) / "branch_pruning_finetune.csv", dtype={"kernels": str})
        plot_curves(table, curves, Path(args.out) / "fig_branch_pruning_finetune_curves.png")
    emit(df[["checkpoint", "kernels", "retrain", "dataset", "psnr", "d_psnr", "ci_low", "ci_high", "p", "d_params",
             "d_multi_adds_g"]], args.format)
    return 0


if __name__ == "__main__":   # the same as `awsrn-bench ablate branch-pruning ...`
    import sys

    from benchmark.plugins import run_cli
    sys.exit(run_cli(NAME, sys.argv[1:], prog="python -m ablations.branch_pruning"))
