import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import skimage.data
import torch
from PIL import Image

from benchmark.checkpoints import CheckpointError, read_checkpoint
from benchmark.checkpoints import load_pruned
from benchmark.train import TrainConfig, split_train_val, train
from benchmark import create_model
from benchmark.complexity import count_params

TINY = {"n_feats": 8, "block_feats": 16, "n_awru": 2}


@pytest.fixture(scope="module")
def train_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("train")
    src = skimage.data.astronaut()
    for i in range(6):
        Image.fromarray(src[i * 50:i * 50 + 96, i * 40:i * 40 + 100]).save(d / f"t{i}.png")
    Image.fromarray(skimage.data.camera()[:80, :80]).save(d / "gray.png")
    return d


def _cfg(train_dir, out, **kw):
    base = dict(model="awsrn-s", scale=2, data=(str(train_dir),), out=str(out), iters=6, batch=4, patch=12,
                val_images=2, val_every=3, log_every=1, ckpt_every=3, overrides=TINY)
    base.update(kw)
    return TrainConfig(**base)


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("AWSRN_CACHE", str(tmp_path / "cache"))


def test_resume_continues_exactly(train_dir, tmp_path):
    train(_cfg(train_dir, tmp_path / "full"), progress=False)
    full = pd.read_csv(tmp_path / "full/train_log.csv")
    train(_cfg(train_dir, tmp_path / "part", iters=3), progress=False)
    train(_cfg(train_dir, tmp_path / "part", iters=6), resume=True, progress=False)
    part = pd.read_csv(tmp_path / "part/train_log.csv")
    assert list(part.iter) == list(range(1, 7))
    assert np.array_equal(part.loss.values, full.loss.values)
    a, b = read_checkpoint(tmp_path / "full/model.safetensors"), read_checkpoint(tmp_path / "part/model.safetensors")
    assert all(torch.equal(a.state_dict[k], b.state_dict[k]) for k in a.state_dict)
    recipe = json.loads((tmp_path / "full/recipe.json").read_text())
    assert recipe["iters_reached"] == 6 and recipe["val_images"] == 2 and recipe["train_images"] == 5
    assert recipe["schedule_complete"] is True


def test_validating_more_often_leaves_the_trained_weights_unchanged(train_dir, tmp_path):
    # the learning curves of the studies validate ten times per run: that must not move the run itself
    train(_cfg(train_dir, tmp_path / "sparse", val_every=6, log_every=6), progress=False)
    train(_cfg(train_dir, tmp_path / "dense", val_every=1, log_every=1), progress=False)
    a, b = read_checkpoint(tmp_path / "sparse/model.safetensors"), read_checkpoint(tmp_path / "dense/model.safetensors")
    assert all(torch.equal(a.state_dict[k], b.state_dict[k]) for k in a.state_dict)
    assert pd.read_csv(tmp_path / "dense/train_log.csv").val_psnr.notna().sum() == 6


def test_validation_is_due_every_val_every_iterations_even_off_the_log_grid(train_dir, tmp_path):
    # val_every 3 with log_every 2: validations at 3 and 6 (a log row is added at 3), not only at their multiple 6
    train(_cfg(train_dir, tmp_path / "r", val_every=3, log_every=2), progress=False)
    log = pd.read_csv(tmp_path / "r/train_log.csv")
    assert list(log.iter) == [2, 3, 4, 6] and list(log.iter[log.val_psnr.notna()]) == [3, 6]
    # the weights are those of the same run logged at every step
    train(_cfg(train_dir, tmp_path / "d", val_every=3, log_every=1), progress=False)
    a, b = read_checkpoint(tmp_path / "r/model.safetensors"), read_checkpoint(tmp_path / "d/model.safetensors")
    assert all(torch.equal(a.state_dict[k], b.state_dict[k]) for k in a.state_dict)


def test_run_folders_name_the_recipe_keys_that_change_what_is_learned():
    from benchmark.train import run_tag
    from ablations.training_studies import curve_schedule, run_dir
    assert run_tag({}) == run_tag({"batch": 16, "patch": 48, "amp": "none", "device": "cuda", "seed": 3}) == ""
    assert run_tag({"batch": 32, "amp": "bf16", "channels_last": True, "device": "cuda"}) == \
        "-batch32-ampbf16-channels_last"
    assert run_tag({"train_subset": 140, "hr_rescale": 4, "amp": "bf16"}) == "-ampbf16-train_subset140-hr_rescale4"
    assert str(run_dir("r", "awsrn-l[n_lfb=2]", 4, 500, 2, {"amp": "bf16"})) == "r/x4-500it-ampbf16/awsrn-l-n_lfb2-seed2"
    # a validation always falls on a log row
    for iters, points in [(500, 10), (2500, 10), (7, 3), (2, 10), (1, 1)]:
        s = curve_schedule(iters, points)
        assert s["val_every"] % s["log_every"] == 0 and 1 <= s["val_every"] <= iters
        assert s["ckpt_every"] == s["val_every"]            # an interrupted run resumes from its last point


def test_validation_is_held_out_of_training(train_dir):
    paths = sorted(train_dir.glob("*.png"))
    tr, val = split_train_val(paths, 2)
    assert len(val) == 2 and not set(tr) & set(val) and len(tr) + len(val) == len(paths)


def test_outputs_load_for_evaluation(train_dir, tmp_path):
    train(_cfg(train_dir, tmp_path / "run", iters=3), progress=False)
    ck = read_checkpoint(tmp_path / "run/model.safetensors")
    assert ck.source_format == "native" and ck.config.n_feats == 8 and ck.config.scale == 2
    log = pd.read_csv(tmp_path / "run/train_log.csv")
    assert {"iter", "loss", "lr", "it_per_s", "patches_per_s", "val_psnr"} <= set(log.columns)
    assert not np.isnan(log.val_psnr.iloc[-1])


def test_cosine_schedule_reaches_zero(train_dir, tmp_path):
    train(_cfg(train_dir, tmp_path / "cos", iters=4, schedule="cosine"), progress=False)
    log = pd.read_csv(tmp_path / "cos/train_log.csv")
    assert log.lr.iloc[0] == pytest.approx(1e-3 * 0.5 * (1 + np.cos(np.pi / 4)))
    assert log.lr.iloc[-1] == pytest.approx(0.0, abs=1e-12)


def test_pruned_variant_initialised_from_full(train_dir, tmp_path):
    train(_cfg(train_dir, tmp_path / "full", iters=2), progress=False)
    src = read_checkpoint(tmp_path / "full/model.safetensors")
    pruned = create_model("awsrn-s-awms35", scale=2, **TINY)
    load_pruned(pruned, tmp_path / "full/model.safetensors")
    sd = pruned.state_dict()
    assert "tail.tail_k7.weight_v" not in sd
    assert all(torch.equal(sd[k], src.state_dict[k]) for k in sd)
    train(_cfg(train_dir, tmp_path / "ft", iters=2, model="awsrn-s-awms35",
               init_from=str(tmp_path / "full/model.safetensors")), progress=False)
    assert read_checkpoint(tmp_path / "ft/model.safetensors").config.awms_kernels == (3, 5)
    # with lr 0 the fine-tune keeps the initialisation: it came from the full model, also with resume=True
    # on a fresh folder (the pruning study's call)
    for resume in (False, True):
        out = tmp_path / f"ft0-{resume}"
        train(_cfg(train_dir, out, iters=2, model="awsrn-s-awms35", lr=0.0,
                   init_from=str(tmp_path / "full/model.safetensors")), resume=resume, progress=False)
        got = read_checkpoint(out / "model.safetensors").state_dict
        assert all(torch.equal(got[k], src.state_dict[k]) for k in got)
    wrong = create_model("awsrn-s", scale=2, **{**TINY, "n_feats": 16})
    with pytest.raises(CheckpointError, match="does not fit"):
        load_pruned(wrong, tmp_path / "full/model.safetensors")


def test_bad_training_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        train(_cfg(tmp_path / "nope", tmp_path / "o"), progress=False)


@pytest.mark.slow
def test_ddp_two_processes_follow_single_process(train_dir, tmp_path):
    """torchrun, gloo, 2 CPU processes, each training on half of the same global batch."""
    args = ["train", "--model", "awsrn-s", "--scale", "2", "--data", str(train_dir), "--iters", "4",
            "--batch", "4", "--patch", "12", "--val-images", "2", "--log-every", "1", "--quiet",
            "--set", "n_feats=8", "--set", "block_feats=16", "--set", "n_awru=2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-m", "benchmark.cli", *args, "--out", str(tmp_path / "one")],
                   check=True, env=env, capture_output=True)
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
                        "29533", "-m", "benchmark.cli", *args, "--out", str(tmp_path / "two")],
                       env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    one = pd.read_csv(tmp_path / "one/train_log.csv")
    two = pd.read_csv(tmp_path / "two/train_log.csv")
    assert json.loads((tmp_path / "two/recipe.json").read_text())["world_size"] == 2
    assert np.allclose(one.loss, two.loss, atol=1e-5, rtol=0)


@pytest.mark.slow
def test_training_study_trains_each_variant_once_per_seed_and_reports_intervals(train_dir, tmp_path):
    from ablations.training_studies import run

    # x4: the graded LR images are a quarter of x2's, and nothing here depends on the scale
    kw = dict(iters=2, data=[str(train_dir)], scale=4, out=str(tmp_path / "runs"), datasets=("skimage",),
              batch=2, patch=12, val_images=1)
    bam = run("bam", **kw)
    assert list(bam.model) == ["awsrn-s", "awsrn-s-bam"] and set(bam.iters) == {2}
    assert list(bam.params) == [count_params(create_model(v, scale=4)) for v in bam.model]
    assert bam.psnr.between(5, 60).all()
    # against the baseline: its own row is d = 0; the other carries an interval around its difference
    b = bam.set_index("model")
    assert b.loc["awsrn-s", "d_psnr"] == 0 and b.loc["awsrn-s", "verdict"] == "baseline"
    assert b.loc["awsrn-s-bam", "d_psnr"] == pytest.approx(b.loc["awsrn-s-bam", "psnr"] - b.loc["awsrn-s", "psnr"])
    assert b.loc["awsrn-s-bam", "ci_low"] <= b.loc["awsrn-s-bam", "d_psnr"] <= b.loc["awsrn-s-bam", "ci_high"]
    # each run validated at both iterations (its learning curve); whether the bam curve parted from the
    # baseline's is stated per variant (NaN or an iteration the runs validated at)
    runs = tmp_path / "runs" / "x4-2it-batch2-patch12-val_images1"     # the recipe's non-default keys
    assert list(pd.read_csv(runs / "awsrn-s" / "train_log.csv").dropna(subset=["val_psnr"]).iter) == [1, 2]
    assert b.loc["awsrn-s-bam", "points_separated"] in (0, 1, 2) and np.isnan(b.loc["awsrn-s", "separated_at_iter"])
    assert b.loc["awsrn-s-bam", "recipe"] == "cpu, batch 2, patch 12, amp none"
    base = runs / "awsrn-s" / "model.safetensors"
    stamp = base.stat().st_mtime_ns
    # LRFU with two seeds shares the AWSRN-S seed-1 baseline (resumed at its end, not retrained)
    lrfu = run("lrfu", **kw, seeds=(1, 2))
    assert base.stat().st_mtime_ns == stamp
    assert sorted(p.name for p in runs.iterdir()) == [
        "awsrn-s", "awsrn-s-bam", "awsrn-s-nolrfu", "awsrn-s-nolrfu-seed2", "awsrn-s-seed2"]
    seeds = [json.loads((runs / d / "recipe.json").read_text())["seed"]
             for d in ("awsrn-s", "awsrn-s-seed2")]
    assert seeds == [1, 2]
    r = lrfu.set_index("model").loc["awsrn-s-nolrfu"]
    assert r.seeds == "1,2" and r.d_psnr_seed_min <= r.d_psnr <= r.d_psnr_seed_max
    assert r.d_psnr_seed_sd == pytest.approx(np.std([r.d_psnr_seed_min, r.d_psnr_seed_max], ddof=1))
    # the baseline's PSNR is its mean over the two seeds: seed 1's value (shared with bam) is one of them
    assert lrfu.set_index("model").loc["awsrn-s", "psnr"] != b.loc["awsrn-s", "psnr"]


def test_data_study_variants_differ_in_training_data_not_in_structure(train_dir, tmp_path, monkeypatch):
    from ablations import training_studies as ts
    declared = ts.STUDIES["data"]
    assert declared["baseline"] == "awsrn-s" and list(declared["variants"]) == [
        "awsrn-s[train_subset=70]", "awsrn-s[train_subset=140]", "awsrn-s", "awsrn-s[hr_rescale=4]"]
    # the same declaration at this folder's size (6 training images)
    monkeypatch.setitem(ts.STUDIES, "data", {**declared, "variants": {
        "awsrn-s[train_subset=3]": {"train": {"train_subset": 3}}, "awsrn-s": {},
        "awsrn-s[hr_rescale=1]": {"train": {"hr_rescale": 1}}}})
    # x4 as in the study test above: a quarter of x2's grading, and nothing here depends on the scale
    df = ts.run("data", iters=2, data=[str(train_dir)], scale=4, out=str(tmp_path / "runs"), datasets=("skimage",),
                batch=2, patch=12, val_images=1)
    d = df.set_index("model")
    assert d.train_images.to_dict() == {"awsrn-s[train_subset=3]": 3, "awsrn-s": 6, "awsrn-s[hr_rescale=1]": 6}
    assert d.train_pairs.to_dict() == {"awsrn-s[train_subset=3]": 3, "awsrn-s": 6, "awsrn-s[hr_rescale=1]": 12}
    assert d.params.nunique() == 1 and d.loc["awsrn-s", "verdict"] == "baseline"
    runs = tmp_path / "runs" / "x4-2it-batch2-patch12-val_images1"
    assert sorted(p.name for p in runs.iterdir()) == ["awsrn-s", "awsrn-s-hr_rescale1", "awsrn-s-train_subset3"]
    recipe = json.loads((runs / "awsrn-s-hr_rescale1" / "recipe.json").read_text())
    assert (recipe["hr_rescale"], recipe["train_pairs"], recipe["overrides"]) == (1, 12, {})


def test_data_ft_study_fine_tunes_the_declared_checkpoint_with_and_without_copies(train_dir, tmp_path, monkeypatch):
    from ablations import training_studies as ts
    declared = ts.STUDIES["data_ft"]
    assert declared["init"] == "checkpoints/awsrn-s-x{scale}/model.safetensors"
    ck = tmp_path / "ck"
    train(_cfg(train_dir, ck, iters=2, scale=4, overrides={}))  # the full AWSRN-S: the study builds the registry's
    monkeypatch.setitem(ts.STUDIES, "data_ft", {**declared, "init": str(tmp_path / "ck" / "model.safetensors")})
    df = ts.run("data_ft", iters=2, data=[str(train_dir)], scale=4, out=str(tmp_path / "runs"), datasets=("skimage",),
                batch=2, patch=12, val_images=1, lr=2e-4)
    assert list(df.model) == ["awsrn-s[ft]", "awsrn-s[ft,hr_rescale=4]"] and df.baseline.iloc[0] == "awsrn-s[ft]"
    assert df.recipe.iloc[0] == f"cpu, batch 2, patch 12, amp none, lr 0.0002, from {ck} at 2 iterations"
    from benchmark.checkpoints import file_sha256
    sha = file_sha256(ck / "model.safetensors")[:12]      # keyed by the checkpoint: a replaced one starts anew
    runs = tmp_path / "runs" / f"x4-2it-batch2-patch12-lr0.0002-val_images1-from-{sha}"
    assert sorted(p.name for p in runs.iterdir()) == ["awsrn-s-ft", "awsrn-s-ft-hr_rescale4"]
    for name, pairs in (("awsrn-s-ft", 6), ("awsrn-s-ft-hr_rescale4", 6 * 5)):
        recipe = json.loads((runs / name / "recipe.json").read_text())
        # a new segment of the checkpoint's run: its budget counts the 2 iterations it started from
        assert (recipe["init_from"], recipe["lr"], recipe["total_iters"]) == (str(ck / "model.safetensors"), 2e-4, 4)
        assert recipe["train_pairs"] <= pairs and recipe["train_pairs"] > (6 if "hr" in name else 0)
    # a study whose checkpoint is missing says which one
    monkeypatch.setitem(ts.STUDIES, "data_ft", {**declared, "init": str(tmp_path / "none-x{scale}.safetensors")})
    with pytest.raises(FileNotFoundError, match=r"study 'data_ft' fine-tunes .*none-x2.safetensors, which does not exist"):
        ts.run("data_ft", iters=2, data=[str(train_dir)], scale=2, out=str(tmp_path / "runs"), datasets=("skimage",))


def test_ema_ft_study_differs_only_in_the_weight_average(train_dir, tmp_path, monkeypatch):
    from ablations import training_studies as ts
    declared = ts.STUDIES["ema_ft"]
    assert declared["init"] == ts.STUDIES["data_ft"]["init"] and declared["baseline"] == "awsrn-s[ft,hr_rescale=4]"
    ck = tmp_path / "ck"
    train(_cfg(train_dir, ck, iters=2, scale=4, overrides={}))
    monkeypatch.setitem(ts.STUDIES, "ema_ft", {**declared, "init": str(ck / "model.safetensors")})
    df = ts.run("ema_ft", iters=2, data=[str(train_dir)], scale=4, out=str(tmp_path / "runs"), datasets=("skimage",),
                batch=2, patch=12, val_images=1)
    assert list(df.model) == ["awsrn-s[ft,hr_rescale=4]", "awsrn-s[ft,hr_rescale=4,ema=0.999]"]
    runs = next((tmp_path / "runs").glob("x4-*"))   # beside it: store/, the sweep ledger
    recipes = {p.name: json.loads((p / "recipe.json").read_text()) for p in runs.iterdir()}
    assert sorted(recipes) == ["awsrn-s-ft-hr_rescale4", "awsrn-s-ft-hr_rescale4-ema0.999"]
    a, b = recipes.values()
    differ = {k for k in a if a[k] != b[k]}
    assert "ema" in differ and differ <= {"ema", "out", "segments"}
    assert sorted([a["ema"], b["ema"]]) == [0.0, 0.999] and a["train_pairs"] == b["train_pairs"]
    # two steps with decay 0.999 stay within a hair of the checkpoint; the plain fine-tune moved away from it
    start = read_checkpoint(ck / "model.safetensors").state_dict
    ema = read_checkpoint(runs / "awsrn-s-ft-hr_rescale4-ema0.999" / "model.safetensors").state_dict
    plain = read_checkpoint(runs / "awsrn-s-ft-hr_rescale4" / "model.safetensors").state_dict
    moved = lambda sd: max(float((sd[k] - start[k]).abs().max()) for k in start)
    assert moved(ema) < 0.01 * moved(plain)


def test_pruning_finetune_arm_is_measured_against_a_finetuned_full_model(train_dir, tmp_path):
    from ablations.branch_pruning import run

    ck = tmp_path / "ck"
    train(_cfg(train_dir, ck, iters=2, scale=4))    # x4: a quarter of x2's grading
    kw = dict(finetune_iters=2, train_data=[str(train_dir)], latency_lr=(16, 16), out_dir=str(tmp_path / "runs"),
              batch=2, patch=12, val_images=1, store=tmp_path / "store", subsets=[(3, 5), (5, 7, 9)])
    df = run(str(ck / "model.safetensors"), "awsrn-s", ("skimage",), **kw)
    # two subsets and the full set (always added: the reference), each without and with the fine-tune
    assert len(df) == 6 and set(df.retrain) == {"none", "finetune-2"}
    assert sorted(set(df.kernels)) == ["35", "3579", "579"]
    # every pruned model has its own identity in the store (structure + the weights it came from) ...
    files = sorted((tmp_path / "store/eval").glob("*.csv"))
    assert len(files) == 6 and any("awms-35-finetune-2" in f.name for f in files)
    # ... so a rerun reads every row back and gives the same table
    again = run(str(ck / "model.safetensors"), "awsrn-s", ("skimage",), **kw)
    pd.testing.assert_series_equal(df.psnr, again.psnr)
    full = df[df.kernels == "3579"].set_index("retrain")
    assert full.loc["none", "psnr"] != full.loc["finetune-2", "psnr"]    # the control moved too
    assert (full.d_psnr == 0).all()
    ft = df[df.retrain == "finetune-2"]
    assert np.allclose(ft.d_psnr, ft.psnr - full.loc["finetune-2", "psnr"])
    # each difference carries its paired interval; the full model against itself is exactly zero
    assert (full.ci_low == 0).all() and (full.ci_high == 0).all() and (full.p == 1).all()
    assert ((df.ci_low <= df.d_psnr + 1e-9) & (df.d_psnr <= df.ci_high + 1e-9)).all()
    assert df.p.between(0, 1).all()
    from benchmark.checkpoints import file_sha256
    tag = f"ck-{file_sha256(ck / 'model.safetensors')[:12]}"   # keyed by content: a retrained checkpoint starts anew
    tune = tmp_path / "runs" / "prune" / tag / "awms35-2it-batch2-patch12-val_images1"
    assert (tune / "model.safetensors").is_file()
    # each fine-tune validated at both of its iterations; its separation from the fine-tuned full model
    # is stated on the fine-tuned rows only
    log = pd.read_csv(tune / "train_log.csv").dropna(subset=["val_psnr"])
    assert list(log[log.segment == 2].iter) == [1, 2]      # segment 1: the checkpoint's own training
    assert df[df.retrain == "none"].points_separated.isna().all()
    assert set(ft[ft.kernels != "3579"].points_separated) <= {0, 1, 2} and ft[ft.kernels == "3579"].points_separated.isna().all()


def test_each_pruning_finetune_is_banked_as_soon_as_it_is_done(train_dir, tmp_path, monkeypatch):
    """A session that ends before the grading stage keeps every finished arm: runs/ does not outlive it."""
    import ablations.branch_pruning as bp

    ck = tmp_path / "ck"
    train(_cfg(train_dir, ck, iters=2, scale=4))
    banked = []
    real = bp._bank_finetune
    monkeypatch.setattr(bp, "_bank_finetune", lambda pr, sub, *a, **k: banked.append(sub) or real(pr, sub, *a, **k))

    def cut(*_a, **_k):
        raise KeyboardInterrupt
    monkeypatch.setattr(bp, "_grade", cut)
    kw = dict(finetune_iters=2, train_data=[str(train_dir)], latency_lr=(16, 16), out_dir=str(tmp_path / "runs"),
              batch=2, patch=12, val_images=1, subsets=[(3,)], bank=tmp_path / "bank")
    with pytest.raises(KeyboardInterrupt):
        bp.run(str(ck / "model.safetensors"), "awsrn-s", ("skimage",), **kw)
    assert banked == [(3,), (3, 5, 7, 9)]
    records = sorted(f.name for f in (tmp_path / "bank/prune").glob("*.csv"))
    assert len(records) == 2 and "awms3-2it" in records[0] and "awms3579-2it" in records[1]
    assert len(list((tmp_path / "bank/eval").glob("*finetune-2*.csv"))) == 2     # their per-image rows


def test_hr_rescale_adds_downscaled_copies_each_with_its_own_lr(train_dir):
    """VDSR's augmentation: copies at 0.9, 0.8, ... of each image; a copy too small for the patch is left
    out silently (its image is in use), an image too small at full size is reported as before."""
    from benchmark.data import LRCache
    from benchmark.imresize import bicubic_downscale, imresize, modcrop
    from benchmark.train import list_training_images, load_pairs, rescale_factors
    assert rescale_factors(0) == (1.0,) and rescale_factors(4) == (1.0, 0.9, 0.8, 0.7, 0.6)
    paths = list_training_images([train_dir])            # six 96x100 crops and one 80x80 gray image
    base, skipped0 = load_pairs(paths, 2, LRCache(), min_hr=84)
    pairs, skipped = load_pairs(paths, 2, LRCache(), min_hr=84, hr_rescale=2)
    assert len(base) == 6 and skipped == skipped0 and [Path(p).name for p, _ in skipped] == ["gray.png"]
    assert len(pairs) == 12                              # x1 and x0.9 (96 -> 87 -> 86 px); x0.8 (76 px) too small
    full = torch.from_numpy(np.array(Image.open(paths[1]).convert("RGB"))).permute(2, 0, 1)
    hr09, lr09 = pairs[1]
    assert torch.equal(pairs[0][0], modcrop(full, 2)) and hr09.shape == (3, 86, 90)
    assert torch.equal(hr09, modcrop(imresize(full, 0.9), 2)) and torch.equal(lr09, bicubic_downscale(hr09, 2))
    # the LR cache keeps the copies apart from the full-size image: a second load gives the same pairs
    again, _ = load_pairs(paths, 2, LRCache(), min_hr=84, hr_rescale=2)
    assert all(torch.equal(a[1], b[1]) for a, b in zip(pairs, again))


def test_train_subset_thins_the_training_images_but_keeps_the_held_out_ones(train_dir, tmp_path):
    from benchmark.train import evenly_spaced, training_pairs
    assert evenly_spaced(list(range(10)), 4) == [0, 3, 6, 9] and evenly_spaced([1, 2], 0) == [1, 2]
    assert evenly_spaced([1, 2], 5) == [1, 2]
    full = training_pairs((str(train_dir),), 2, 24, 2)
    part = training_pairs((str(train_dir),), 2, 24, 2, train_subset=3)
    assert (len(full[0]), full[3]) == (5, 5) and (len(part[0]), part[3]) == (3, 3)
    assert all(torch.equal(a[0], b[0]) for a, b in zip(full[2], part[2]))      # the same validation images
    train(_cfg(train_dir, tmp_path / "s", iters=2, train_subset=3, hr_rescale=1), progress=False)
    recipe = json.loads((tmp_path / "s/recipe.json").read_text())
    assert (recipe["train_images"], recipe["train_pairs"], recipe["hr_rescale"]) == (3, 6, 1)
    with pytest.raises(ValueError, match="train_subset must be >= 0"):
        _cfg(train_dir, tmp_path, train_subset=-1)



def test_min_hr_side_trains_a_small_patch_on_the_images_a_large_patch_admits(train_dir, tmp_path):
    """--min-hr-side separates a smaller patch from the extra pairs it admits: a 12 px patch with the side of
    a 44 px patch (88 px HR) leaves out the 0.9 copies (86 px) as the 44 px patch does."""
    from benchmark.train import run_tag
    for name, kw in {"s": {}, "m": {"min_hr_side": 88}, "l": {"patch": 44}}.items():
        train(_cfg(train_dir, tmp_path / name, iters=1, batch=1, val_every=1, ckpt_every=1, hr_rescale=1, **kw),
              progress=False)
    r = {k: json.loads((tmp_path / k / "recipe.json").read_text()) for k in "sml"}
    assert (r["s"]["train_pairs"], r["m"]["train_pairs"], r["l"]["train_pairs"]) == (10, 5, 5)
    assert (r["m"]["patch"], r["m"]["segments"][-1]["min_hr_side"]) == (12, 88)
    assert run_tag(r["m"]).endswith("-hr_rescale1-min_hr_side88")
    with pytest.raises(ValueError, match=r"no usable training image .*: 5 smaller than the 98px HR patch"):
        train(_cfg(train_dir, tmp_path / "x", min_hr_side=98), progress=False)


# ------------------------------------------------------------------------------ the fast step
def _pairs(train_dir, scale=2):
    from benchmark.data import LRCache
    from benchmark.train import list_training_images, load_pairs
    pairs, _ = load_pairs(list_training_images([train_dir]), scale, LRCache())
    return pairs


@pytest.mark.parametrize("scale,patch", [(2, 12), (3, 8), (4, 6)])
def test_batched_sampler_gathers_exactly_the_loop_samplers_patches(train_dir, scale, patch):
    from benchmark.train import PatchSampler
    a = PatchSampler(_pairs(train_dir, scale), scale, patch, 64, "cpu", seed=5)
    b = PatchSampler(_pairs(train_dir, scale), scale, patch, 64, "cpu", seed=5)
    for _ in range(3):
        (la, ha), (lb, hb) = a.sample(), b.sample_loop()
        assert la.shape == (64, 3, patch, patch) and ha.shape == (64, 3, patch * scale, patch * scale)
        assert torch.equal(la, lb) and torch.equal(ha, hb)
    # all 8 flip/transpose combinations occurred, and LR is HR downscaled at the same place
    k = a.draw(256)[3]
    assert set(k.tolist()) == set(range(8))


def test_sampler_resumes_inside_a_chunk(train_dir):
    from benchmark.train import PatchSampler
    ref = PatchSampler(_pairs(train_dir), 2, 12, 4, "cpu", seed=3, chunk=4)
    seq = [ref.sample_uint8()[1].clone() for _ in range(10)]
    for cut in (0, 2, 4, 7):
        a = PatchSampler(_pairs(train_dir), 2, 12, 4, "cpu", seed=3, chunk=4)
        for _ in range(cut):
            a.sample_uint8()
        b = PatchSampler(_pairs(train_dir), 2, 12, 4, "cpu", seed=99, chunk=4)
        b.load_state(a.state())
        assert all(torch.equal(b.sample_uint8()[1], seq[i]) for i in range(cut, 10)), cut


def test_fast_step_equals_eager_step_on_a_fixed_batch(train_dir):
    """Fused Adam + batched sampling vs the eager step: same loss, parameters equal to float tolerance."""
    from benchmark.train import EagerStep, make_optimizer
    lr_b, hr_b = torch.rand(4, 3, 12, 12), torch.rand(4, 3, 24, 24)
    states = []
    for fast in (False, True):
        torch.manual_seed(0)
        model = create_model("awsrn-s", scale=2, **TINY)
        cfg = _cfg(train_dir, "unused", fast=fast)
        opt = make_optimizer(model, cfg, torch.device("cpu"), graph=False)
        assert bool(opt.defaults.get("fused")) == fast
        step = EagerStep(model, opt, torch.device("cpu"))
        for _ in range(3):
            step(lr_b, hr_b)
        states.append((float(step.loss_sum), {k: v.clone() for k, v in model.state_dict().items()}))
    (loss_e, sd_e), (loss_f, sd_f) = states
    assert loss_f == pytest.approx(loss_e, rel=1e-6)
    assert max(float((sd_e[k] - sd_f[k]).abs().max()) for k in sd_e) < 1e-6
    assert any(not torch.equal(sd_e[k], create_model("awsrn-s", scale=2, **TINY).state_dict()[k]) for k in sd_e)


def test_eager_and_fast_runs_train_and_resume_exactly(train_dir, tmp_path):
    for fast in (False, True):
        train(_cfg(train_dir, tmp_path / f"full{fast}", fast=fast), progress=False)
        train(_cfg(train_dir, tmp_path / f"part{fast}", iters=4, fast=fast), progress=False)
        train(_cfg(train_dir, tmp_path / f"part{fast}", fast=fast), resume=True, progress=False)
        full = pd.read_csv(tmp_path / f"full{fast}/train_log.csv")
        part = pd.read_csv(tmp_path / f"part{fast}/train_log.csv")
        assert np.array_equal(part.loss.values, full.loss.values)
        assert full.loss.iloc[-1] < full.loss.iloc[0]
    # the two samplers draw the same patches, so the eager and fast runs see the same data
    e, f = pd.read_csv(tmp_path / "fullFalse/train_log.csv"), pd.read_csv(tmp_path / "fullTrue/train_log.csv")
    assert np.allclose(e.loss, f.loss, rtol=1e-4)


def test_a_continued_run_records_every_segment(train_dir, tmp_path):
    train(_cfg(train_dir, tmp_path / "a", iters=3), progress=False)
    train(_cfg(train_dir, tmp_path / "b", iters=4, lr=5e-4, schedule="cosine", hr_rescale=1,
               init_from=str(tmp_path / "a/model.safetensors")), progress=False)
    recipe = json.loads((tmp_path / "b/recipe.json").read_text())
    assert [s["iters"] for s in recipe["segments"]] == [3, 4] and recipe["total_iters"] == 7
    assert [s["lr"] for s in recipe["segments"]] == [1e-3, 5e-4]
    # each segment states its own data: the fine-tune added one downscaled copy per image
    assert [s["hr_rescale"] for s in recipe["segments"]] == [0, 1]
    assert recipe["segments"][1]["train_pairs"] > recipe["segments"][0]["train_pairs"]
    assert all({"batch", "patch", "device", "wall_s", "gpu_s"} <= set(s) for s in recipe["segments"])
    log = pd.read_csv(tmp_path / "b/train_log.csv")
    assert list(log.segment) == [1] * 3 + [2] * 4 and list(log.total_iter) == list(range(1, 8))
    assert read_checkpoint(tmp_path / "b/model.safetensors").path.is_file()
    assert open(tmp_path / "b/model.safetensors", "rb").read().count(b'"trained_iters":"7"') == 1
    # a resumed second segment keeps the first segment's rows
    train(_cfg(train_dir, tmp_path / "c", iters=2, init_from=str(tmp_path / "a/model.safetensors")), progress=False)
    train(_cfg(train_dir, tmp_path / "c", iters=4, init_from=str(tmp_path / "a/model.safetensors")), resume=True,
          progress=False)
    log = pd.read_csv(tmp_path / "c/train_log.csv")
    assert list(log.segment) == [1] * 3 + [2] * 4
    assert json.loads((tmp_path / "c/recipe.json").read_text())["total_iters"] == 7


def test_float16_storage_halves_the_file_and_loads(train_dir, tmp_path):
    train(_cfg(train_dir, tmp_path / "h", iters=2, save_dtype="float16"), progress=False)
    train(_cfg(train_dir, tmp_path / "f", iters=2), progress=False)
    h, f = read_checkpoint(tmp_path / "h/model.safetensors"), read_checkpoint(tmp_path / "f/model.safetensors")
    assert all(v.dtype == torch.float16 for v in h.state_dict.values())
    assert all(torch.equal(h.state_dict[k], f.state_dict[k].half()) for k in f.state_dict)
    m = create_model("awsrn-s", scale=2, weights=tmp_path / "h/model.safetensors", **TINY)
    assert all(p.dtype == torch.float32 for p in m.parameters())


def test_train_group_trains_every_run_to_the_same_length(train_dir, tmp_path):
    from benchmark.cli import main
    rc = main(["train-group", "--runs", "awsrn-s:2,awsrn-sd:3:8,awsrn-s:2:batch=2:lr=5e-4:name=s2-b2,awsrn-s:2:hr_rescale=1:train_subset=3:name=s2-aug",
               "--data", str(train_dir), "--device", "cpu",
               "--iters", "4", "--batch", "4", "--patch", "12", "--log-every", "2", "--val-every", "4", "--val-images", "2",
               "--out", str(tmp_path / "g"), "--quiet"])
    assert rc == 0
    df = pd.read_csv(tmp_path / "g/group.csv")
    assert list(df.model) == ["awsrn-s", "awsrn-sd", "awsrn-s", "awsrn-s"] and list(df.iters) == [4, 4, 4, 4]
    assert df.gpu_share.sum() == pytest.approx(1.0)
    assert list(df.batch) == [4, 4, 2, 4] and list(df.lr) == [1e-3, 1e-3, 5e-4, 1e-3] and list(df.patch) == [12, 8, 12, 12]
    aug = json.loads((tmp_path / "g/s2-aug/recipe.json").read_text())
    assert (aug["train_subset"], aug["hr_rescale"], aug["train_images"], aug["train_pairs"]) == (3, 1, 3, 6)
    assert json.loads((tmp_path / "g/awsrn-sd-x3/recipe.json").read_text())["patch"] == 8
    probe = json.loads((tmp_path / "g/s2-b2/recipe.json").read_text())
    assert (probe["batch"], probe["lr"], probe["model"]) == (2, 5e-4, "awsrn-s")
    assert (probe["train_subset"], probe["hr_rescale"]) == (0, 0)
    # the next group continues from these runs: a second segment each
    rc = main(["train-group", "--runs", "awsrn-s:2", "--data", str(train_dir), "--device", "cpu", "--iters", "2",
               "--batch", "4", "--patch", "12", "--log-every", "2", "--val-images", "2", "--out", str(tmp_path / "g2"),
               "--continue-from", str(tmp_path / "g"), "--quiet"])
    assert rc == 0
    assert json.loads((tmp_path / "g2/awsrn-s-x2/recipe.json").read_text())["total_iters"] == 6


def test_time_budget_ends_the_run_early_and_records_it(train_dir, tmp_path):
    summary = train(_cfg(train_dir, tmp_path / "b", iters=10**6, time_budget_s=3, log_every=5, val_every=10**6,
                         ckpt_every=10**6, schedule="cosine"), progress=False)
    recipe = json.loads((tmp_path / "b/recipe.json").read_text())
    assert 0 < summary["iters"] < 10**6 and recipe["iters_reached"] == summary["iters"]
    log = pd.read_csv(tmp_path / "b/train_log.csv")
    assert log.iter.iloc[-1] == summary["iters"] and not np.isnan(log.val_psnr.iloc[-1])
    assert (tmp_path / "b/checkpoint.pt").is_file()


def _signal_at(monkeypatch, it: int, signum):
    """Trainer.step sends this process ``signum`` once, right after some run's iteration ``it`` (not on resume)."""
    from benchmark.train import Trainer
    step, sent = Trainer.step, []

    def step_then_signal(self):
        step(self)
        if self.it == it and not self.resume and not sent:
            sent.append(signum)
            os.kill(os.getpid(), signum)
    monkeypatch.setattr(Trainer, "step", step_then_signal)


def test_a_sigterm_saves_the_run_where_it_stopped_and_resume_ends_where_the_whole_run_ends(train_dir, tmp_path, monkeypatch):
    """`timeout` sends SIGTERM: the run validates and saves at the iteration it reached (checkpoints were not
    due: ckpt_every 100), raises TrainingInterrupted, gives the signal back; --resume reaches the same weights."""
    import signal
    from benchmark.train import TrainingInterrupted
    train(_cfg(train_dir, tmp_path / "full", ckpt_every=100), progress=False)
    _signal_at(monkeypatch, 4, signal.SIGTERM)
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(TrainingInterrupted, match="interrupted by SIGTERM") as info:
        train(_cfg(train_dir, tmp_path / "part", ckpt_every=100), progress=False)
    assert info.value.signum == signal.SIGTERM and info.value.summary["iters"] == 4
    assert signal.getsignal(signal.SIGTERM) is before
    log = pd.read_csv(tmp_path / "part/train_log.csv")
    assert log.iter.iloc[-1] == 4 and not np.isnan(log.val_psnr.iloc[-1])
    part = json.loads((tmp_path / "part/recipe.json").read_text())
    assert part["iters_reached"] == 4 and part["schedule_complete"] is False    # stopped before its horizon
    from safetensors import safe_open
    with safe_open(tmp_path / "part/model.safetensors", "pt") as f:
        assert f.metadata()["trained_iters"] == "4"
    train(_cfg(train_dir, tmp_path / "part", ckpt_every=100), resume=True, progress=False)
    a, b = read_checkpoint(tmp_path / "full/model.safetensors"), read_checkpoint(tmp_path / "part/model.safetensors")
    assert all(torch.equal(a.state_dict[k], b.state_dict[k]) for k in a.state_dict)
    full, part = pd.read_csv(tmp_path / "full/train_log.csv"), pd.read_csv(tmp_path / "part/train_log.csv")
    assert list(part.iter) == list(range(1, 7)) and np.array_equal(part.loss.values, full.loss.values)


def test_a_learning_curve_leaves_out_the_validation_where_a_run_was_stopped(train_dir, tmp_path, monkeypatch):
    """A study's run stopped at iteration 4 and resumed validated there too (its log says where it stood);
    its curve is the scheduled validations (3 and 6), equal to those of the run that was never stopped."""
    import signal
    from ablations.training_studies import read_curves
    from benchmark.train import TrainingInterrupted
    train(_cfg(train_dir, tmp_path / "full"), progress=False)
    _signal_at(monkeypatch, 4, signal.SIGTERM)
    with pytest.raises(TrainingInterrupted):
        train(_cfg(train_dir, tmp_path / "part"), progress=False)
    train(_cfg(train_dir, tmp_path / "part"), resume=True, progress=False)
    log = pd.read_csv(tmp_path / "part/train_log.csv")
    assert list(log.iter[log.val_psnr.notna()]) == [3, 4, 6]
    full, part = (read_curves([("awsrn-s", {}, 1, tmp_path / d)]) for d in ("full", "part"))
    assert list(part.iter) == [3, 6]
    pd.testing.assert_frame_equal(part[["model", "seed", "iter", "val_psnr"]], full[["model", "seed", "iter", "val_psnr"]])


def test_ctrl_c_in_train_group_saves_every_run_and_says_so_in_one_line(train_dir, tmp_path, monkeypatch, capsys):
    import signal
    from benchmark.cli import main
    _signal_at(monkeypatch, 3, signal.SIGINT)   # inside the group's solo-speed measure (30 steps per run)
    rc = main(["train-group", "--runs", "awsrn-s:2,awsrn-sd:2", "--data", str(train_dir), "--device", "cpu",
               "--iters", "1000", "--batch", "4", "--patch", "12", "--log-every", "1000", "--ckpt-every", "1000",
               "--val-images", "2", "--out", str(tmp_path / "g"), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 130 and err == ["awsrn-bench train-group: interrupted by SIGINT: the runs saved where they stopped, "
                                 "--resume continues them"]
    df = pd.read_csv(tmp_path / "g/group.csv")
    assert list(df.model) == ["awsrn-s", "awsrn-sd"] and list(df.iters) == [3, 0]
    for name, it in (("awsrn-s-x2", 3), ("awsrn-sd-x2", 0)):
        assert torch.load(tmp_path / "g" / name / "checkpoint.pt", weights_only=False)["iter"] == it
        assert (tmp_path / "g" / name / "model.safetensors").is_file()
    # in the round-robin loop: every run ends in the round the signal came in
    _signal_at(monkeypatch, 40, signal.SIGTERM)
    rc = main(["train-group", "--runs", "awsrn-s:2,awsrn-sd:2", "--data", str(train_dir), "--device", "cpu",
               "--iters", "1000", "--batch", "4", "--patch", "12", "--log-every", "1000", "--ckpt-every", "1000",
               "--val-images", "2", "--out", str(tmp_path / "h"), "--quiet"])
    assert rc == 143 and list(pd.read_csv(tmp_path / "h/group.csv").iters) == [40, 40]


def test_train_group_rejects_a_malformed_run_spec(train_dir, tmp_path, capsys):
    from benchmark.cli import main
    rc = main(["train-group", "--runs", "awsrn-s:4,awsrn-s", "--data", str(train_dir), "--device", "cpu",
               "--out", str(tmp_path / "g")])
    assert rc == 2 and "'awsrn-s' is not MODEL:SCALE[:PATCH][:KEY=VALUE...]" in capsys.readouterr().err
    assert not (tmp_path / "g").exists()
    for item, message in [("awsrn-s:4:bs=3", "(keys: patch, batch, lr, train_subset, hr_rescale, min_hr_side, ema, loss, name)"),
                          ("awsrn-s:4:hr_rescale=6", "hr_rescale must be 0 to 5"),
                          ("awsrn-s:4:lr=fast", "lr='fast' is not float")]:
        rc = main(["train-group", "--runs", item, "--data", str(train_dir), "--device", "cpu",
                   "--out", str(tmp_path / "g")])
        assert rc == 2 and message in capsys.readouterr().err


def test_time_budget_horizon_grows_back_after_a_slow_start(monkeypatch):
    """A slow probe (graph capture, autotuning) first fits a short horizon; once the speed is measured
    higher the horizon grows again (capped by cfg.iters), so a run is not cut short by its start."""
    from types import SimpleNamespace
    from benchmark import train as tr
    clock = {"now": 0.0}
    monkeypatch.setattr(tr.time, "perf_counter", lambda: clock["now"])
    t = SimpleNamespace(it=0, horizon=10**6, world=1, cfg=SimpleNamespace(iters=10**6, log_every=500),
                        bar=SimpleNamespace(total=None), sync=lambda: None)
    budget = tr.TimeBudget(100.0, warmup=10, probe=50, safety=1.0, refit_every=100)
    c = tr._BudgetClock(budget, [t])
    for r in range(1, 1001):
        clock["now"] += 1.0 if r <= 60 else 0.01     # 1 s per round during the probe, then 100 rounds/s
        t.it += 1
        c.after_round()
        if r == 60:
            first = t.horizon
    assert first == 100                              # 50 rounds in 50 s; 40 s left -> 40 more rounds
    assert t.horizon > 1000 and t.horizon <= 10**6    # re-fitted upwards from the faster rounds
    t.cfg.iters = 500
    clock["now"] += 0.01
    t.it += 1; c.rounds = 1099; c.after_round()
    assert t.horizon == 500                           # never past cfg.iters


def test_time_budget_hard_stop_marks_the_run_cut_short_and_a_reached_horizon_does_not(monkeypatch):
    """A run that reaches the horizon its budget fitted finished its schedule; one stopped by the budget's hard
    stop before that horizon did not (recipe.json `schedule_complete`, which scripts/adopt_finetune.py reads)."""
    from types import SimpleNamespace
    from benchmark import train as tr
    clock = {"now": 0.0}
    monkeypatch.setattr(tr.time, "perf_counter", lambda: clock["now"])

    def run(seconds_per_round_after_probe):
        t = SimpleNamespace(it=0, horizon=10**6, cut_short=False, world=1, cfg=SimpleNamespace(iters=10**6),
                            bar=SimpleNamespace(total=None), sync=lambda: None)
        clock["now"] = 0.0
        c = tr._BudgetClock(tr.TimeBudget(100.0, warmup=10, probe=50, safety=0.9, refit_every=10**6), [t])
        while t.it < t.horizon:
            clock["now"] += 1.0 if c.rounds < 60 else seconds_per_round_after_probe
            t.it += 1
            c.after_round()
        return t

    steady = run(1.0)                     # the fitted horizon (60 + 0.9 * 40 = 96) is reached inside the budget
    assert (steady.it, steady.cut_short) == (96, False)
    slowed = run(4.0)                     # slower after the fit: the hard stop at 100 s ends it at 70 < 96
    assert (slowed.it, slowed.horizon, slowed.cut_short) == (70, 70, True)


def test_train_flags_are_the_fields_of_trainconfig():
    """The flags of train are made from TrainConfig: parsing no recipe flag gives its defaults exactly, and
    each kind of field (tuple, bool on by default, key=value, renamed flag) comes back as the field takes it."""
    import dataclasses

    from benchmark.argtypes import config_values
    from benchmark.cli import build_parser
    p = build_parser()
    args = p.parse_args(["train", "--data", "x"])
    assert set(args.config_fields) == {f.name for f in dataclasses.fields(TrainConfig)} - {"out"}
    assert TrainConfig(out="o", **config_values(TrainConfig, args, args.config_fields)) == TrainConfig(data=("x",), out="o")
    args = p.parse_args(["train", "--data", "a,b", "--no-fast", "--set", "n_lfb=2", "--set", "bam=true",
                         "--monitor", "Set5,Set14", "--time-budget", "3", "--scale", "3"])
    cfg = TrainConfig(out="o", **config_values(TrainConfig, args, args.config_fields))
    assert (cfg.data, cfg.fast, cfg.overrides, cfg.monitor, cfg.time_budget_s, cfg.scale) == (
        ("a", "b"), False, {"n_lfb": 2, "bam": True}, ("Set5", "Set14"), 3.0, 3)
    group = p.parse_args(["train-group", "--runs", "awsrn-s:2", "--data", "x", "--device", "cpu"])
    values = config_values(TrainConfig, group, group.config_fields)
    assert (values["schedule"], values["iters"], values["batch"]) == ("cosine", 1_000_000, 16)
    assert "model" not in values and "time_budget_s" not in values


def test_the_graph_step_takes_bf16_and_refuses_fp16_with_its_reason():
    """bf16 and channels_last are captured with the CUDA graph; fp16 is refused before any CUDA call
    (its loss scaler steps outside the graph), and the trainer then keeps the eager step for it."""
    from benchmark.train import GraphStep
    with pytest.raises(ValueError, match="amp none or bf16, not 'fp16'"):
        GraphStep(None, None, None, (1, 3, 4, 4), (1, 3, 8, 8), torch.device("cpu"), amp="fp16")


def test_the_weight_average_is_the_ema_of_the_trained_weights_and_is_what_is_saved(train_dir, tmp_path):
    """--ema d: after every step avg = d * avg + (1 - d) * w, starting from the initial weights; validation and
    model.safetensors hold the average, the checkpoint both."""
    from benchmark.train import Trainer
    t = Trainer(_cfg(train_dir, tmp_path / "ema", ema=0.9), progress=False)
    avg = [p.detach().clone() for p in t.model.parameters()]
    while not t.done:
        t.step()
        avg = [0.9 * a + 0.1 * p.detach() for a, p in zip(avg, t.model.parameters())]
    got = list(t.ema.model.parameters())
    assert max(float((a - g).abs().max()) for a, g in zip(avg, got)) < 1e-6
    assert any(not torch.allclose(g, p) for g, p in zip(got, t.model.parameters()))   # not the raw weights
    t.finish()
    saved = read_checkpoint(tmp_path / "ema/model.safetensors").state_dict
    assert all(torch.equal(saved[k], v) for k, v in t.ema.model.state_dict().items())
    assert json.loads((tmp_path / "ema/recipe.json").read_text())["segments"][-1]["ema"] == 0.9


def test_a_run_with_a_weight_average_resumes_exactly(train_dir, tmp_path):
    train(_cfg(train_dir, tmp_path / "full", ema=0.5), progress=False)
    train(_cfg(train_dir, tmp_path / "part", iters=3, ema=0.5), progress=False)
    train(_cfg(train_dir, tmp_path / "part", ema=0.5), resume=True, progress=False)
    a, b = read_checkpoint(tmp_path / "full/model.safetensors"), read_checkpoint(tmp_path / "part/model.safetensors")
    assert all(torch.equal(a.state_dict[k], b.state_dict[k]) for k in a.state_dict)
    full, part = pd.read_csv(tmp_path / "full/train_log.csv"), pd.read_csv(tmp_path / "part/train_log.csv")
    assert np.array_equal(part.loss.values, full.loss.values)
    assert np.array_equal(part.val_psnr.values, full.val_psnr.values, equal_nan=True)
    # the same run without the average ends on other weights
    train(_cfg(train_dir, tmp_path / "plain"), progress=False)
    c = read_checkpoint(tmp_path / "plain/model.safetensors")
    assert any(not torch.equal(a.state_dict[k], c.state_dict[k]) for k in a.state_dict)


def test_a_bad_ema_is_one_line(train_dir, tmp_path):
    with pytest.raises(ValueError, match=r"ema must be a decay in \[0, 1\) \(0: off, e.g. 0.999\), got 1.0"):
        _cfg(train_dir, tmp_path / "x", ema=1.0)
    train(_cfg(train_dir, tmp_path / "plain", iters=3), progress=False)
    with pytest.raises(ValueError, match=r"checkpoint.pt: has no weight average to resume --ema 0.9 from"):
        train(_cfg(train_dir, tmp_path / "plain", ema=0.9), resume=True, progress=False)
    out = subprocess.run([sys.executable, "-m", "benchmark.cli", "train", "--data", str(train_dir), "--ema", "1.5",
                          "--out", str(tmp_path / "cli")], capture_output=True, text=True)
    assert out.returncode == 2 and out.stderr.strip().splitlines()[-1].endswith("got 1.5") \
        and "Traceback" not in out.stderr, out.stderr


def test_bf16_on_a_cpu_that_emulates_it_warns_in_one_line(train_dir, tmp_path, monkeypatch, capsys):
    """bf16 autocast on a CPU without AVX512-BF16/AMX ran the step 20x slower than float32: train says so;
    scripts/cpu_finetune.sh picks --amp by native_bf16."""
    import benchmark.train as tr
    for avx512_bf16, amx, native in ((False, False, False), (True, False, True), (False, True, True)):
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda v=avx512_bf16: v)
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda v=amx: v)
        assert tr.native_bf16("cpu") is native and tr.native_bf16(torch.device("cpu")) is native
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    train(_cfg(train_dir, tmp_path / "bf16", iters=1, amp="bf16"), progress=False)
    warned = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("warning: amp bf16")]
    assert len(warned) == 1 and "has no AVX512-BF16 or AMX" in warned[0]
    train(_cfg(train_dir, tmp_path / "fp32", iters=1), progress=False)
    assert "warning" not in capsys.readouterr().err


def test_a_recipe_key_given_to_set_is_one_line(train_dir, tmp_path, capsys):
    from benchmark.cli import main
    assert main(["train", "--data", str(train_dir), "--set", "amp=bf16", "--iters", "1",
                 "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["awsrn-bench train: error: override 'amp' (--set amp=...): not a field of awsrn-s's config; "
                   "expected one of n_lfb, n_awru, n_feats, block_feats, awms_kernels, unit, lrfu, bam, bam_reduction, "
                   "input_range, mean_shift, rgb_mean"]


def test_the_l2_loss_step_descends_the_mean_squared_error_and_names_the_run(train_dir):
    """--loss l2: the step's loss is F.mse_loss of the model's output, and its update is Adam on that loss's
    gradients (equal to a hand-written step); L1 and L2 take different steps; the run folder names it."""
    from benchmark.train import EagerStep, make_optimizer, run_tag
    lr_b, hr_b = torch.rand(4, 3, 12, 12), torch.rand(4, 3, 24, 24)
    cfg = _cfg(train_dir, "unused", loss="l2")
    after = {}
    for loss in ("l1", "l2"):
        torch.manual_seed(0)
        model = create_model("awsrn-s", scale=2, **TINY)
        step = EagerStep(model, make_optimizer(model, cfg, torch.device("cpu"), graph=False), torch.device("cpu"),
                         loss=loss)
        step(lr_b, hr_b)
        after[loss] = (float(step.loss_sum), {k: v.clone() for k, v in model.state_dict().items()})
    torch.manual_seed(0)
    ref = create_model("awsrn-s", scale=2, **TINY)
    opt = make_optimizer(ref, cfg, torch.device("cpu"), graph=False)
    expected = torch.mean((ref(lr_b) - hr_b) ** 2)
    expected.backward()
    opt.step()
    assert after["l2"][0] == pytest.approx(float(expected.detach()), rel=1e-6)
    assert max(float((after["l2"][1][k] - v).abs().max()) for k, v in ref.state_dict().items()) < 1e-7
    assert after["l1"][0] != pytest.approx(after["l2"][0], rel=1e-3)
    assert run_tag({"loss": "l2", "hr_rescale": 4}) == "-hr_rescale4-lossl2" and run_tag({"loss": "l1"}) == ""
    with pytest.raises(ValueError, match=r"loss must be one of l1, l2, got 'huber'"):
        _cfg(train_dir, "unused", loss="huber")


@pytest.mark.parametrize("name,scale", [("awsrn-s", 4), ("awsrn-sd-awms59", 3), ("awsrn-m-bam", 2)])
def test_the_one_conv_awms_gives_the_branches_output_and_gradients(name, scale, monkeypatch):
    """train --awms-one-conv: in float64 the one conv built from the branches equals their sum, and every
    parameter (each branch's weight_v, weight_g, bias and lambda included) gets the same gradient."""
    from benchmark.models.awsrn import AWMS
    from tests.reference_awsrn import randomize
    x = torch.rand(2, 3, 9, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(scale))
    target = torch.rand(2, 3, 9 * scale, 7 * scale, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    results = []
    for one_conv in (False, True):
        torch.manual_seed(0)
        m = randomize(create_model(name, scale=scale, n_lfb=1, n_awru=1), seed=scale).double()
        m.tail.one_conv = one_conv
        if one_conv:        # the branches are not run
            monkeypatch.setattr(AWMS, "branch", lambda *a: pytest.fail("a branch ran in the one-conv form"))
        y = m(x)
        (y - target).abs().mean().backward()
        results.append((y.detach(), {k: p.grad for k, p in m.named_parameters()}))
    (y0, g0), (y1, g1) = results
    assert (y0 - y1).abs().max().item() < 1e-12
    assert g0.keys() == g1.keys() and any(k.startswith("tail.scale_k") for k in g0)
    for k in g0:
        assert torch.allclose(g0[k], g1[k], rtol=1e-9, atol=1e-13), k


def test_a_one_conv_awms_run_trains_like_the_branches_resumes_exactly_and_saves_the_branches(train_dir, tmp_path):
    train(_cfg(train_dir, tmp_path / "branches"), progress=False)
    train(_cfg(train_dir, tmp_path / "one", awms_one_conv=True), progress=False)
    train(_cfg(train_dir, tmp_path / "part", awms_one_conv=True, iters=4), progress=False)
    train(_cfg(train_dir, tmp_path / "part", awms_one_conv=True), resume=True, progress=False)
    b, o, p = (pd.read_csv(tmp_path / f"{r}/train_log.csv") for r in ("branches", "one", "part"))
    assert np.allclose(b.loss, o.loss, rtol=1e-4) and not np.array_equal(b.loss.values, o.loss.values)
    assert np.array_equal(p.loss.values, o.loss.values)
    sd_b, sd_o = (read_checkpoint(tmp_path / f"{r}/model.safetensors").state_dict for r in ("branches", "one"))
    assert sd_b.keys() == sd_o.keys() and "tail.tail_k9.weight_v" in sd_o
    recipe = json.loads((tmp_path / "one/recipe.json").read_text())
    assert recipe["awms_one_conv"] is True and recipe["segments"][-1]["awms_one_conv"] is True
    from benchmark.train import run_tag
    assert run_tag({"awms_one_conv": True, "amp": "bf16"}) == "-ampbf16-awms_one_conv"


def test_one_conv_awms_on_a_model_without_one_is_one_line(train_dir, tmp_path):
    with pytest.raises(ValueError, match="awms_one_conv .--awms-one-conv.: imdn has no AWMS tail"):
        _cfg(train_dir, tmp_path / "x", model="imdn", overrides={}, awms_one_conv=True)
    out = subprocess.run([sys.executable, "-m", "benchmark.cli", "train", "--data", str(train_dir), "--model", "carn-m",
                          "--awms-one-conv", "--out", str(tmp_path / "cli")], capture_output=True, text=True)
    assert out.returncode == 2 and out.stderr.strip().splitlines() == [
        "awsrn-bench train: error: awms_one_conv (--awms-one-conv): carn-m has no AWMS tail to train as one conv; "
        "it applies to the AWSRN variants"], out.stderr


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a CUDA device")
def test_the_cuda_graph_step_with_the_one_conv_awms_equals_its_eager_step():
    from benchmark.bench import graph_equals_eager
    check = graph_equals_eager("cuda", awms_one_conv=True)
    assert check["equal"], check
