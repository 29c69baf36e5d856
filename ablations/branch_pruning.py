"""Branch pruning: the paper's claim that "the redundant scale branch can be removed according to the
adaptive weights", tested. Every non-empty subset of {3, 5, 7, 9} is applied to a trained checkpoint
without retraining (and, with ``finetune_iters > 0``, after a short fine-tune from the full model):
delta PSNR/SSIM against delta params, Multi-Adds and CPU latency.
"""
from __future__ import annotations

import json
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
        store=None, subsets=None, curve_points: int = 10, bank=None, **train_kw) -> pd.DataFrame:
    """Rows per subset, arm ('none', 'finetune-N') and dataset; ``train_kw`` goes to the fine-tune's
    ``TrainConfig`` (batch, patch, seed, ...); the fine-tunes are submitted as ``benchmark.sweep`` jobs
    (``backend='ray'``: in parallel). With ``store`` the per-image rows go into the results store, keyed
    by the pruned model's name and the weights it was made from, so a rerun reads them back. ``subsets``
    (default all 15) limits the study; the full set is always included, as the deltas' reference. Each
    ``d_psnr`` against the full model of the same arm comes with ``ci_low``/``ci_high`` (95% paired bootstrap
    over the images) and ``p`` (Wilcoxon signed-rank).

    ``bank`` (a results store, e.g. ``results/store``) keeps each graded fine-tune for good: its per-image rows
    (keyed by the fine-tuned weights' sha256, the ``finetune_sha256`` column) and its held-out curve. A subset
    whose fine-tune folder is gone (a new checkout: ``runs/`` is not committed) but which the bank holds is not
    fine-tuned again but read from the bank, so a study that spans sessions keeps one control.

    The stages: fine-tune every subset (when ``finetune_iters``) that neither its folder nor the bank holds,
    grade every subset in each arm (banking each fine-tune), then the deltas against the full model, their
    intervals and the Pareto front."""
    from benchmark.checkpoints import file_sha256, read_checkpoint
    cfg = read_checkpoint(checkpoint).config
    subsets = [tuple(x) for x in (subsets or SUBSETS)]
    if tuple(AWMS_KERNELS) not in subsets:
        subsets.append(tuple(AWMS_KERNELS))
    pr = _PruningRun(checkpoint, variant, cfg, finetune_iters, out_dir, train_kw, _as_store(bank))
    if finetune_iters:
        todo = [sub for sub in subsets if pr.banked(sub) is None]
        _finetune(pr, todo, train_data, curve_points, backend, address, workers, gpus_per_job, data_root, datasets)
    df, per_image = _grade(pr, subsets, datasets, data_root, store, latency_lr)
    df = mark_pareto(add_intervals(_add_deltas(df), per_image))
    if finetune_iters:
        from ablations.training_studies import recipe_note
        df = add_separation(df, read_finetune_curves(checkpoint, subsets, finetune_iters, out_dir, train_kw, bank))
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
    bank: object = None    # a ResultStore that keeps the graded fine-tunes (None: nothing banked)

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

    def finetune_name(self, sub) -> str:
        """The store's identity of a subset's fine-tune (beside its weights' sha256)."""
        return f"{self.variant or 'awsrn'}[awms={''.join(map(str, sub))},finetune-{self.finetune_iters}]"

    def banked(self, sub) -> pd.DataFrame | None:
        """The bank's record (curve rows with ``finetune_sha256``) of a subset whose fine-tune folder holds no
        weights; None where the folder has them (they are graded as they are) or the bank has no record."""
        if (self.tune_dir(sub) / "model.safetensors").is_file():
            return None
        return read_bank(self.bank, self.checkpoint, sub, self.finetune_iters, self.train_kw)


def _finetune(pr: _PruningRun, subsets, train_data, curve_points, backend, address, workers, gpus_per_job, data_root,
              datasets):
    """Fine-tune each subset from the full checkpoint as ``sweep`` jobs. The full set is fine-tuned too: it is the
    control that the fine-tuned subsets are measured against (the extra iterations alone move a short-schedule
    checkpoint); an interrupted arm resumes. With a bank and the local backend each fine-tune is graded and banked
    as soon as it is done, so a session that ends mid-study keeps every finished arm (``runs/`` does not last)."""
    from ablations.training_studies import curve_schedule
    from benchmark.sweep import Job, JobsFailed, run_training_jobs
    share = (gpus_per_job if gpus_per_job is not None else 1.0) if pr.device.startswith("cuda") else 0.0
    jobs = [Job(i, "train", {"model": pr.registry_name, "scale": pr.cfg.scale, "data": list(train_data),
                             "out": str(pr.tune_dir(sub)), "iters": pr.finetune_iters, "lr": 1e-4, "schedule": "cosine",
                             **curve_schedule(pr.finetune_iters, curve_points), "init_from": str(pr.checkpoint),
                             "overrides": {**pr.structure, "awms_kernels": sub}, **pr.train_kw}, num_gpus=share)
            for i, sub in enumerate(subsets)]
    one_by_one = pr.bank is not None and backend == "local"
    failed = []
    for batch in ([[j] for j in jobs] if one_by_one else [jobs]):
        try:
            run_training_jobs(batch, Path(pr.out_dir or "runs") / "prune", backend=backend, address=address,
                              workers=workers, data_root=data_root)
        except JobsFailed as exc:      # the others still train; every failure is raised together at the end
            failed.append(str(exc))
            continue
        if one_by_one:
            _bank_finetune(pr, subsets[batch[0].index], datasets, data_root)
    if failed:
        raise JobsFailed("; ".join(failed))


def _grade(pr: _PruningRun, subsets, datasets, data_root, store, latency_lr) -> tuple[pd.DataFrame, dict]:
    """One row per (subset, arm, dataset) with its cost (params, Multi-Adds, CPU latency of the pruned deploy
    form), and the per-image rows behind each (``per_image``: (kernels, arm) -> rows) for the intervals."""
    from benchmark.checkpoints import load_pruned
    from benchmark.complexity import awms_subset_multi_adds, count_params
    from benchmark.evaluate import evaluate
    from benchmark.latency import LatencySpec, measure
    from benchmark.models import AWSRN
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
        torch.manual_seed(0)
        lat, _ = measure(model, scale, spec)
        arms = [("none", evaluate(model.eval(), list(datasets), [scale], data_root=data_root, store=store,
                                  progress=False, device=pr.device), None)]
        if pr.finetune_iters:
            arms.append((f"finetune-{pr.finetune_iters}", *_grade_finetune(pr, sub, datasets, data_root, store)))
        for mode, res, ft_sha in arms:
            per_image[tag, mode] = res.images
            for _, r in res.summary.iterrows():
                rows.append({"kernels": tag, "n_branches": len(sub), "retrain": mode,
                             "dataset": r.dataset, "scale": scale, "psnr": r.psnr, "ssim": r.ssim,
                             "params": count_params(model), "multi_adds_g": subset_macs[tuple(sub)],
                             "latency_ms": lat["latency_ms"], "latency_lr": f"{latency_lr[0]}x{latency_lr[1]}",
                             **({"finetune_sha256": ft_sha} if pr.finetune_iters else {})})
    return pd.DataFrame(rows), per_image


def _grade_finetune(pr: _PruningRun, sub, datasets, data_root, store):
    """(rows, sha256 of the fine-tuned weights) of one subset's fine-tune: graded from its folder (and banked:
    its per-image rows and curve), or, with the folder gone, read back from the bank."""
    from benchmark.evaluate import stored_result
    record = pr.banked(sub)
    if record is not None:
        sha = record.finetune_sha256.iloc[0]
        return stored_result(pr.finetune_name(sub), sha, datasets, pr.cfg.scale, pr.bank, data_root=data_root), sha
    return _bank_finetune(pr, sub, datasets, data_root, store)


def _bank_finetune(pr: _PruningRun, sub, datasets, data_root, store=None):
    """Grade one fine-tune from its folder (rows the bank already has are read back) and bank it."""
    from benchmark.evaluate import evaluate
    from benchmark.registry import create_model
    ft = create_model(pr.registry_name, scale=pr.cfg.scale, weights=pr.tune_dir(sub) / "model.safetensors",
                      awms_kernels=sub, **pr.structure)
    ft.provenance = replace(ft.provenance, model=pr.finetune_name(sub))
    res = evaluate(ft.eval(), list(datasets), [pr.cfg.scale], data_root=data_root, store=pr.bank or store,
                   progress=False, device=pr.device)   # graded where it was fine-tuned
    if pr.bank is not None:   # after the rows: a record in the bank means its rows are complete
        curve = read_finetune_curves(pr.checkpoint, [sub], pr.finetune_iters, pr.out_dir, pr.train_kw)
        pr.bank.write_run(BANK, bank_key(pr.checkpoint, sub, pr.finetune_iters, pr.train_kw),
                          curve.assign(finetune_sha256=ft.provenance.sha256),
                          {"recipe": json.dumps(pr.train_kw, default=str), "device": pr.device})
    return res, ft.provenance.sha256


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


def read_finetune_curves(checkpoint, subsets, finetune_iters: int, out_dir=None, recipe: dict | None = None,
                         bank=None):
    """Each fine-tune's held-out learning curve: one row per (kernels, iter), ``seed`` from its recipe,
    ``weights_sha256`` of the checkpoint it started from; from its folder's log, or from the ``bank`` where
    the folder is gone."""
    from ablations.training_studies import read_curves
    from benchmark.checkpoints import file_sha256
    frames = []
    for sub in subsets:
        rd = finetune_dir(checkpoint, sub, finetune_iters, out_dir, recipe)
        record = None if (rd / "train_log.csv").is_file() else read_bank(_as_store(bank), checkpoint, sub,
                                                                          finetune_iters, recipe)
        if record is not None:
            frames.append(record[["kernels", "seed", "iter", "val_psnr", "loss"]].astype({"kernels": str}))
        else:
            frames.append(read_curves([("".join(map(str, sub)), {}, (recipe or {}).get("seed", 1), rd)])
                          .rename(columns={"model": "kernels"}))
    return pd.concat(frames, ignore_index=True).assign(weights_sha256=file_sha256(checkpoint))


BANK = "prune"     # <store>/prune/: one record per graded fine-tune (its curve, the sha256 of its weights)


def bank_key(checkpoint, sub, finetune_iters: int, recipe: dict | None = None) -> dict:
    """A fine-tune's key in the bank: the same identity as its folder (``finetune_dir``)."""
    rd = finetune_dir(checkpoint, sub, finetune_iters, None, recipe)
    return {"from": rd.parent.name, "tune": rd.name}


def read_bank(bank, checkpoint, sub, finetune_iters: int, recipe: dict | None = None) -> pd.DataFrame | None:
    """The bank's record of a fine-tune (its curve rows, with ``finetune_sha256``), or None."""
    if bank is None:
        return None
    rec = bank.read_run(BANK, bank_key(checkpoint, sub, finetune_iters, recipe))
    return None if rec.empty else rec


def bank_vs_table(results: str | Path, label: str) -> pd.DataFrame:
    """Each banked fine-tune of checkpoint ``label`` beside the table's fine-tuned row of the same subset, budget
    and checkpoint weights: the same fine-tune (recipe, seed) run twice when their ``finetune_sha256`` differ. One
    row per (kernels, dataset): ``psnr_table``, ``psnr_bank``, ``d_psnr`` (bank - table), ``same_weights``, and
    ``curve_max_abs`` (the largest held-out curve difference over the validations both have)."""
    import re

    from benchmark.evaluate import summarize
    results = Path(results)
    table = pd.read_csv(results / "branch_pruning_finetune.csv", dtype={"kernels": str})
    cpath = results / "curves" / "branch_pruning_finetune.csv"
    curves = (pd.read_csv(cpath, dtype={"kernels": str}) if cpath.is_file()
              else pd.DataFrame(columns=["checkpoint", "kernels", "iter", "val_psnr"]))
    table, curves = table[table.checkpoint == label], curves[curves.checkpoint == label]
    rows = []
    for path in sorted((results / "store" / BANK).glob(f"from-{label}-*.csv")):
        rec = pd.read_csv(path, dtype={"kernels": str})
        kernels, sha = rec.kernels.iloc[0], rec.finetune_sha256.iloc[0]
        arm = "finetune-" + re.search(r"-(\d+)it", path.name).group(1)
        mine = table[(table.kernels == kernels) & (table.retrain == arm) & (table.weights_sha256 == rec.weights_sha256.iloc[0])]
        if mine.empty:
            continue
        images = pd.concat([pd.read_csv(f) for f in sorted((results / "store" / "eval").glob(f"*__weights-{sha[:12]}__*.csv"))])
        banked = summarize(images).set_index("dataset").psnr
        both = rec.merge(curves[curves.kernels == kernels], on="iter", suffixes=("", "_table"))
        for _, r in mine.iterrows():
            rows.append({"checkpoint": label, "kernels": kernels, "dataset": r.dataset, "retrain": arm,
                         "psnr_table": r.psnr, "psnr_bank": banked.get(r.dataset, np.nan),
                         "d_psnr": banked.get(r.dataset, np.nan) - r.psnr,
                         "same_weights": r.get("finetune_sha256") == sha,
                         "curve_max_abs": float((both.val_psnr - both.val_psnr_table).abs().max())})
    return pd.DataFrame(rows)


def _as_store(bank):
    from benchmark.results import ResultStore
    return ResultStore(bank) if isinstance(bank, (str, Path)) else bank


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


def in_study_order(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with its subsets in the order of a whole study (``SUBSETS``), each subset's rows as they were."""
    order = df.kernels.map(lambda k: SUBSETS.index(tuple(map(int, k)))).to_numpy()
    return df.iloc[np.argsort(order, kind="stable")].reset_index(drop=True)


def join_study(new: pd.DataFrame, table: pd.DataFrame | None) -> tuple[pd.DataFrame | None, str]:
    """How one checkpoint's fine-tuned rows (``new``) enter the table: (the checkpoint's rows to write, or None
    to leave the table's as they are; how: 'new', 'joined', 'replaced' or 'kept').

    - 'joined': the table's rows of the same study (same weights, budget and recipe) measured against the same
      fine-tuned control (equal ``finetune_sha256`` of 3579) stay beside this run's (which win for the subsets
      both have), and the Pareto front is marked again over them all: a study grows a few subsets per session.
    - 'replaced': rows of another study, or against another control when this run covers all their subsets.
    - 'kept': rows against another control with subsets this run lacks: a smaller study never erases a larger
      one (its fine-tunes are banked; a later run of the missing subsets against the banked control completes it)."""
    label = new.checkpoint.iloc[0]
    old = table[table.checkpoint == label] if table is not None and "checkpoint" in table else pd.DataFrame()
    if old.empty:
        return new, "new"

    def control(d: pd.DataFrame):
        c = d[(d.kernels == "3579") & (d.retrain != "none")]
        sha = c["finetune_sha256"] if "finetune_sha256" in c else pd.Series(dtype=object)
        return sha.iloc[0] if len(sha) and sha.notna().all() and sha.nunique() == 1 else None

    def study(d: pd.DataFrame):
        return tuple(sorted(set(map(str, d.get("weights_sha256", pd.Series(dtype=str)).dropna()))) +
                     sorted(set(map(str, d.retrain))) + sorted(set(map(str, d.get("recipe", pd.Series(dtype=str)).fillna("")))))

    if study(old) == study(new) and control(new) is not None and control(old) == control(new):
        rows = pd.concat([old[~old.kernels.isin(set(new.kernels))], new], ignore_index=True)
        return mark_pareto(in_study_order(rows)), "joined"
    if study(old) != study(new) or set(old.kernels) <= set(new.kernels):
        return new, "replaced"
    return None, "kept"


def _write_finetuned(df: pd.DataFrame, label: str, out: Path, args, recipe: dict) -> None:
    """The fine-tuned table, its curves and figures, as ``join_study`` decides; one line on stderr says which."""
    import sys
    path, curves_path = out / "branch_pruning_finetune.csv", out / "curves" / "branch_pruning_finetune.csv"
    table = pd.read_csv(path, dtype={"kernels": str}) if path.is_file() else None
    rows, how = join_study(df, table)
    subsets = sorted(set(df.kernels))
    if rows is None:
        kept = sorted(set(table[table.checkpoint == label].kernels) - set(df.kernels))
        print(f"{path}: kept the rows of {label}: they are measured against another fine-tuned control and have "
              f"subsets this run lacks ({', '.join(kept)}); this run's fine-tunes are banked in {out / 'store'}: "
              f"a run with --subsets {','.join(kept + [k for k in subsets if k != '3579'])} (the banked ones read "
              f"back) completes the study against its control", file=sys.stderr)
        return
    merge_into(rows, path)
    curves = read_finetune_curves(args.checkpoint, [tuple(map(int, k)) for k in subsets], args.finetune_iters,
                                  args.runs_dir, recipe, out / "store").assign(checkpoint=label)
    if how == "joined" and curves_path.is_file():
        old = pd.read_csv(curves_path, dtype={"kernels": str})
        old = old[(old.checkpoint == label) & ~old.kernels.isin(subsets)]
        curves = in_study_order(pd.concat([old, curves], ignore_index=True))
        print(f"{path}: {label}: joined {', '.join(subsets)} to its rows against the same fine-tuned control",
              file=sys.stderr)
    curves = merge_into(curves, curves_path, figure=False)
    plot_curves(pd.read_csv(path, dtype={"kernels": str}), curves, out / "fig_branch_pruning_finetune_curves.png")


def main(args) -> int:
    from benchmark.argtypes import config_values
    from benchmark.results import emit
    from benchmark.train import TrainConfig
    recipe = config_values(TrainConfig, args, args.recipe_fields)
    df = run(args.checkpoint, args.model, tuple(args.datasets.split(",")), args.data_root, args.finetune_iters,
             [d for d in args.data.split(",") if d], out_dir=args.runs_dir, subsets=args.subsets, backend=args.backend,
             address=args.address, workers=args.workers, gpus_per_job=args.gpus_per_job,
             bank=Path(args.out) / "store" if args.finetune_iters else None, **recipe)
    label = Path(args.checkpoint).resolve().parent.name
    df = df.assign(checkpoint=label)
    if not args.finetune_iters:
        merge_into(df, Path(args.out) / "branch_pruning.csv")
    else:
        _write_finetuned(df, label, Path(args.out), args, recipe)
    emit(df[["checkpoint", "kernels", "retrain", "dataset", "psnr", "d_psnr", "ci_low", "ci_high", "p", "d_params",
             "d_multi_adds_g"]], args.format)
    return 0


if __name__ == "__main__":   # the same as `awsrn-bench ablate branch-pruning ...`
    import sys

    from benchmark.plugins import run_cli
    sys.exit(run_cli(NAME, sys.argv[1:], prog="python -m ablations.branch_pruning"))
