"""Paired statistics: intervals that cover a known shift, seeded reproducibility, refusals, the CLI."""
import numpy as np
import pandas as pd
import pytest

from benchmark import stats


def _rows(values, dataset="SetX", protocol="matlab", scale=4, names=None):
    names = names or [f"img{i:03d}" for i in range(len(values))]
    return pd.DataFrame({"dataset": dataset, "image": names, "psnr": values, "ssim": np.asarray(values) / 40,
                         "protocol": protocol, "scale": scale})


def _pair(shift, n=40, seed=3, noise=0.05):
    rng = np.random.default_rng(seed)
    a = rng.normal(30, 2, n)
    return _rows(a), _rows(a + shift + rng.normal(0, noise, n))


def test_interval_covers_a_known_shift_and_the_p_value_is_small():
    a, b = _pair(0.2)
    t = stats.paired_table(a, b, metrics=("psnr",), n_resamples=2000)
    r = t.iloc[0]
    assert r.ci_low < 0.2 < r.ci_high and r.ci_low > 0.15 and r.ci_high < 0.25
    assert r.p_value < 1e-6 and r.n_images == 40
    assert r.mean_diff == pytest.approx((b.psnr - a.psnr).mean())
    assert stats.verdict(r) == "holds at 95%"


def test_zero_shift_interval_covers_zero():
    a, b = _pair(0.0)
    r = stats.paired_table(a, b, metrics=("psnr",), n_resamples=2000).iloc[0]
    assert r.ci_low < 0 < r.ci_high and r.p_value > 0.05
    assert stats.verdict(r) == "not significant at 95%"


def test_bootstrap_is_reproducible_with_its_seed():
    a, b = _pair(0.05, n=12, noise=0.2)
    t1 = stats.paired_table(a, b, n_resamples=500, seed=7)
    t2 = stats.paired_table(a, b, n_resamples=500, seed=7)
    t3 = stats.paired_table(a, b, n_resamples=500, seed=8)
    pd.testing.assert_frame_equal(t1, t2)
    assert not np.allclose(t1.ci_low, t3.ci_low)


def test_five_images_can_never_reach_p_below_005():
    a, b = _pair(1.0, n=5)
    assert stats.wilcoxon_p(b.psnr - a.psnr) == pytest.approx(2 / 32)


def test_pooling_weights_images_or_sets():
    a1, b1 = _pair(0.1, n=5, seed=1)
    a2, b2 = _pair(0.5, n=20, seed=2)
    a = pd.concat([a1, a2.assign(dataset="SetY")])
    b = pd.concat([b1, b2.assign(dataset="SetY")])
    t = stats.paired_table(a, b, metrics=("psnr",), n_resamples=1000).set_index("dataset")
    d1, d2 = (b1.psnr - a1.psnr).mean(), (b2.psnr - a2.psnr).mean()
    assert t.loc["all", "mean_diff"] == pytest.approx((5 * d1 + 20 * d2) / 25)
    assert t.loc["all-sets-equal", "mean_diff"] == pytest.approx((d1 + d2) / 2)
    assert t.loc["all-sets-equal", "ci_low"] < (d1 + d2) / 2 < t.loc["all-sets-equal", "ci_high"]
    assert t.loc["all-sets-equal", "p_value"] < 0.01 and list(t.weighting) == ["images"] * 3 + ["sets"]


def test_different_image_sets_are_refused_with_a_clear_message():
    a, b = _pair(0.1, n=6)
    with pytest.raises(stats.PairingError, match=r"SetX: A and B were evaluated on different images .*img005"):
        stats.paired_table(a, b.iloc[:5])
    with pytest.raises(stats.PairingError, match="different protocol"):
        stats.paired_table(a, b.assign(protocol="basicsr"))
    with pytest.raises(stats.PairingError, match="different scale"):
        stats.paired_table(a, b.assign(scale=2))
    shas = a.assign(image_sha256="x"), b.assign(image_sha256=["x"] * 5 + ["y"])
    with pytest.raises(stats.PairingError, match="different bytes"):
        stats.paired_table(*shas)


def test_identical_models_give_a_zero_interval_and_p_one():
    a, _ = _pair(0.0, n=8)
    r = stats.paired_table(a, a.copy(), metrics=("psnr",)).iloc[0]
    assert (r.mean_diff, r.ci_low, r.ci_high, r.p_value) == (0.0, 0.0, 0.0, 1.0)


def test_compare_cli_csv_columns_and_refusals(tmp_path, capsys):
    from benchmark.cli import main
    rc = main(["compare", "bicubic", "awsrn-s", "--scale", "4", "--datasets", "skimage", "--out", str(tmp_path),
               "--resamples", "200", "--format", "csv", "--quiet"])
    out = capsys.readouterr().out
    assert rc == 0
    df = pd.read_csv(__import__("io").StringIO(out))
    assert list(df.columns) == ["dataset", "metric", "n_images", "mean_diff", "ci_low", "ci_high", "p_value"]
    assert list(df.metric) == ["psnr", "ssim"] and set(df.dataset) == {"skimage"}
    # the same numbers as the store's rows paired by hand
    store = pd.concat([pd.read_csv(f) for f in sorted((tmp_path / "store/eval").glob("*.csv"))])
    bic, net = store[store.model == "bicubic"], store[store.model == "awsrn-s"]
    diff = net.set_index("image").psnr - bic.set_index("image").psnr
    assert df.mean_diff[0] == pytest.approx(diff.mean())
    assert main(["compare", "bicubic", "awsrn-s=missing.safetensors", "--scale", "4"]) == 2
    assert "weights file missing.safetensors does not exist" in capsys.readouterr().err
    assert main(["compare", "bicubic", "awsrn-s=", "--scale", "4"]) == 2
    assert "expected NAME, NAME=WEIGHTS or NAME=pretrained" in capsys.readouterr().err
    assert main(["compare", "bicubic", "awsrn-s-bam=pretrained", "--scale", "4"]) == 2
    assert "error: no trained checkpoint of awsrn-s-bam x4" in capsys.readouterr().err


def test_compare_pretrained_is_the_checkpoint_of_the_compared_scale(tmp_path, capsys):
    """NAME=pretrained and NAME=checkpoints/<NAME>-x<scale>/model.safetensors are the same model: the same rows
    (read back from the store), a zero difference."""
    from benchmark.cli import main
    ck = __import__("pathlib").Path(__file__).resolve().parents[1] / "checkpoints" / "awsrn-sd-x4" / "model.safetensors"
    assert main(["compare", "awsrn-sd=pretrained", f"awsrn-sd={ck}", "--scale", "4", "--datasets", "skimage",
                 "--out", str(tmp_path), "--resamples", "200", "--format", "csv", "--quiet"]) == 0
    df = pd.read_csv(__import__("io").StringIO(capsys.readouterr().out))
    assert (df.mean_diff == 0).all() and (df.n_images == 5).all()
    assert len(list((tmp_path / "store/eval").glob("*.csv"))) == 1     # one model, graded once


def test_verdict_reads_paired_tables_and_ablation_rows():
    assert stats.verdict(pd.Series({"ci_low": 0.1, "ci_high": 0.3, "p_value": 0.01})) == "holds at 95%"
    assert stats.verdict(pd.Series({"ci_low": -0.3, "ci_high": -0.1, "p": 0.0625})) == "not significant at 95%"
    assert stats.verdict(pd.Series({"ci_low": -0.1, "ci_high": 0.3, "p": 0.01})) == "not significant at 95%"
    assert stats.verdict(pd.Series({"ci_low": np.nan, "ci_high": np.nan, "p": np.nan})) == "no test"


def _curves(diffs: dict, baseline: str = "B", iters=(100, 200, 300, 400, 500)) -> pd.DataFrame:
    """Curves where the baseline sits at 30 dB and each variant's seed s is 30 + diffs[variant][s]."""
    rows = [{"model": baseline, "seed": s, "iter": it, "val_psnr": 30.0} for s in (1, 2) for it in iters]
    for label, by_seed in diffs.items():
        for s, ds in by_seed.items():
            rows += [{"model": label, "seed": s, "iter": it, "val_psnr": 30.0 + d} for it, d in zip(iters, ds)]
    return pd.DataFrame(rows)


def test_separation_is_the_first_validation_after_which_every_seed_keeps_the_final_sign():
    curves = _curves({
        "V": {1: [0.1, -0.05, 0.2, 0.3, 0.1], 2: [-0.1, 0.1, 0.1, 0.2, 0.3]},   # both seeds > 0 from 300 on
        "W": {1: [0.1, 0.1, 0.1, 0.1, 0.1], 2: [0.2, 0.2, -0.1, -0.1, -0.2]},   # the seeds disagree at the end
        "Z": {1: [-0.1, -0.2, -0.3, -0.4, -0.5], 2: [-0.1, -0.1, -0.1, -0.1, -0.1]},   # below from the start
    })
    sep = stats.separation(curves, "B").set_index("model")
    assert list(sep.index) == ["V", "W", "Z"] and (sep.seeds == 2).all() and (sep.validations == 5).all()
    assert sep.loc["V", "separated_at_iter"] == 300 and sep.loc["V", "points_separated"] == 3
    assert np.isnan(sep.loc["W", "separated_at_iter"]) and sep.loc["W", "points_separated"] == 0
    assert sep.loc["Z", "separated_at_iter"] == 100 and sep.loc["Z", "points_separated"] == 5
    assert sep.loc["V", "d_val_final"] == pytest.approx(0.2) and sep.loc["Z", "d_val_final"] == pytest.approx(-0.3)
    # halfway: 250 lies between the validations at 200 and 300; a tie goes to the earlier one
    assert sep.loc["V", "d_val_half"] == pytest.approx(0.025) and sep.loc["Z", "d_val_half"] == pytest.approx(-0.15)


def test_separation_refuses_curves_that_share_no_validation():
    a = _curves({}, iters=(100, 200))
    b = _curves({"V": {1: [0.1, 0.2], 2: [0.1, 0.2]}}, iters=(300, 400))
    with pytest.raises(stats.PairingError, match="'V' and 'B' share no validation"):
        stats.separation(pd.concat([a, b[b.model == "V"]]), "B")
