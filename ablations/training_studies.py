"""Studies that need training: each compares variants trained at one stated, equal budget. The budget is
a parameter (``iters``), so a GPU user reruns them at full scale:

    python -m ablations.training_studies n_lfb --iters 20000 --device cuda --data ../shared/data/train/T91,...

Declared here: BAM on/off, residual unit (RU / wRU / AWRU), LRFU on/off, the number of LFBs (1 to 4), the
training data (a quarter, half or all of the training images, and all with downscaled copies), and the
fine-tune of the committed AWSRN-S checkpoint with and without those copies (``data_ft``), and with and without a
moving average of the weights (``ema_ft``).
"""
from __future__ import annotations

import json
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
    # not a structure but the training data: a quarter, half and all of the 281 training images, and all of
    # them with four downscaled copies each (VDSR's augmentation) -- where AWSRN-S x4 stops learning from the
    # 291 images, and whether more data (what DIV2K's 800 images give the paper) moves it
    "data": {"variants": {"awsrn-s[train_subset=70]": {"train": {"train_subset": 70}},
                          "awsrn-s[train_subset=140]": {"train": {"train_subset": 140}},
                          "awsrn-s": {},
                          "awsrn-s[hr_rescale=4]": {"train": {"hr_rescale": 4}}},
             "baseline": "awsrn-s", "measures": "PSNR/SSIM vs training images", "figure": "fig_study_data.png"},
    # the same question at the end of a long run instead of from scratch: the committed AWSRN-S checkpoint (which
    # overfits its 232 images: held-out PSNR peaked mid-run) fine-tuned for a new cosine cycle on the same
    # images, and on them with four downscaled copies each -- does more data lift a model that has plateaued?
    "data_ft": {"variants": {"awsrn-s[ft]": {}, "awsrn-s[ft,hr_rescale=4]": {"train": {"hr_rescale": 4}}},
                "baseline": "awsrn-s[ft]", "init": "checkpoints/awsrn-s-x{scale}/model.safetensors",
                "measures": "PSNR/SSIM of a fine-tune with more data", "figure": "fig_study_data_ft.png"},
    # the plateaued checkpoint once more, with the copies, with and without an exponential moving average of the
    # weights (train --ema, BasicSR's ema_decay 0.999): does averaging out the last steps' noise lift it?
    "ema_ft": {"variants": {"awsrn-s[ft,hr_rescale=4]": {"train": {"hr_rescale": 4}},
                            "awsrn-s[ft,hr_rescale=4,ema=0.999]": {"train": {"hr_rescale": 4, "ema": 0.999}}},
               "baseline": "awsrn-s[ft,hr_rescale=4]", "init": "checkpoints/awsrn-s-x{scale}/model.safetensors",
               "measures": "PSNR/SSIM of a fine-tune with a weight average", "figure": "fig_study_ema_ft.png"},
}


def init_checkpoint(study: str, scale: int) -> Path | None:
    """The checkpoint every run of ``study`` starts from (a fine-tune study), or None (from scratch)."""
    init = STUDIES[study].get("init")
    if init is None:
        return None
    path = Path(init.format(scale=scale))
    if not path.is_file():
        raise FileNotFoundError(f"study {study!r} fine-tunes {path}, which does not exist (a checkpoint at x{scale})")
    return path


def structure(spec: dict) -> dict:
    """The model config overrides of a variant (its ``train`` entry holds training keys instead)."""
    return {k: v for k, v in spec.items() if k != "train"}


CURVE_POINTS = 10     # validations per run on the held-out images: the learning curves of the variants


def run_dir(out: str | Path, label: str, scale: int, iters: int, seed: int, recipe: dict | None = None,
            start: Path | None = None) -> Path:
    """Keyed by variant, scale, budget, seed and the recipe keys that differ from the defaults
    (``benchmark.train.run_tag``), not by study: the AWSRN-S baseline that the BAM, unit and LRFU studies
    share is trained once per budget and seed, and a rerun resumes instead of retraining. Seed 1 keeps the
    folder name it had before seeds existed. A fine-tune study's runs are keyed by the content of the
    checkpoint they ``start`` from too (as the pruning fine-tunes are): once that checkpoint is replaced, a
    rerun trains anew from the new one instead of reusing runs of the old."""
    from benchmark.train import run_tag
    name = label.replace("[", "-").replace("]", "").replace("=", "").replace(",", "-")
    origin = ""
    if start is not None:
        from benchmark.checkpoints import file_sha256
        origin = f"-from-{file_sha256(start)[:12]}"
    return (Path(out) / f"x{scale}-{iters}it{run_tag(recipe or {})}{origin}"
            / (name if seed == 1 else f"{name}-seed{seed}"))


def curve_schedule(iters: int, points: int = CURVE_POINTS) -> dict:
    """``val_every`` for ``points`` validations within the budget, a ``log_every`` that divides it (a
    validation happens on a log row), and a resumable checkpoint at each validation (an interrupted run
    goes on from its last point, not from the start: CPU runs take hours)."""
    val_every = max(1, iters // max(1, points))
    return {"val_every": val_every, "log_every": val_every // 2 if val_every % 2 == 0 else val_every,
            "ckpt_every": val_every}


def runs_of(study: str, iters: int, scale: int, out, seeds, recipe: dict | None = None):
    """(label, overrides, seed, run folder) of every training of ``study``."""
    start = init_checkpoint(study, scale)
    return [(label, overrides, seed, run_dir(out, label, scale, iters, seed, recipe, start))
            for label, overrides in STUDIES[study]["variants"].items() for seed in seeds]


def read_curves(runs) -> pd.DataFrame:
    """The held-out validation PSNR (and the training loss of the interval before it) of each run's
    ``train_log.csv``, its last segment (a fine-tune's log also holds the segments of the model it
    started from): one row per (model, seed, iter) at the scheduled validations (every ``val_every`` of
    its recipe, and its last iteration). A run stopped and resumed also validated where it stopped; that
    point is left out so that every run of a study has the same iterations."""
    rows = []
    for label, _, seed, rd in runs:
        log = pd.read_csv(rd / "train_log.csv")
        if "segment" in log:
            log = log[log.segment == log.segment.max()]
        val = log[log.val_psnr.notna()]
        recipe = rd / "recipe.json"
        every = json.loads(recipe.read_text()).get("val_every") if recipe.exists() else None
        if every:
            val = val[(val["iter"] % every == 0) | (val["iter"] == log["iter"].max())]
        rows.append(pd.DataFrame({"model": label, "seed": seed, "iter": val["iter"].to_numpy(),
                                  "val_psnr": val.val_psnr.to_numpy(), "loss": val.loss.to_numpy()}))
    return pd.concat(rows, ignore_index=True)


def run(study: str, iters: int, data, scale: int = 4, out: str = "runs/studies", device: str = "cpu",
        datasets=("Set5", "Set14"), data_root=None, seeds=(1,), backend: str = "local", address: str | None = None,
        workers: int | None = None, gpus_per_job: float | None = None, curve_points: int = CURVE_POINTS,
        **train_kw) -> pd.DataFrame:
    """Train each variant of ``study`` for ``iters`` iterations (cosine schedule) with each seed and grade it
    on ``datasets``; ``train_kw`` goes to ``TrainConfig`` (batch, patch, amp, ...), equal for every variant.
    Each run validates ``curve_points`` times on the held-out images (its learning curve, ``read_curves``).

    The trainings are submitted as jobs of ``benchmark.sweep`` (``backend='ray'``: one Ray task each, in
    parallel, ``gpus_per_job`` of a GPU each on CUDA, default 1; ``'group'``: together in one process); a
    run already finished is left as it is.

    One row per variant and dataset: PSNR/SSIM averaged over the seeds; ``d_psnr`` against the study's
    baseline with ``ci_low``/``ci_high`` (95% paired bootstrap over the images, on the seed-averaged
    per-image PSNR) and ``p`` (Wilcoxon); the spread of the per-seed differences (``d_psnr_seed_min``,
    ``d_psnr_seed_max``, ``d_psnr_seed_sd``); ``verdict``: "holds" only when the interval excludes 0,
    p < 0.05 and every seed's difference has the same sign; and from the learning curves
    (``benchmark.stats.separation``) ``separated_at_iter``: since when every seed's held-out difference has
    kept its final sign (NaN: not separated within the budget)."""
    from benchmark.complexity import count_params, model_complexity
    from benchmark.evaluate import evaluate
    from benchmark.registry import create_model
    from benchmark.sweep import Job, run_training_jobs

    runs = runs_of(study, iters, scale, out, seeds, train_kw)
    init = init_checkpoint(study, scale)
    start = {} if init is None else {"init_from": str(init)}
    jobs = [Job(i, "train", {**start, "model": label.split("[")[0], "scale": scale, "data": list(data), "out": str(rd),
                             "iters": iters, "schedule": "cosine", "device": device, **curve_schedule(iters, curve_points),
                             "seed": seed, "overrides": structure(overrides), **train_kw, **overrides.get("train", {})},
                num_gpus=(gpus_per_job if gpus_per_job is not None else 1.0) if device.startswith("cuda") else 0.0)
            for i, (label, overrides, seed, rd) in enumerate(runs)]
    run_training_jobs(jobs, Path(out), backend=backend, address=address, workers=workers, data_root=data_root)
    images, info = [], {}
    for label, overrides, seed, rd in runs:
        variant = label.split("[")[0]
        m = create_model(variant, scale=scale, weights=rd / "model.safetensors", **structure(overrides))
        recipe = json.loads((rd / "recipe.json").read_text())
        trained_on = recipe.get("train_images", np.nan)   # pairs: with the downscaled copies (--hr-rescale)
        info[label] = {"params": count_params(m), "multi_adds_g": model_complexity(m, scale)["multi_adds_g"],
                       "train_images": trained_on, "train_pairs": recipe.get("train_pairs", trained_on)}
        res = evaluate(m, list(datasets), [scale], data_root=data_root, progress=False, device=device)
        images.append(res.images.assign(model=label, seed=seed))
    table = summarize_study(study, pd.concat(images, ignore_index=True), info, scale, iters)
    return add_separation(table, read_curves(runs), recipe_note(device, train_kw, init))


def recipe_note(device: str, train_kw: dict, init: Path | None = None) -> str:
    """The recipe in one cell, e.g. ``cuda, batch 16, patch 48, amp bf16, channels_last``; a learning rate
    other than the default and the checkpoint a fine-tune study started from (with its iterations) too."""
    from benchmark.train import TrainConfig
    d = TrainConfig.__dataclass_fields__
    kw = {k: train_kw.get(k, d[k].default) for k in ("batch", "patch", "lr", "amp", "channels_last")}
    parts = [device.split(":")[0], f"batch {kw['batch']}", f"patch {kw['patch']}", f"amp {kw['amp']}"]
    parts += ["channels_last"] if kw["channels_last"] else []
    parts += [f"lr {kw['lr']:g}"] if kw["lr"] != d["lr"].default else []
    if init is not None:
        recipe = init.parent / "recipe.json"
        total = json.loads(recipe.read_text()).get("total_iters") if recipe.is_file() else None
        parts.append(f"from {init.parent}" + (f" at {total} iterations" if total else ""))
    return ", ".join(parts)


def add_separation(table: pd.DataFrame, curves: pd.DataFrame, recipe: str = "") -> pd.DataFrame:
    """The study table with each variant's ``separated_at_iter``, ``points_separated``, ``d_val_half`` and
    ``d_val_final`` (held-out PSNR difference halfway and at the last validation, mean over seeds) from the
    curves, and ``recipe``."""
    from benchmark.stats import separation
    sep = separation(curves, table.baseline.iloc[0])
    cols = ["separated_at_iter", "points_separated", "d_val_half", "d_val_final"]
    table = table.drop(columns=[c for c in cols + ["recipe"] if c in table])
    out = table.merge(sep[["model"] + cols], on="model", how="left")
    return out.assign(recipe=recipe) if recipe else out


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


def plot(df: pd.DataFrame, out: Path, curves: pd.DataFrame | None = None):
    """A training study: each variant's PSNR difference to the study's baseline per dataset, with its 95%
    paired interval (older tables without intervals: PSNR bars), params in the labels; with ``curves``
    (``read_curves``) a left panel of the held-out learning curves, where the variants separate."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    variants = list(dict.fromkeys(df.model))
    datasets = list(dict.fromkeys(df.dataset))
    with_ci = "ci_low" in df and df.ci_low.notna().any()
    bar_w = 1.6 + 1.4 * len(variants)
    if curves is not None and not curves.empty:
        fig, (cax, ax) = plt.subplots(1, 2, figsize=(4.8 + bar_w, 3.6), gridspec_kw={"width_ratios": [4.8, bar_w]})
        plot_curves(cax, df, curves)
    else:
        fig, ax = plt.subplots(figsize=(bar_w, 3.6))
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


def plot_curves(ax, df: pd.DataFrame, curves: pd.DataFrame, key: str = "model", baseline: str | None = None) -> None:
    """Each variant's held-out PSNR minus the baseline's, same seed, against iteration (line: mean over the
    seeds; band: lowest to highest seed), and a dotted line where it separated for good (``separated_at_iter``):
    the quantity ``benchmark.stats.separation`` reads."""
    import matplotlib.pyplot as plt
    sep = df.drop_duplicates(key).set_index(key).get("separated_at_iter")
    baseline = baseline if baseline is not None else df.baseline.iloc[0]
    base = curves[curves[key] == baseline].pivot_table(index="iter", columns="seed", values="val_psnr")
    labels = [lb for lb in dict.fromkeys(curves[key]) if lb != baseline]
    colors = plt.get_cmap("tab20" if len(labels) > 10 else "tab10").colors
    ax.axhline(0, color="k", lw=1.5, label=f"{baseline} (baseline)")
    for i, label in enumerate(labels):
        mine = curves[curves[key] == label].pivot_table(index="iter", columns="seed", values="val_psnr")
        seeds = mine.columns.intersection(base.columns)
        d = (mine[seeds] - base[seeds]).dropna(how="any")
        line, = ax.plot(d.index, d.mean(axis=1).to_numpy(), lw=1.2, color=colors[i % len(colors)], label=str(label))
        if d.shape[1] > 1:
            ax.fill_between(d.index, d.min(axis=1).to_numpy(), d.max(axis=1).to_numpy(), color=line.get_color(),
                            alpha=0.2, lw=0)
        at = sep.get(label) if sep is not None else None
        if at is not None and np.isfinite(at):
            ax.axvline(at, color=line.get_color(), ls=":", lw=1)
    ax.set_xlabel("iteration")
    ax.set_ylabel(f"held-out PSNR - {baseline} (dB)")
    ax.set_title("learning curves against the baseline (dotted: separated since)", fontsize=8)
    ax.legend(fontsize=6)
    ax.grid(alpha=0.3)


NAME = "study"
HELP = "train the variants of a study (" + ", ".join(STUDIES) + ") at one budget and grade them"


def add_arguments(parser) -> None:
    from benchmark.argtypes import int_at_least, scale, seed_list
    from ablations.branch_pruning import add_backend_arguments, add_recipe_arguments
    parser.add_argument("name", choices=sorted(STUDIES))
    parser.add_argument("--iters", type=int_at_least(1), required=True, help="the budget, equal for every variant")
    parser.add_argument("--data", required=True, help="training folders, comma-separated")
    parser.add_argument("--scale", type=scale, default=4)
    parser.add_argument("--datasets", default="Set5,Set14")
    parser.add_argument("--seeds", type=seed_list, default=(1,),
                        help="train every variant with each seed, e.g. 1,2,3 (the table reports the spread)")
    parser.add_argument("--curve-points", type=int_at_least(1), default=CURVE_POINTS,
                        help="held-out validations per run: the learning curves that show where the variants separate")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--runs-dir", default="runs/studies", help="folder of the trainings (a rerun resumes them)")
    parser.add_argument("--out", default="results", help="results folder: <out>/study_<name>.csv, its figure and "
                                                         "<out>/curves/study_<name>.csv")
    parser.add_argument("--format", default="table", choices=["table", "csv", "md", "latex"])
    add_recipe_arguments(parser, keep=("device", "batch", "patch", "lr", "amp", "channels_last", "val_images"))
    add_backend_arguments(parser)


def main(args) -> int:
    from benchmark.argtypes import config_values
    from benchmark.results import emit, write_table
    from benchmark.train import TrainConfig
    recipe = config_values(TrainConfig, args, args.recipe_fields)
    device = recipe.pop("device")
    df = run(args.name, args.iters, [d for d in args.data.split(",") if d], args.scale, out=args.runs_dir, device=device,
             datasets=tuple(args.datasets.split(",")), data_root=args.data_root, seeds=args.seeds,
             backend=args.backend, address=args.address, workers=args.workers, gpus_per_job=args.gpus_per_job,
             curve_points=args.curve_points, **recipe)
    out = Path(args.out)
    curves = read_curves(runs_of(args.name, args.iters, args.scale, args.runs_dir, args.seeds, recipe))
    write_table(df, out / f"study_{args.name}.csv")
    write_table(curves.assign(study=args.name), out / "curves" / f"study_{args.name}.csv")
    plot(df, out / f"fig_study_{args.name}.png", curves)
    emit(df[["model", "iters", "seeds", "dataset", "psnr", "d_psnr", "ci_low", "ci_high", "p", "verdict",
             "separated_at_iter"]], args.format)
    return 0


if __name__ == "__main__":   # the same as `awsrn-bench ablate study ...`
    import sys

    from benchmark.plugins import run_cli
    sys.exit(run_cli(NAME, sys.argv[1:], prog="python -m ablations.training_studies"))
