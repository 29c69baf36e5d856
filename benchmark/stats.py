"""Paired statistics on per-image scores: is B better than A on these images, and by how much?

Every difference in results/ is a difference of means over a few images (Set5 has 5), so each one comes
with a 95% interval from a paired bootstrap over images and a signed-rank p-value. The bootstrap and the
tests are scipy's (``scipy.stats.bootstrap``, ``wilcoxon``, ``permutation_test``); this module only decides
what is paired with what and how test sets are pooled:

* per test set: the per-image differences B - A, their mean, a BCa bootstrap interval (images resampled,
  ``N_RESAMPLES`` times, ``SEED``), and the two-sided Wilcoxon signed-rank p-value (exact for small sets);
* ``all`` (images weighted equally): the same on every image of every set pooled;
* ``all-sets-equal`` (each set weighted equally): the mean of the per-set means, its interval from a
  bootstrap that resamples images inside each set (stratified), and a sign-flip permutation test of that
  statistic (flipping the sign of each image's difference is the null of "A and B are exchangeable").

A Wilcoxon test on 5 images cannot reach p < 0.05 (its smallest two-sided p is 2/32 = 0.0625): Set5 alone
never makes a finding significant, which is the point of reporting it.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats as sps

N_RESAMPLES = 9999        # bootstrap and permutation resamples (stated in every table that uses them)
SEED = 0
CONFIDENCE = 0.95
METHOD = "BCa"            # scipy's default bootstrap interval; falls back to percentile where BCa is undefined
STAT_COLS = ["mean_diff", "ci_low", "ci_high", "p_value"]


class PairingError(ValueError):
    """Two sets of per-image rows that cannot be compared image by image."""


def mean_ci(values, n_resamples: int = N_RESAMPLES, seed: int = SEED,
            confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Bootstrap interval of the mean of ``values`` (one sample; images resampled)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return float("nan"), float("nan")
    if v.size == 1 or np.all(v == v[0]):          # no spread to resample: the interval is the point
        return float(v[0]), float(v[0])
    kw = dict(confidence_level=confidence, n_resamples=n_resamples, random_state=np.random.default_rng(seed))
    with np.errstate(invalid="ignore", divide="ignore"):
        ci = sps.bootstrap((v,), np.mean, method=METHOD, **kw).confidence_interval
        if not np.all(np.isfinite([ci.low, ci.high])):   # BCa undefined (e.g. every resample equal)
            ci = sps.bootstrap((v,), np.mean, method="percentile", **kw).confidence_interval
    return float(ci.low), float(ci.high)


def wilcoxon_p(diffs) -> float:
    """Two-sided Wilcoxon signed-rank p-value of per-image differences (1.0 when every difference is 0)."""
    d = np.asarray(diffs, dtype=np.float64)
    d = d[np.isfinite(d)]
    if d.size == 0:
        return float("nan")
    if np.all(d == 0):
        return 1.0
    return float(sps.wilcoxon(d, zero_method="wilcox", alternative="two-sided").pvalue)


def _set_weights(groups: list[np.ndarray]) -> np.ndarray:
    return np.concatenate([np.full(len(g), 1.0 / (len(groups) * len(g))) for g in groups])


def sets_equal(groups: list[np.ndarray], n_resamples: int = N_RESAMPLES, seed: int = SEED,
               confidence: float = CONFIDENCE) -> dict:
    """Mean of per-set means, a stratified bootstrap interval and a sign-flip permutation p-value."""
    groups = [np.asarray(g, dtype=np.float64)[np.isfinite(g)] for g in groups]
    groups = [g for g in groups if g.size]
    stat = float(np.mean([g.mean() for g in groups]))
    rng = np.random.default_rng(seed)
    if all(g.size > 1 for g in groups) and not all(np.all(g == g[0]) for g in groups):
        # several samples, not paired: scipy resamples each set on its own (a stratified bootstrap)
        ci = sps.bootstrap(tuple(groups), lambda *s, axis=-1: np.mean([x.mean(axis=axis) for x in s], axis=0),
                           method="percentile", confidence_level=confidence, n_resamples=n_resamples,
                           random_state=rng).confidence_interval
        low, high = float(ci.low), float(ci.high)
    else:
        low = high = stat
    w, d = _set_weights(groups), np.concatenate(groups)
    if np.all(d == 0):
        p = 1.0
    else:
        p = float(sps.permutation_test((d,), lambda x, axis=-1: np.sum(w * x, axis=axis), permutation_type="samples",
                                       n_resamples=n_resamples, random_state=rng).pvalue)
    return {"mean_diff": stat, "ci_low": low, "ci_high": high, "p_value": p}


def pair_images(a: pd.DataFrame, b: pd.DataFrame, metric: str = "psnr") -> pd.DataFrame:
    """Per-image rows of A and B side by side (dataset, image, a, b, diff = b - a).

    Refused with a PairingError when they were graded under different protocols or scales, or on
    different images of a set (by name, and by content where both rows carry ``image_sha256``)."""
    for col in ("protocol", "scale"):
        if col in a and col in b:
            va, vb = set(a[col].astype(str)), set(b[col].astype(str))
            if va != vb:
                raise PairingError(f"A and B were graded with different {col}: {sorted(va)} vs {sorted(vb)}")
    keys = ["dataset", "image"]
    cols = keys + [metric] + (["image_sha256"] if "image_sha256" in a and "image_sha256" in b else [])
    left, right = a[cols].astype({"image": str}), b[cols].astype({"image": str})
    for ds in sorted(set(left.dataset) | set(right.dataset)):
        ia, ib = set(left.image[left.dataset == ds]), set(right.image[right.dataset == ds])
        if ia != ib:
            only_a, only_b = sorted(ia - ib), sorted(ib - ia)
            raise PairingError(
                f"{ds}: A and B were evaluated on different images (only in A: {only_a[:5] or 'none'}; "
                f"only in B: {only_b[:5] or 'none'}); compare models on the same image set")
    m = left.merge(right, on=keys, suffixes=("_a", "_b"))
    if "image_sha256_a" in m and (m.image_sha256_a != m.image_sha256_b).any():
        bad = m.loc[m.image_sha256_a != m.image_sha256_b, ["dataset", "image"]].head(3).values.tolist()
        raise PairingError(f"A and B graded different bytes under the same image names: {bad}")
    return m.rename(columns={f"{metric}_a": "a", f"{metric}_b": "b"}).assign(diff=lambda d: d.b - d.a)[
        keys + ["a", "b", "diff"]]


def paired_table(a: pd.DataFrame, b: pd.DataFrame, metrics=("psnr", "ssim"), n_resamples: int = N_RESAMPLES,
                 seed: int = SEED) -> pd.DataFrame:
    """B minus A per test set and pooled: columns ``dataset, metric, n_images, mean_a, mean_b, mean_diff,
    ci_low, ci_high, p_value, weighting``. ``a``/``b`` are per-image rows (``EvalResult.images`` or the
    store's rows) with ``dataset``, ``image`` and the metric columns."""
    rows = []
    for metric in metrics:
        p = pair_images(a, b, metric)
        p = p[np.isfinite(p["diff"])]
        sets = list(dict.fromkeys(p.dataset))
        for ds in sets:
            g = p[p.dataset == ds]
            low, high = mean_ci(g["diff"], n_resamples, seed)
            rows.append({"dataset": ds, "metric": metric, "n_images": len(g), "mean_a": g.a.mean(),
                         "mean_b": g.b.mean(), "mean_diff": g["diff"].mean(), "ci_low": low, "ci_high": high,
                         "p_value": wilcoxon_p(g["diff"]), "weighting": "images"})
        if len(sets) > 1:
            low, high = mean_ci(p["diff"], n_resamples, seed)
            rows.append({"dataset": "all", "metric": metric, "n_images": len(p), "mean_a": p.a.mean(),
                         "mean_b": p.b.mean(), "mean_diff": p["diff"].mean(), "ci_low": low, "ci_high": high,
                         "p_value": wilcoxon_p(p["diff"]), "weighting": "images"})
            eq = sets_equal([p["diff"][p.dataset == ds].to_numpy() for ds in sets], n_resamples, seed)
            rows.append({"dataset": "all-sets-equal", "metric": metric, "n_images": len(p),
                         "mean_a": p.groupby("dataset").a.mean().mean(), "mean_b": p.groupby("dataset").b.mean().mean(),
                         **eq, "weighting": "sets"})
    return pd.DataFrame(rows)


def verdict(row, alpha: float = 0.05) -> str:
    """Plain words for one difference (a row of ``paired_table``, column ``p_value``, or of an ablation
    table, column ``p``): whether its interval excludes 0 and its p-value is below alpha."""
    p = row["p_value"] if "p_value" in row else row["p"]
    if not np.isfinite(p):
        return "no test"
    excludes = row["ci_low"] > 0 or row["ci_high"] < 0
    if excludes and p < alpha:
        return "holds at 95%"
    return "not significant at 95%"


def diff_columns(per_image: pd.DataFrame, against: pd.DataFrame, metric: str = "psnr",
                 n_resamples: int = N_RESAMPLES, seed: int = SEED) -> dict:
    """``ci_low, ci_high, p`` of the mean per-image difference ``per_image - against`` on one test set (the
    columns an ablation table carries beside its ``d_<metric>``)."""
    p = pair_images(against, per_image, metric)
    low, high = mean_ci(p["diff"], n_resamples, seed)
    return {"ci_low": low, "ci_high": high, "p": wilcoxon_p(p["diff"])}


def separation(curves: pd.DataFrame, baseline: str, key: str = "model", metric: str = "val_psnr") -> pd.DataFrame:
    """When each variant's learning curve parted from the baseline's, for good.

    ``curves``: one row per (``key``, ``seed``, ``iter``) with ``metric`` (the held-out PSNR of a training
    run's validations). Per variant and seed, the difference to the baseline trained with the same seed at
    the same iteration. ``separated_at_iter`` is the first validation from which every seed's difference
    keeps the sign of the last validation's mean difference up to the end of the budget; NaN where the
    seeds disagree at the end (the curves have not separated within the budget). ``points_separated`` is
    how many validations that covers (1: only the last one). ``d_val_half`` and ``d_val_final``: the mean
    difference at the validation nearest half the budget and at the last one; a gap that still shrinks or
    grows between them has not settled within the budget. With one seed this is a property of one pair
    of runs, not of the variants."""
    rows = []
    base = curves[curves[key] == baseline].pivot_table(index="iter", columns="seed", values=metric)
    for label in dict.fromkeys(curves[key]):
        if label == baseline:
            continue
        mine = curves[curves[key] == label].pivot_table(index="iter", columns="seed", values=metric)
        seeds = mine.columns.intersection(base.columns)
        d = (mine[seeds] - base[seeds]).dropna(how="any")     # the iterations and seeds both runs validated
        if d.empty:
            raise PairingError(f"'{label}' and '{baseline}' share no validation (iteration and seed)")
        sign = np.sign(d.iloc[-1].mean())
        agree = (np.sign(d) == sign).all(axis=1).to_numpy() & (sign != 0)
        # the tail of iterations over which every seed agrees with the final sign
        n = int(np.argmin(agree[::-1])) if not agree.all() else len(agree)
        # the mean difference halfway: beside the final one it says whether the gap is still moving
        half = d.index[int(np.argmin(np.abs(d.index.to_numpy() - d.index[-1] / 2)))]
        rows.append({key: label, "baseline": baseline, "seeds": d.shape[1], "validations": len(d),
                     "d_val_half": float(d.loc[half].mean()), "d_val_final": float(d.iloc[-1].mean()),
                     "separated_at_iter": float(d.index[len(d) - n]) if n else np.nan,
                     "points_separated": n})
    return pd.DataFrame(rows)
