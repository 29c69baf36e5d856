"""Studies that need training: each compares variants trained at one stated, equal budget. The budget is
a parameter (``iters``), so a GPU user reruns them at full scale:

    python -m ablations.training_studies n_lfb --iters 20000 --device cuda --data ../shared/data/train/T91,...

Declared here: BAM on/off, residual unit (RU / wRU / AWRU), LRFU on/off and the number of LFBs (1 to 4).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

STUDIES = {
    "bam": {"variants": {"awsrn-s": {}, "awsrn-s-bam": {}}, "baseline": "awsrn-s",
            "measures": "PSNR/SSIM, params, Multi-Adds", "figure": "fig_study_bam.png"},
    "unit": {"variants": {"awsrn-s-ru": {}, "awsrn-s-wru": {}, "awsrn-s": {}}, "baseline": "awsrn-s",
             "measures": "PSNR/SSIM, params", "figure": "fig_study_unit.png"},
    "lrfu": {"variants": {"awsrn-s-nolrfu": {}, "awsrn-s": {}}, "baseline": "awsrn-s",
             "measures": "PSNR/SSIM, params", "figure": "fig_study_lrfu.png"},
    "n_lfb": {"variants": {f"awsrn-l[n_lfb={n}]": {"n_lfb": n} for n in (1, 2, 3, 4)},
              "baseline": "awsrn-l[n_lfb=4]", "measures": "PSNR/SSIM vs params", "figure": "fig_study_n_lfb.png"},
}


def run_dir(out: str | Path, label: str, scale: int, iters: int, seed: int) -> Path:
    """Keyed by variant, scale, budget and seed (not by study): the AWSRN-S baseline that the BAM, unit and
    LRFU studies share is trained once per budget and seed, and a rerun resumes instead of retraining.
    Seed 1 keeps the folder name it had before seeds existed."""
    name = label.replace("[", "-").replace("]", "").replace("=", "")
    return Path(out) / f"x{scale}-{iters}it" / (name if seed == 1 else f"{name}-seed{seed}")


def run(study: str, iters: int, data, scale: int = 4, out: str = "runs/studies", device: str = "cpu",
        datasets=("Set5", "Set14"), data_root=None, seeds=(1,), backend: str = "local", address: str | None = None,
        workers: int | None = None, gpus_per_job: float | None = None, **train_kw) -> pd.DataFrame:
    """Train each variant of ``study`` for ``iters`` iterations (cosine schedule) with each seed and grade it
    on ``datasets``; ``train_kw`` goes to ``TrainConfig`` (batch, patch, ...), equal for every variant.

    The trainings are submitted as jobs of ``benchmark.sweep`` (``backend='ray'``: one Ray task each, in
    parallel, ``gpus_per_job`` of a GPU each on CUDA, default 1); a run already finished is left as it is.

    One row per variant and dataset: PSNR/SSIM averaged over the seeds; ``d_psnr`` against the study's
    baseline with ``ci_low``/``ci_high`` (95% paired bootstrap over the images, on the seed-averaged
    per-image PSNR) and ``p`` (Wilcoxon); the spread of the per-seed differences (``d_psnr_seed_min``,
    ``d_psnr_seed_max``, ``d_psnr_seed_sd``); and ``verdict``: "holds" only when the interval excludes 0,
    p < 0.05 and every seed's difference has the same sign."""
    from benchmark.complexity import count_params, model_complexity
    from benchmark.evaluate import evaluate
    from benchmark.registry import create_model
    from benchmark.sweep import Job, run_training_jobs

    spec = STUDIES[study]
    runs = [(label, overrides, seed, run_dir(out, label, scale, iters, seed))
            for label, overrides in spec["variants"].items() for seed in seeds]
    jobs = [Job(i, "train", {"model": label.split("[")[0], "scale": scale, "data": list(data), "out": str(rd),
                             "iters": iters, "schedule": "cosine", "device": device, "val_every": iters,
                             "ckpt_every": iters, "log_every": max(1, iters // 20), "seed": seed,
                             "overrides": overrides, **train_kw},
                num_gpus=(gpus_per_job if gpus_per_job is not None else 1.0) if device.startswith("cuda") else 0.0)
            for i, (label, overrides, seed, rd) in enumerate(runs)]
    run_training_jobs(jobs, Path(out), backend=backend, address=address, workers=workers, data_root=data_root)
    images, info = [], {}
    for label, overrides, seed, rd in runs:
        variant = label.split("[")[0]
        m = create_model(variant, scale=scale, weights=rd / "model.safetensors", **overrides)
        res = evaluate(m, list(datasets), [scale], data_root=data_root, progress=False)
        images.append(res.images.assign(model=label, seed=seed))
        info[label] = {"params": count_params(m), "multi_adds_g": model_complexity(m, scale)["multi_adds_g"]}
    return summarize_study(study, pd.concat(images, ignore_index=True), info, scale, iters)


def summarize_study(study: str, images: pd.DataFrame, info: dict, scale: int, iters: int) -> pd.DataFrame:
    """The study's table from per-image rows (``variant``, ``seed``, ``dataset``, ``image``, ``psnr``, ``ssim``)."""
    from benchmark.stats import diff_columns
    base = STUDIES[study]["baseline"]
    seeds = sorted(images.seed.unique())
    rows = []
    for label in dict.fromkeys(images.model):
        for ds in dict.fromkeys(images.dataset):
            mine = images[(images.model == label) & (images.dataset == ds)]
            ref = images[(images.model == base) & (images.dataset == ds)]
            avg = lambda d: d.groupby(["dataset", "image"], as_index=False)[["psnr", "ssim"]].mean()  # noqa: E731
            per_seed = (mine.groupby("seed").psnr.mean() - ref.groupby("seed").psnr.mean()).reindex(seeds)
            stats = diff_columns(avg(mine), avg(ref))
            holds = (label != base and (stats["ci_low"] > 0 or stats["ci_high"] < 0) and stats["p"] < 0.05
                     and (np.all(per_seed > 0) or np.all(per_seed < 0)))
            rows.append({"study": study, "model": label, "baseline": base, "scale": scale, "iters": iters,
                         "seeds": ",".join(map(str, seeds)), "dataset": ds, "psnr": mine.psnr.mean(),
                         "ssim": mine.ssim.mean(), **info[label], "d_psnr": per_seed.mean(), **stats,
                         "d_psnr_seed_min": per_seed.min(), "d_psnr_seed_max": per_seed.max(),
                         "d_psnr_seed_sd": per_seed.std(ddof=1) if len(seeds) > 1 else np.nan,
                         "verdict": "baseline" if label == base else ("holds" if holds else "not significant")})
    return pd.DataFrame(rows)


def plot(df: pd.DataFrame, out: Path):
    """A training study: each variant's PSNR difference to the study's baseline per dataset, with its 95%
    paired interval (older tables without intervals: PSNR bars), params in the labels."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    variants = list(dict.fromkeys(df.model))
    datasets = list(dict.fromkeys(df.dataset))
    with_ci = "ci_low" in df and df.ci_low.notna().any()
    fig, ax = plt.subplots(figsize=(1.6 + 1.4 * len(variants), 3.6))
    width = 0.8 / len(datasets)
    for i, ds in enumerate(datasets):
        g = df[df.dataset == ds].set_index("model").reindex(variants)
        x = np.arange(len(variants)) + i * width
        if with_ci:
            ax.bar(x, g.d_psnr, width, label=ds, yerr=[g.d_psnr - g.ci_low, g.ci_high - g.d_psnr], capsize=3)
        else:
            ax.bar(x, g.psnr, width, label=ds)
    params = df.drop_duplicates("model").set_index("model").reindex(variants).params
    ax.set_xticks(np.arange(len(variants)) + 0.4 - width / 2,
                  [f"{v}\n{p / 1e3:.0f}K" for v, p in zip(variants, params)], fontsize=7)
    if with_ci:
        ax.axhline(0, color="k", lw=0.8)
        ax.set_ylabel(f"PSNR - {df.baseline.iloc[0]} (dB), 95% CI")
    else:
        ax.set_ylim(np.nanmin(df.psnr) - 1, np.nanmax(df.psnr) + 0.5)
        ax.set_ylabel("PSNR (dB)")
    seeds = f", seeds {df.seeds.iloc[0]}" if "seeds" in df else ""
    ax.set_title(f"study '{df.study.iloc[0]}', x{int(df.scale.iloc[0])}, {int(df.iters.iloc[0])} iterations each{seeds}",
                 fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


NAME = "study"
HELP = "train the variants of a study (" + ", ".join(STUDIES) + ") at one budget and grade them"


def add_arguments(parser) -> None:
    from benchmark.argtypes import device, int_at_least, scale, seed_list
    from ablations.branch_pruning import add_backend_arguments
    parser.add_argument("name", choices=sorted(STUDIES))
    parser.add_argument("--iters", type=int_at_least(1), required=True, help="the budget, equal for every variant")
    parser.add_argument("--data", required=True, help="training folders, comma-separated")
    parser.add_argument("--scale", type=scale, default=4)
    parser.add_argument("--device", default="cpu", type=device)
    parser.add_argument("--datasets", default="Set5,Set14")
    parser.add_argument("--seeds", type=seed_list, default=(1,),
                        help="train every variant with each seed, e.g. 1,2,3 (the table reports the spread)")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--out", default="results", help="results folder: <out>/study_<name>.csv and its figure")
    parser.add_argument("--format", default="table", choices=["table", "csv", "md", "latex"])
    add_backend_arguments(parser)


def main(args) -> int:
    from benchmark.results import emit, write_table
    df = run(args.name, args.iters, [d for d in args.data.split(",") if d], args.scale, device=args.device,
             datasets=tuple(args.datasets.split(",")), data_root=args.data_root, seeds=args.seeds,
             backend=args.backend, address=args.address, workers=args.workers, gpus_per_job=args.gpus_per_job)
    out = Path(args.out)
    write_table(df, out / f"study_{args.name}.csv")
    plot(df, out / f"fig_study_{args.name}.png")
    emit(df[["model", "iters", "seeds", "dataset", "psnr", "d_psnr", "ci_low", "ci_high", "p", "verdict"]], args.format)
    return 0


if __name__ == "__main__":   # the same as `awsrn-bench ablate study ...`
    import sys

    from benchmark.plugins import run_cli
    sys.exit(run_cli(NAME, sys.argv[1:], prog="python -m ablations.training_studies"))
