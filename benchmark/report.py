"""Reports: tables (CSV + Markdown + LaTeX) and figures in results/, drawn only from result files.

``reproduce()`` is the main job (``awsrn-bench reproduce`` / ``make reproduce``): it measures what is
missing into the store and the tables, then draws every figure from those tables and writes
``results/README.md`` as the index.
"""
from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from .atomic import atomic_write_text  # noqa: E402
from .results import write_table  # noqa: E402

LITERATURE_BICUBIC = {  # paper_notes.md section 4 (Y channel, MATLAB bicubic): (psnr, ssim)
    ("Set5", 2): (33.66, 0.9299), ("Set14", 2): (30.24, 0.8688), ("B100", 2): (29.56, 0.8431),
    ("Urban100", 2): (26.88, 0.8403), ("Set5", 3): (30.39, 0.8682), ("Set14", 3): (27.55, 0.7742),
    ("B100", 3): (27.21, 0.7385), ("Urban100", 3): (24.46, 0.7349), ("Set5", 4): (28.42, 0.8104),
    ("Set14", 4): (26.00, 0.7027), ("B100", 4): (25.96, 0.6675), ("Urban100", 4): (23.14, 0.6577),
}
PAPER_NAMES = {"awsrn-s": "AWSRN-S", "awsrn-sd": "AWSRN-SD", "awsrn-m": "AWSRN-M", "awsrn-l": "AWSRN"}


def save_table(df: pd.DataFrame, out: Path, stem: str, floatfmt: str = ".4f") -> list[Path]:
    """``<stem>.csv`` (unrounded), ``.md`` and ``.tex``."""
    out.mkdir(parents=True, exist_ok=True)
    write_table(df, out / f"{stem}.csv")
    atomic_write_text(out / f"{stem}.md", df.to_markdown(index=False, floatfmt=floatfmt) + "\n")
    atomic_write_text(out / f"{stem}.tex", df.to_latex(index=False, na_rep="--",
                                                       float_format=lambda v: format(v, floatfmt)))
    return [out / f"{stem}.{e}" for e in ("csv", "md", "tex")]


def find_checkpoints(root: str | Path = "checkpoints") -> dict[str, Path]:
    """label -> model.safetensors for every ``<root>/<label>/model.safetensors``."""
    root = Path(root)
    return {p.parent.name: p for p in sorted(root.glob("*/model.safetensors"))}


def checkpoint_info(path: Path) -> dict:
    recipe = path.parent / "recipe.json"
    r = json.loads(recipe.read_text()) if recipe.is_file() else {}
    return {"model": r.get("model"), "scale": r.get("scale"),
            "iters": r.get("total_iters", r.get("iters_reached", r.get("iters"))),
            "train_device": r.get("device"), "batch": r.get("batch"), "schedule": r.get("schedule"),
            "gpu_minutes": round(float(r.get("total_gpu_s", 0.0)) / 60, 2)}


# --------------------------------------------------------------------------------------- tables
def bicubic_table(summary: pd.DataFrame, images: pd.DataFrame | None = None) -> pd.DataFrame:
    df = summary[["dataset", "scale", "psnr", "ssim", "n_images"]].copy()
    if images is not None and not images.empty:
        df = df.merge(mean_intervals(images, ("dataset", "scale")), on=["dataset", "scale"], how="left")
    lit = df.apply(lambda r: LITERATURE_BICUBIC.get((r.dataset, int(r.scale)), (np.nan, np.nan)), axis=1)
    df["literature_psnr"] = [v[0] for v in lit]
    df["literature_ssim"] = [v[1] for v in lit]
    df["d_psnr"] = df.psnr - df.literature_psnr
    df["d_ssim"] = df.ssim - df.literature_ssim
    return with_published_gap_interval(df, "literature_psnr")


def paper_vs_ours(complexity: pd.DataFrame, evals: pd.DataFrame) -> pd.DataFrame:
    """The paper's AWSRN rows with our exact complexity beside them, and our PSNR/SSIM where a checkpoint
    was evaluated (labelled with its training budget)."""
    from .paper import paper_metrics_long
    paper = paper_metrics_long()
    rows = []
    for _, c in complexity.dropna(subset=["paper_multi_adds_g"]).iterrows():
        pname = PAPER_NAMES[c.model]
        for _, p in paper[(paper.method == pname) & (paper.scale == c.scale)].iterrows():
            row = {"model": c.model, "scale": int(c.scale), "params": int(c.params),
                   "paper_params_k": c.paper_params_k, "multi_adds_g": round(c.multi_adds_g, 1),
                   "paper_multi_adds_g": c.paper_multi_adds_g, "dataset": p.dataset,
                   "paper_psnr": p.psnr, "paper_ssim": p.ssim, "psnr": np.nan, "ssim": np.nan,
                   "checkpoint": "", "iters": np.nan, "gpu_minutes": np.nan, "note": p.note}
            if not evals.empty:
                e = evals[(evals.model == c.model) & (evals.scale == c.scale) & (evals.dataset == p.dataset)]
                if not e.empty:
                    e = e.iloc[0]
                    row.update(psnr=e.psnr, ssim=e.ssim, checkpoint=e.checkpoint, iters=e.iters,
                               gpu_minutes=e.get("gpu_minutes", np.nan),
                               psnr_ci_low=e.get("psnr_ci_low", np.nan), psnr_ci_high=e.get("psnr_ci_high", np.nan))
            rows.append(row)
    df = pd.DataFrame(rows)
    df["d_psnr"] = df.psnr - df.paper_psnr
    df["d_ssim"] = df.ssim - df.paper_ssim
    return with_published_gap_interval(df, "paper_psnr")


def with_published_gap_interval(df: pd.DataFrame, published: str) -> pd.DataFrame:
    """The interval columns of a gap to a published number (``d_psnr`` = ours - published).

    Published per-image values do not exist, so no paired interval or test is possible: ``ci_low``,
    ``ci_high`` and ``p`` stay empty. What is given instead is our own per-image spread, the bootstrap
    interval of our mean over the images (``psnr_ci_low``/``psnr_ci_high``): how much the set's mean depends
    on which images it holds. The published number was measured on the same images, so that spread is not
    a test of the gap."""
    df = df.copy()
    for col in ("psnr_ci_low", "psnr_ci_high"):
        if col not in df:
            df[col] = np.nan
    df["ci_low"] = df["ci_high"] = df["p"] = np.nan
    return df


def mean_intervals(images: pd.DataFrame, by=("dataset",)) -> pd.DataFrame:
    """Per group (default: dataset): the bootstrap interval of the mean PSNR over its images
    (``psnr_ci_low/high``)."""
    from .stats import mean_ci
    rows = []
    for key, g in images.groupby(list(by), sort=False):
        low, high = mean_ci(g.psnr)
        rows.append({**dict(zip(by, key)), "psnr_ci_low": low, "psnr_ci_high": high})
    return pd.DataFrame(rows, columns=[*by, "psnr_ci_low", "psnr_ci_high"])


def learning_curves(checkpoints: dict) -> pd.DataFrame:
    """Every logged validation of every checkpoint's training, on one GPU-minutes axis across segments.

    A row's GPU minutes are the earlier segments' GPU seconds plus its own wall seconds times its
    segment's GPU share (a run trained beside others on one GPU counts its share of the work)."""
    rows = []
    for label, path in checkpoints.items():
        recipe_p, log_p = path.parent / "recipe.json", path.parent / "train_log.csv"
        if not (recipe_p.is_file() and log_p.is_file()):
            continue
        segs = json.loads(recipe_p.read_text()).get("segments", [])
        log = pd.read_csv(log_p)
        if "segment" not in log:
            log = log.assign(segment=1, total_iter=log["iter"])
        offset = 0.0
        for seg in segs:
            k = int(seg["segment"])
            share = (float(seg["gpu_s"]) / float(seg["wall_s"])) if seg.get("wall_s") else 0.0
            seg_log = log[log.segment == k]
            part = seg_log.dropna(subset=["val_psnr"])
            since = -1
            for _, r in part.iterrows():
                wall = r["wall_s"] if "wall_s" in r and not pd.isna(r["wall_s"]) else np.nan
                # the training loss over the interval since the previous validation (one logged value is noisy)
                interval = seg_log[(seg_log.total_iter > since) & (seg_log.total_iter <= r["total_iter"])]
                since = r["total_iter"]
                rows.append({"checkpoint": label, "model": seg.get("model"), "segment": k,
                             "total_iter": int(r["total_iter"]), "gpu_minutes": (offset + wall * share) / 60,
                             "loss": interval["loss"].mean() if "loss" in interval else np.nan,
                             "val_psnr": r["val_psnr"], "psnr_Set5": r.get("psnr_Set5", np.nan),
                             "device": seg.get("device"), "concurrent": seg.get("concurrent")})
            offset += float(seg.get("gpu_s") or 0.0)
    return pd.DataFrame(rows)


def learning_plateau(curves: pd.DataFrame, paper: pd.DataFrame | None = None) -> pd.DataFrame:
    """Where each checkpoint's training flattens, from its learning curve: the watched Set5 PSNR at the end
    and at its best (and when), the held-out validation PSNR at the end and at its best (a best well before
    the end while the lr still anneals means the model has learnt what the training images teach), and
    what the last segment added. ``paper_psnr`` is the paper's Set5 number for the same model and scale.
    ``d_loss_pct_after_val_peak``: how much the training loss fell from the held-out peak to the end (a falling
    training loss with a flat held-out PSNR is a model fitting its training images, not the task)."""
    rows = []
    for label, g in curves.groupby("checkpoint", sort=True):
        g = g.sort_values("total_iter")
        s5, val = g.dropna(subset=["psnr_Set5"]), g.dropna(subset=["val_psnr"])
        last_seg = int(g.segment.max())
        before = s5[s5.segment < last_seg]
        # the end is the last segment's: a segment that did not watch Set5 (a CPU fine-tune) leaves it unknown
        # here (its graded number is in paper_vs_ours), not the number of the model it started from
        watched_end = not s5.empty and int(s5.segment.iloc[-1]) == last_seg
        row = {"checkpoint": label, "model": g.model.iloc[0], "scale": int(label.rsplit("-x", 1)[1]),
               "total_iter": int(g.total_iter.max()), "gpu_minutes": g.gpu_minutes.max(),
               "psnr_Set5": s5.psnr_Set5.iloc[-1] if watched_end else np.nan,
               "psnr_Set5_peak": s5.psnr_Set5.max() if not s5.empty else np.nan,
               "total_iter_at_psnr_Set5_peak": int(s5.loc[s5.psnr_Set5.idxmax(), "total_iter"]) if not s5.empty else np.nan,
               "val_psnr": val.val_psnr.iloc[-1] if not val.empty else np.nan,
               "val_psnr_peak": val.val_psnr.max() if not val.empty else np.nan,
               "total_iter_at_val_psnr_peak": int(val.loc[val.val_psnr.idxmax(), "total_iter"]) if not val.empty else np.nan,
               "last_segment_iters": int(g[g.segment == last_seg].total_iter.max() - (before.total_iter.max()
                                                                                      if not before.empty else 0)),
               "d_psnr_Set5_last_segment": (s5.psnr_Set5.iloc[-1] - before.psnr_Set5.iloc[-1])
               if not before.empty and watched_end else np.nan}
        if "loss" in val and not val.empty:
            at_peak, end = val.loc[val.val_psnr.idxmax(), "loss"], val.loss.iloc[-1]
            row.update(loss_at_val_psnr_peak=at_peak, loss=end, d_loss_pct_after_val_peak=100 * (end / at_peak - 1))
        if paper is not None and not paper.empty:
            pp = paper[(paper.model == row["model"]) & (paper.scale == row["scale"]) & (paper.dataset == "Set5")]
            row["paper_psnr"] = pp.paper_psnr.iloc[0] if not pp.empty else np.nan
        rows.append(row)
    return pd.DataFrame(rows)


def recipe_probe(folder: Path) -> pd.DataFrame:
    """The batch/lr probes (``scripts/gpu_train.sh``, runs named probe-*): Set5 PSNR at each validation
    against the run's GPU seconds (wall time times its share of the group's GPU work)."""
    rows = []
    for d in sorted(Path(folder).glob("probe-*")):
        recipe = json.loads((d / "recipe.json").read_text())
        seg = recipe["segments"][-1]
        share = float(seg["gpu_s"]) / float(seg["wall_s"]) if seg.get("wall_s") else np.nan
        log = pd.read_csv(d / "train_log.csv").dropna(subset=["psnr_Set5"])
        for r in log.itertuples():
            rows.append({"probe": d.name, "model": recipe["model"], "scale": recipe["scale"], "batch": seg["batch"],
                         "lr": seg["lr"], "patch": seg["patch"], "iter": int(r.iter), "gpu_s": r.wall_s * share,
                         "patches_seen": int(r.iter) * int(seg["batch"]), "psnr_Set5": r.psnr_Set5,
                         "device": seg.get("device"), "concurrent": seg.get("concurrent")})
    return pd.DataFrame(rows)


def fig_learning_curves(curves: pd.DataFrame, out: Path, paper: pd.DataFrame | None = None):
    """Set5 PSNR (monitored during training) against GPU minutes, one panel per scale."""
    c = curves.dropna(subset=["psnr_Set5", "gpu_minutes"])
    scales = sorted({int(x.split("-x")[-1]) for x in c.checkpoint}) if not c.empty else []
    fig, axes = plt.subplots(1, max(1, len(scales)), figsize=(4.2 * max(1, len(scales)), 3.8), squeeze=False)
    for ax, scale in zip(axes[0], scales):
        for label, g in c[c.checkpoint.str.endswith(f"-x{scale}")].groupby("checkpoint"):
            line = ax.plot(g.gpu_minutes, g.psnr_Set5, marker="o", ms=3, label=label)[0]
            if paper is not None:
                pp = paper[(paper.model == g.model.iloc[0]) & (paper.scale == scale) & (paper.dataset == "Set5")]
                if not pp.empty:
                    ax.axhline(pp.paper_psnr.iloc[0], color=line.get_color(), ls=":", lw=1)
        ax.set_title(f"x{scale} (dotted: paper)")
        ax.set_xlabel("GPU minutes of training (H200)")
        ax.set_ylabel("Set5 PSNR (dB), monitored")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


# -------------------------------------------------------------------------------------- figures
def fig_psnr_vs_multiadds(paper_csv: Path, ours: pd.DataFrame, out: Path, scale: int = 2, dataset: str = "Set5"):
    paper = pd.read_csv(paper_csv)
    p = paper[(paper.scale == scale)].dropna(subset=["multi_adds_g", f"{dataset.lower()}_psnr"])
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.scatter(p.multi_adds_g, p[f"{dataset.lower()}_psnr"], c="tab:gray", label="paper table")
    for _, r in p.iterrows():
        ax.annotate(r.method, (r.multi_adds_g, r[f"{dataset.lower()}_psnr"]), fontsize=7, xytext=(3, 2),
                    textcoords="offset points")
    o = ours[(ours.scale == scale) & (ours.dataset == dataset)] if not ours.empty else ours
    if not o.empty:
        # no error bars: the paper's points have no per-image values to pair with, and the spread of our mean
        # over the images (about 2 dB on Set5) is not a test of a gap measured on the same images
        ax.scatter(o.multi_adds_g, o.psnr, c="tab:red", marker="*", s=120, label="ours (trained here on 291 images)")
        for _, r in o.iterrows():
            ax.annotate(f"{r.checkpoint} ({int(r.iters)} it)", (r.multi_adds_g, r.psnr), fontsize=7, color="tab:red",
                        xytext=(3, -9), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_xlabel("Multi-Adds (G, 1280x720 output)")
    ax.set_ylabel(f"PSNR (dB), {dataset} x{scale}")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def fig_psnr_vs_latency(latency: pd.DataFrame, evals: pd.DataFrame, out: Path, dataset: str = "Set5"):
    fig, ax = plt.subplots(figsize=(7, 4.5))
    lat = latency[~latency.deploy.astype(bool)] if "deploy" in latency else latency
    merged = evals[evals.dataset == dataset].merge(lat, on=["model", "scale"], how="inner")
    for scale, g in merged.groupby("scale"):
        ax.scatter(g.latency_ms, g.psnr, label=f"x{scale}")
        for _, r in g.iterrows():
            ax.annotate(r.checkpoint, (r.latency_ms, r.psnr), fontsize=7, xytext=(3, 2), textcoords="offset points")
    dev = merged.device.iloc[0] if not merged.empty else ""
    ax.set_xlabel(f"median latency (ms), 720p preset, {dev}")
    ax.set_ylabel(f"PSNR (dB), {dataset}")
    ax.grid(alpha=0.3)
    if not merged.empty:
        ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def fig_psnr_vs_latency_cpu(latency: pd.DataFrame, evals: pd.DataFrame, peers: pd.DataFrame, published: pd.DataFrame,
                            out: Path, dataset: str = "Set5", scales=(2, 4)):
    """PSNR against CPU latency (one forward, the same LR size and threads for every model), one panel per scale:
    our checkpoints, the peers graded here (official weights, protocol ``matlab``) and, for the paper table's other
    methods (no weights here), the PSNR their papers print. ``latency`` holds the rows of latency_cpu and
    latency_peers_cpu; ``published`` has columns model, scale and psnr."""
    lat = latency[~latency.deploy.astype(bool)] if "deploy" in latency else latency
    lat = lat[["model", "scale", "latency_ms"]]
    # our points carry the variant's letters (awsrn-sd-x2 -> SD): full names collide where M and L sit close
    ours = evals[evals.dataset == dataset].assign(label=lambda d: d.model.str.removeprefix("awsrn-").str.upper())
    graded = (peers[(peers.dataset == dataset) & (peers.protocol == "matlab")].assign(label=lambda d: d.model)
              if not peers.empty else peers)
    groups = [("ours: AWSRN-S/SD/M/L, trained here", "tab:red", "*", 140, ours),
              ("peers graded here", "tab:blue", "s", 40, graded),
              ("PSNR printed in their papers", "tab:gray", "o", 40, published.assign(label=lambda d: d.model))]
    fig, axes = plt.subplots(1, len(scales), figsize=(6 * len(scales), 4.5), squeeze=False)
    for ax, scale in zip(axes[0], scales):
        for name, colour, marker, size, df in groups:
            g = df[df.scale == scale].merge(lat, on=["model", "scale"]) if not df.empty else df
            if g.empty:
                continue
            ax.scatter(g.latency_ms, g.psnr, c=colour, marker=marker, s=size, label=name)
            for _, r in g.iterrows():
                ax.annotate(r.label, (r.latency_ms, r.psnr), fontsize=7, color=colour, xytext=(4, 3),
                            textcoords="offset points")
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_title(f"x{scale}")
        ax.set_xlabel(f"median latency (ms), {int(latency.lr_h.iloc[0])}x{int(latency.lr_w.iloc[0])} LR, "
                      f"{int(latency.threads.iloc[0])} thread(s), {latency.device.iloc[0]}")
        ax.set_ylabel(f"PSNR (dB), {dataset}")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:  # a panel without any graded point (no data root) has no legend
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def fig_visual(crops_dir: Path, out: Path):
    """A grid from the saved crops: one row per image, HR, bicubic and each model, zoomed."""
    from PIL import Image
    index = pd.read_csv(crops_dir / "index.csv")
    images = list(dict.fromkeys(index.image))
    methods = list(dict.fromkeys(index.method))
    fig, axes = plt.subplots(len(images), len(methods), figsize=(2.2 * len(methods), 2.4 * len(images)),
                             squeeze=False)
    for i, img in enumerate(images):
        for j, meth in enumerate(methods):
            ax = axes[i][j]
            r = index[(index.image == img) & (index.method == meth)]
            ax.axis("off")
            if r.empty:
                continue
            r = r.iloc[0]
            ax.imshow(Image.open(crops_dir / r.file), interpolation="nearest")
            ax.set_title(f"{meth}\n{r.psnr:.2f} dB" if meth != "HR" else f"HR {img}", fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def latency_vs_floor(latency: pd.DataFrame) -> pd.DataFrame:
    """Measured GPU latencies (a table in today's columns) next to the memory-traffic floor of the same
    forward on the same device: ``traffic_mb``, ``bandwidth_gbs``, ``floor_ms`` and ``x_floor`` per row
    (``benchmark.traffic``; rows of a device with no known bandwidth get NaN)."""
    from .deploy import reparameterize
    from .registry import create_model
    from .traffic import bandwidth_gbs, forward_traffic
    counted: dict = {}
    rows = []
    for r in latency.to_dict("records"):
        cl = bool(r.get("channels_last", False))
        key = (r["model"], int(r["scale"]), bool(r["deploy"]), cl, int(r["lr_h"]), int(r["lr_w"]))
        if key not in counted:
            torch.manual_seed(0)
            m = create_model(r["model"], scale=int(r["scale"]))
            counted[key] = forward_traffic(reparameterize(m) if r["deploy"] else m, (1, 3, key[4], key[5]), cl)
        gbs = bandwidth_gbs(str(r["device"]))
        t = counted[key]
        floor = t.floor_ms(gbs, r["precision"])
        rows.append({"model": r["model"], "scale": r["scale"], "device": r["device"], "lr_h": r["lr_h"],
                     "lr_w": r["lr_w"], "precision": r["precision"], "deploy": r["deploy"], "channels_last": cl,
                     "graph": bool(r.get("graph", False)), "latency_ms": r["latency_ms"], "traffic_mb": t.bytes(r["precision"]) / 1e6,
                     "bandwidth_gbs": gbs, "floor_ms": floor, "x_floor": r["latency_ms"] / floor})
    return pd.DataFrame(rows)
