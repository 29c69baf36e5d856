from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmark import report
from benchmark.complexity import complexity_table
from ablations.branch_pruning import SUBSETS, pareto


def test_bicubic_table_diffs():
    s = pd.DataFrame([{"dataset": "Set5", "scale": 2, "psnr": 33.67, "ssim": 0.9303, "n_images": 5}])
    t = report.bicubic_table(s)
    assert t.d_psnr.iloc[0] == pytest.approx(0.01) and t.literature_ssim.iloc[0] == 0.9299


def test_paper_vs_ours_attaches_checkpoint_scores():
    cx = complexity_table(scales=(4,))
    evals = pd.DataFrame([{"model": "awsrn-s", "scale": 4, "dataset": "Set5", "psnr": 30.0, "ssim": 0.85,
                           "checkpoint": "awsrn-s-x4", "iters": 2300}])
    df = report.paper_vs_ours(cx, evals)
    row = df[(df.model == "awsrn-s") & (df.dataset == "Set5")].iloc[0]
    assert row.paper_psnr == 31.77 and row.d_psnr == pytest.approx(30.0 - 31.77) and row.iters == 2300
    assert df[(df.model == "awsrn-m")].psnr.isna().all()
    assert set(df.dataset) == {"Set5", "Set14", "B100", "Urban100", "Manga109"}


def test_save_table_writes_three_formats(tmp_path):
    paths = report.save_table(pd.DataFrame({"a": [1.23456], "b": ["x"]}), tmp_path, "t")
    assert [p.suffix for p in paths] == [".csv", ".md", ".tex"] and "1.2346" in (tmp_path / "t.md").read_text()


def test_pruning_subsets_and_pareto():
    assert len(SUBSETS) == 15 and (3, 5, 7, 9) in SUBSETS
    df = pd.DataFrame({"multi_adds_g": [1, 2, 3, 2.5], "psnr": [30, 31, 32, 30.5]})
    assert pareto(df).tolist() == [True, True, True, False]


@pytest.mark.slow
def test_reproduce_without_data_root(tmp_path, monkeypatch):
    """The main job on the embedded skimage set, with one tiny checkpoint: every table and figure."""
    from benchmark import create_model
    from benchmark.checkpoints import save_native
    from benchmark.evaluate import evaluate
    from benchmark.reproduce import reproduce
    monkeypatch.delenv("AWSRN_DATA", raising=False)
    monkeypatch.setenv("AWSRN_CACHE", str(tmp_path / "cache"))
    ck = tmp_path / "ck" / "tiny-x4"
    save_native(create_model("awsrn-s", scale=4, n_feats=8, block_feats=16, n_awru=1), ck / "model.safetensors")
    (ck / "recipe.json").write_text('{"model": "awsrn-s", "scale": 4, "iters_reached": 0}')
    # the registry variant awsrn-s has the official widths, so evaluate by checkpoint structure
    monkeypatch.setattr(report, "checkpoint_info", lambda p: {"model": None, "scale": 4, "iters": 0,
                                                             "train_device": "cpu", "batch": 16, "schedule": "x"})
    reproduce(None, tmp_path / "results", tmp_path / "ck", latency_repeats=1, latency_lr=(24, 24))
    out = tmp_path / "results" / "embedded"      # never over the tables made from the benchmark sets
    for name in ("complexity.csv", "complexity_peers.csv", "latency_peers_cpu.csv", "fig_psnr_vs_latency_cpu.png",
                 "bicubic.md", "checkpoints_eval.tex", "paper_vs_ours.csv", "latency_cpu.csv",
                 "awms_weights.csv", "branch_pruning.csv", "fig_branch_pruning.png", "fig_awms_weights.png",
                 "fig_psnr_vs_multiadds_set5_x2.png", "fig_visual.png", "README.md"):
        assert (out / name).is_file(), name
    # the tables agree with each other and with the API, step to step (values, not only files)
    pruning = pd.read_csv(out / "branch_pruning.csv", dtype={"kernels": str})
    assert len(pruning) == 15 and set(pruning.retrain) == {"none"}
    ck_eval = pd.read_csv(out / "checkpoints_eval.csv").set_index("dataset")
    full = pruning[pruning.kernels == "3579"].iloc[0]        # the unpruned subset is the checkpoint itself
    assert full.psnr == pytest.approx(ck_eval.loc["skimage", "psnr"], abs=1e-12) and full.d_psnr == 0
    bic = pd.read_csv(out / "bicubic.csv").set_index("scale")
    direct = evaluate("bicubic", ["skimage"], [4], progress=False).summary.iloc[0]
    assert bic.loc[4, "psnr"] == pytest.approx(direct.psnr, abs=1e-12) and bic.loc[4, "n_images"] == 5
    cx = pd.read_csv(out / "complexity.csv").set_index(["model", "scale"])
    assert cx.loc[("awsrn-s", 2), "params"] == 397482 and cx.loc[("awsrn-s", 2), "params_k_diff"] == pytest.approx(0, abs=0.5)
    aw = pd.read_csv(out / "awms_weights.csv")
    assert aw.energy_share.sum() == pytest.approx(1.0) and list(aw.kernel) == [3, 5, 7, 9]
    index = (out / "README.md").read_text()
    assert "![pruning](fig_branch_pruning.png)" in index
    assert "No data root: the embedded scikit-image set only, skimage (5 images)" in index
    assert sorted(p.name for p in (tmp_path / "results").iterdir()) == ["embedded"]
    assert set(pd.read_csv(out / "latency_cpu.csv").lr_h) == {24}


def test_cli_ablate_awms_weights_reads_lambda_from_the_checkpoint(tmp_path, capsys):
    from benchmark.checkpoints import read_checkpoint
    from benchmark.cli import main

    ck = Path(__file__).resolve().parents[1] / "checkpoints" / "awsrn-sd-x2" / "model.safetensors"
    assert main(["ablate", "awms-weights", str(ck), "--datasets", "skimage", "--out", str(tmp_path),
                 "--format", "csv"]) == 0
    df = pd.read_csv(tmp_path / "awms_weights.csv")
    assert (tmp_path / "fig_awms_weights.png").is_file()
    sd = read_checkpoint(ck).state_dict
    assert list(df.kernel) == [3, 5, 7, 9] and set(df.checkpoint) == {"awsrn-sd-x2"}
    assert df["lambda"].tolist() == pytest.approx([float(sd[f"tail.scale_k{k}.scale"]) for k in (3, 5, 7, 9)])
    assert df.energy_share.sum() == pytest.approx(1.0) and (df.energy_share > 0).all()
    assert "awsrn-sd-x2" in capsys.readouterr().out


def test_cli_ablate_pruning_names_a_missing_checkpoint(tmp_path, capsys):
    from benchmark.cli import main

    assert main(["ablate", "branch-pruning", str(tmp_path / "nope.safetensors"), "--out", ""]) == 2
    err = capsys.readouterr().err
    assert "awsrn-bench ablate branch-pruning: error" in err and "nope.safetensors" in err


def test_pruning_table_merges_per_checkpoint(tmp_path):
    from ablations.branch_pruning import merge_into

    row = dict(kernels="3579", n_branches=4, retrain="none", dataset="Set5", psnr=30.0, pareto=True,
               d_psnr=0.0, d_multi_adds_g=0.0)
    path = tmp_path / "ft.csv"
    merge_into(pd.DataFrame([{**row, "checkpoint": "a"}]), path)
    merge_into(pd.DataFrame([{**row, "checkpoint": "b", "psnr": 31.0}]), path)
    merged = merge_into(pd.DataFrame([{**row, "checkpoint": "a", "psnr": 29.0}]), path)
    assert sorted(zip(merged.checkpoint, merged.psnr)) == [("a", 29.0), ("b", 31.0)]
    assert pd.read_csv(path, dtype={"kernels": str}).kernels.tolist() == ["3579", "3579"]
    assert (tmp_path / "fig_ft.png").is_file()


def test_a_study_grows_only_against_its_own_control():
    from ablations.branch_pruning import join_study

    def rows(kernels, control_sha, weights="w"):
        return pd.DataFrame([dict(checkpoint="c", kernels=k, n_branches=len(k), retrain=arm, dataset="Set5",
                                  psnr={"3": 30.1, "5": 30.05}.get(k, 30.4), multi_adds_g=float(len(k)),
                                  weights_sha256=weights,
                                  recipe="" if arm == "none" else "cpu",
                                  finetune_sha256=None if arm == "none" else (control_sha if k == "3579" else k))
                             for k in kernels for arm in ("none", "finetune-4")])

    old = pd.concat([rows(["3", "3579"], "a"), rows(["3579"], "z").assign(checkpoint="other")])
    joined, how = join_study(rows(["5", "3579"], "a"), old)
    assert how == "joined" and joined.kernels.tolist() == ["3", "3", "5", "5", "3579", "3579"]
    assert joined.pareto.tolist() == [True, True, False, False, True, True]   # marked again over all three
    assert join_study(rows(["5", "3579"], "b"), old) == (None, "kept")       # another control: a smaller run
    for new in (rows(["3", "5", "3579"], "b"), rows(["5", "3579"], "a", weights="v")):
        assert join_study(new, old)[1] == "replaced"                         # covers them all, or a new study
    assert join_study(rows(["5", "3579"], "a"), old.drop(columns="finetune_sha256"))[1] == "kept"
    assert join_study(rows(["5", "3579"], "a"), None)[1] == "new"


def test_pruning_rerun_names_what_is_missing(tmp_path, capsys):
    import importlib.util
    spec = importlib.util.spec_from_file_location("pruning_rerun", Path(__file__).resolve().parents[1] / "scripts" / "pruning_rerun.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.main(["awsrn-m-x2", "--results", str(tmp_path)]) == 2
    table = tmp_path / "branch_pruning_finetune.csv"
    assert capsys.readouterr().err == f"pruning_rerun: {table}: no such file (run the fine-tuned study first)\n"
    pd.DataFrame([dict(checkpoint="awsrn-m-x2", kernels="3", retrain="finetune-4", dataset="Set5", psnr=30.0,
                       weights_sha256="w")]).to_csv(table, index=False)
    assert mod.main(["awsrn-m-x2", "--results", str(tmp_path)]) == 2
    assert capsys.readouterr().err == (f"pruning_rerun: awsrn-m-x2: {tmp_path / 'store/prune'} has no banked "
                                       f"fine-tune of a subset that {table} also has\n")


def test_removal_vs_weights_pairs_each_removal_with_the_removed_branch():
    from ablations.branch_pruning import removal_vs_weights

    pr = pd.DataFrame([{"checkpoint": "c", "dataset": "Set5", "retrain": "none", "kernels": k,
                        "n_branches": len(k), "d_psnr": -float(i), "d_multi_adds_g": -1.0}
                       for i, k in enumerate(["3579", "579", "379", "359", "357", "35"])])
    aw = pd.DataFrame([{"checkpoint": "c", "kernel": k, "lambda": lam, "energy_share": 0.25}
                       for k, lam in [(3, 0.4), (5, 0.3), (7, 0.2), (9, 0.1)]])
    t = removal_vs_weights(pr, aw)
    assert list(t.removed) == [9, 7, 5, 3]                      # sorted by lambda, one row per removal
    assert list(t.d_psnr) == [-4.0, -3.0, -2.0, -1.0]            # 357 removed 9, ..., 579 removed 3


def test_the_cli_imports_no_study_until_one_is_asked_for():
    """Imports run one way: building the parser (`awsrn-bench list`, `--help`) loads no ablation module,
    and no ablation module imports the CLI."""
    import subprocess
    import sys
    code = ("import sys; from benchmark.cli import build_parser, main; build_parser(); main(['list']); "
            "print(sorted(m for m in sys.modules if m.startswith('ablations')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().endswith("[]")
    root = Path(__file__).resolve().parents[1] / "ablations"
    for f in root.glob("*.py"):
        assert "benchmark.cli" not in f.read_text(), f.name


def test_ablate_plugins_parse_their_own_flags(capsys):
    from benchmark.cli import main
    from benchmark.plugins import available, load
    assert set(available()) >= {"awms-weights", "branch-pruning", "study"}
    for name in ("awms-weights", "branch-pruning", "study"):
        module = load(name)
        assert module.NAME == name and callable(module.plot) and callable(module.run)
    for argv, message in [(["ablate", "study", "bam", "--iters", "0", "--data", "x"],
                           "awsrn-bench ablate study: error: argument --iters: expected an integer >= 1, got 0"),
                          (["ablate", "nosuch"], "invalid choice: 'nosuch'")]:
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        assert exit_.value.code == 2 and message in capsys.readouterr().err


def test_latency_vs_floor_puts_each_gpu_row_against_its_traffic():
    from benchmark import create_model
    from benchmark.deploy import reparameterize
    from benchmark.traffic import forward_traffic
    lat = pd.DataFrame([{"model": "awsrn-s", "scale": 2, "device": "NVIDIA H200", "lr_h": 8, "lr_w": 10,
                         "precision": "fp16", "deploy": True, "channels_last": False, "latency_ms": 0.5},
                        {"model": "awsrn-s", "scale": 2, "device": "some GPU", "lr_h": 8, "lr_w": 10,
                         "precision": "fp32", "deploy": False, "channels_last": False, "latency_ms": 0.5}])
    df = report.latency_vs_floor(lat)
    t = forward_traffic(reparameterize(create_model("awsrn-s", scale=2)), (1, 3, 8, 10))
    assert df.traffic_mb.iloc[0] == pytest.approx(t.bytes("fp16") / 1e6)
    assert df.floor_ms.iloc[0] == pytest.approx(t.bytes("fp16") / 4800e9 * 1e3)
    assert df.x_floor.iloc[0] == pytest.approx(0.5 / df.floor_ms.iloc[0])
    assert df.floor_ms.isna().iloc[1]                         # no known bandwidth: no floor, said as NaN


def _all_options(parser, prefix=()):
    """(command path, option strings) of every subcommand of the CLI, ablation plugins included."""
    import argparse

    from benchmark.argtypes import Parser
    from benchmark.plugins import available, load
    out = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                out += _all_options(sub, prefix + (name,))
        elif action.option_strings:
            out.append((prefix, tuple(action.option_strings)))
    if prefix == ():
        for name in available():
            p = Parser(prog=name)
            load(name).add_arguments(p)
            out += [(("ablate", name), tuple(a.option_strings)) for a in p._actions if a.option_strings]
    return out


def test_one_vocabulary_in_flags_and_in_the_columns_of_results():
    """README's vocabulary table, checked: no command uses a retired flag name, --scale is one scale and
    --scales several, and no table in results/ carries a retired column name."""
    from benchmark.cli import build_parser
    from benchmark.results import LEGACY_COLUMNS
    options = _all_options(build_parser())
    flags = {f for _, fs in options for f in fs}
    assert not flags & {"--dataset", "--variant", "--eval-datasets", "--out-root", "--name", "--config"}
    multi = {cmd for cmd, fs in options if "--scales" in fs}
    assert multi >= {("evaluate",), ("complexity",), ("latency",)}
    assert not multi & {cmd for cmd, fs in options if "--scale" in fs}       # never both in one command
    results = Path(__file__).resolve().parents[1] / "results"
    for csv in results.glob("*.csv"):                     # records under results/gpu/ keep their names
        retired = set(pd.read_csv(csv, nrows=0).columns) & set(LEGACY_COLUMNS)
        assert not retired, (csv.name, retired)
    stems = {p.stem for p in results.glob("*.csv")}
    for fig in ("awms_weights", "branch_pruning", "branch_pruning_finetune", "learning_curves"):
        assert fig in stems and (results / f"fig_{fig}.png").is_file(), fig


def test_learning_plateau_finds_the_peak_and_the_last_segments_gain():
    curves = pd.DataFrame({
        "checkpoint": "awsrn-s-x4", "model": "awsrn-s", "segment": [1, 1, 2, 2, 2],
        "total_iter": [100, 200, 300, 400, 500], "gpu_minutes": [0.1, 0.2, 0.3, 0.4, 0.5],
        "val_psnr": [20.0, 21.0, 22.0, 21.5, 21.2], "psnr_Set5": [25.0, 26.0, 27.5, 27.0, 26.9],
        "loss": [0.05, 0.04, 0.035, 0.034, 0.0315]})
    paper = pd.DataFrame([{"model": "awsrn-s", "scale": 4, "dataset": "Set5", "paper_psnr": 31.77}])
    r = report.learning_plateau(curves, paper).iloc[0]
    assert (r.scale, r.total_iter, r.psnr_Set5, r.psnr_Set5_peak, r.total_iter_at_psnr_Set5_peak) == (4, 500, 26.9, 27.5, 300)
    assert (r.val_psnr, r.val_psnr_peak, r.total_iter_at_val_psnr_peak) == (21.2, 22.0, 300)
    assert r.last_segment_iters == 300 and r.d_psnr_Set5_last_segment == pytest.approx(0.9)
    assert r.paper_psnr == 31.77
    assert (r.loss_at_val_psnr_peak, r.loss) == (0.035, 0.0315) and r.d_loss_pct_after_val_peak == pytest.approx(-10.0)
    # a last segment that did not watch Set5: its end is unknown, not the earlier segment's number
    r = report.learning_plateau(curves.assign(psnr_Set5=[25.0, 26.0, None, None, None]), paper).iloc[0]
    assert np.isnan(r.psnr_Set5) and np.isnan(r.d_psnr_Set5_last_segment) and r.psnr_Set5_peak == 26.0
    assert r.val_psnr == 21.2 and r.last_segment_iters == 300


def test_learning_curves_carry_the_training_loss_of_each_validation_interval(tmp_path):
    """A validation row's loss is the mean of the logged losses since the previous validation (per segment)."""
    import json
    ck = tmp_path / "awsrn-s-x4"
    ck.mkdir()
    (ck / "recipe.json").write_text(json.dumps({"segments": [
        {"segment": 1, "model": "awsrn-s", "gpu_s": 10.0, "wall_s": 10.0},
        {"segment": 2, "model": "awsrn-s", "gpu_s": 5.0, "wall_s": 10.0}]}))
    pd.DataFrame({"iter": [1, 2, 3, 4, 1, 2], "segment": [1, 1, 1, 1, 2, 2], "total_iter": [1, 2, 3, 4, 5, 6],
                  "loss": [0.4, 0.2, 0.3, 0.1, 0.06, 0.02], "wall_s": [1, 2, 3, 4, 2, 4],
                  "val_psnr": [None, 20.0, None, 21.0, None, 22.0]}).to_csv(ck / "train_log.csv", index=False)
    curves = report.learning_curves({"awsrn-s-x4": ck / "model.safetensors"})
    assert curves.total_iter.tolist() == [2, 4, 6]
    assert curves.loss.tolist() == pytest.approx([0.3, 0.2, 0.04])
    assert curves.gpu_minutes.tolist() == pytest.approx([2 / 60, 4 / 60, (10 + 4 * 0.5) / 60])


def test_cli_pruning_finetune_writes_the_curves_and_their_figure(tmp_path, capsys):
    import skimage.data
    from PIL import Image
    from benchmark.cli import main
    from benchmark.train import TrainConfig, train

    data = tmp_path / "train"
    data.mkdir()
    for i in range(4):
        Image.fromarray(skimage.data.astronaut()[i * 60:i * 60 + 96, :96]).save(data / f"t{i}.png")
    ck = tmp_path / "awsrn-s-x2"
    train(TrainConfig(scale=2, data=(str(data),), out=str(ck), iters=2, batch=2, patch=12, val_images=1,
                      overrides={"n_feats": 8, "block_feats": 16, "n_awru": 2}), progress=False)
    out = tmp_path / "res"
    argv = ["ablate", "branch-pruning", str(ck / "model.safetensors"), "--finetune-iters", "4", "--subsets", "579",
            "--data", str(data), "--datasets", "skimage", "--runs-dir", str(tmp_path / "runs"), "--out", str(out),
            "--batch", "2", "--patch", "12", "--val-images", "1", "--format", "csv"]
    assert main(argv) == 0
    curves = pd.read_csv(out / "curves" / "branch_pruning_finetune.csv", dtype={"kernels": str})
    # 10 curve points asked for, 4 iterations: one validation per iteration, for 579 and its control 3579
    assert sorted(set(curves.kernels)) == ["3579", "579"] and set(curves.checkpoint) == {"awsrn-s-x2"}
    assert list(curves[curves.kernels == "579"].iter) == [1, 2, 3, 4]
    assert (out / "fig_branch_pruning_finetune_curves.png").is_file()
    table = pd.read_csv(out / "branch_pruning_finetune.csv", dtype={"kernels": str})
    assert table.set_index(["kernels", "retrain"]).loc[("579", "finetune-4"), "points_separated"] in (0, 1, 2, 3, 4)
    # every row and curve names the version of the checkpoint it was made from; once the checkpoint is
    # retrained, its rows are stale and reproduce leaves them out
    from ablations.branch_pruning import split_current
    from benchmark.checkpoints import file_sha256
    sha = file_sha256(ck / "model.safetensors")
    assert set(table.weights_sha256) == set(curves.weights_sha256) == {sha}
    current, stale = split_current(table, {"awsrn-s-x2": ck / "model.safetensors"})
    assert len(current) == len(table) and stale == []
    older = pd.concat([table, table.assign(checkpoint="awsrn-s-x4", weights_sha256="0" * 64),
                       table.drop(columns="weights_sha256").assign(checkpoint="awsrn-sd-x4")])
    current, stale = split_current(older, {"awsrn-s-x2": ck / "model.safetensors", "awsrn-s-x4": ck / "model.safetensors"})
    assert set(current.checkpoint) == {"awsrn-s-x2"} and stale == ["awsrn-s-x4", "awsrn-sd-x4"]
    # every graded fine-tune is banked in the results store; in a new checkout (runs/ gone) a run of another
    # subset reads the control back from the bank instead of fine-tuning it again, and joins the table's rows
    import shutil
    assert {f.name.split("__tune-")[1][:9] for f in (out / "store/prune").glob("*.csv")} == {"awms3579-", "awms579-4"}
    shutil.rmtree(tmp_path / "runs")
    capsys.readouterr()
    assert main(argv[:5] + ["--subsets", "35"] + argv[7:]) == 0
    assert "joined 35, 3579 to its rows against the same fine-tuned control" in capsys.readouterr().err
    assert not list((tmp_path / "runs/prune").glob("*/awms3579-*"))       # the control was not fine-tuned again
    joined = pd.read_csv(out / "branch_pruning_finetune.csv", dtype={"kernels": str})
    assert joined.kernels.unique().tolist() == ["35", "579", "3579"]       # in the order of a whole study
    key = ["kernels", "retrain", "dataset"]
    before, after = table.set_index(key).sort_index(), joined.set_index(key).loc[table.set_index(key).index].sort_index()
    pd.testing.assert_series_equal(before.psnr, after.psnr)                # 579 and the control: the same rows
    assert joined.finetune_sha256.notna().sum() == 3 and joined.finetune_sha256.nunique() == 3
    # the bank beside the table: here each banked fine-tune is the table's own (a rerun would differ)
    from ablations.branch_pruning import bank_vs_table
    cmp = bank_vs_table(out, "awsrn-s-x2")
    assert sorted(cmp.kernels) == ["35", "3579", "579"] and cmp.same_weights.all()
    assert (cmp.d_psnr == 0).all() and (cmp.curve_max_abs == 0).all()
    shifted = joined.assign(psnr=joined.psnr + np.where(joined.retrain == "none", 0.0, 0.5),
                            finetune_sha256=joined.finetune_sha256.str.replace("^.", "x", regex=True))
    shifted.to_csv(out / "branch_pruning_finetune.csv", index=False)       # as if the table held another run
    cmp = bank_vs_table(out, "awsrn-s-x2")
    assert not cmp.same_weights.any() and np.allclose(cmp.d_psnr, -0.5)
    joined.to_csv(out / "branch_pruning_finetune.csv", index=False)
    curves2 = pd.read_csv(out / "curves" / "branch_pruning_finetune.csv", dtype={"kernels": str})
    assert curves2.kernels.unique().tolist() == ["35", "579", "3579"]
    pd.testing.assert_frame_equal(curves2[curves2.kernels != "35"].sort_values(["kernels", "iter"]).reset_index(drop=True),
                                  curves.sort_values(["kernels", "iter"]).reset_index(drop=True))
    # a banked fine-tune whose graded rows went missing is named in one line, not graded from nothing
    shutil.rmtree(tmp_path / "runs")
    lost = next((out / "store/eval").glob("*awms-3579-finetune-4*.csv"))
    lost.unlink()
    capsys.readouterr()
    assert main(argv[:5] + ["--subsets", "35"] + argv[7:]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "res/store/eval" in err
    assert "awsrn-s[awms=3579,finetune-4] (weights " in err and "lacks 5 of the 5 images of skimage" in err
    # a malformed subset is refused in one line, naming it
    with pytest.raises(SystemExit) as exit_:
        main(argv[:5] + ["--subsets", "57x"])
    assert exit_.value.code == 2 and "expected subsets of the AWMS kernels 3579 written as digits, e.g. 357,579; got '57x'" in capsys.readouterr().err


def test_each_study_table_states_the_command_that_made_it():
    from benchmark.reproduce import study_command
    d = pd.DataFrame({"study": ["bam"], "iters": [2500], "seeds": ["1,2"],
                      "recipe": ["cpu, batch 16, patch 48, amp bf16, channels_last"]})
    assert study_command(d) == 'ITERS=2500 SEEDS=1,2 RECIPE="--amp bf16 --channels-last" scripts/run_studies.sh bam'
    d = d.assign(study="data", iters=16000, seeds="1", recipe="cuda, batch 32, patch 48, amp none")
    assert study_command(d) == 'ITERS=16000 SEEDS=1 DEVICE=cuda RECIPE="--batch 32" scripts/run_studies.sh data'
    # a fine-tune study: its learning rate is a flag, its starting checkpoint part of the study's declaration
    d = d.assign(study="data_ft", iters=8000, recipe="cpu, batch 16, patch 48, amp bf16, channels_last, lr 0.0002, "
                                                     "from checkpoints/awsrn-s-x4 at 54300 iterations")
    assert study_command(d) == ('ITERS=8000 SEEDS=1 RECIPE="--amp bf16 --lr 0.0002 --channels-last" '
                                'scripts/run_studies.sh data_ft')
    # a table made before the recipe column existed: the CPU defaults
    assert study_command(d.drop(columns="recipe").assign(study="unit", iters=500)) == \
        "ITERS=500 SEEDS=1 scripts/run_studies.sh unit"


def test_a_single_seed_study_says_its_intervals_are_over_images_only(tmp_path):
    from benchmark.reproduce import _findings
    table = pd.read_csv(Path(__file__).parents[1] / "results" / "study_bam.csv")
    table.assign(seeds="1,2,3").to_csv(tmp_path / "study_bam.csv", index=False)
    table.assign(study="lrfu", seeds=1).to_csv(tmp_path / "study_lrfu.csv", index=False)
    lines = _findings(tmp_path).splitlines()
    iters = table.iters.iloc[0]
    assert any(line.startswith(f"- study_bam ({iters} iterations, seeds 1,2,3) against awsrn-s:") for line in lines)
    assert any(line.startswith(f"- study_lrfu ({iters} iterations, seed 1 only: intervals over images, not seeds) "
                               "against awsrn-s:") for line in lines)


def test_a_branch_removal_that_gains_significantly_is_not_called_a_cost():
    from benchmark.reproduce import _branch_removal_finding
    g = pd.DataFrame({"removed": [9, 7, 5, 3], "lambda": [0.04, 0.09, 0.20, 0.33],
                      "d_psnr": [0.0010, -0.0005, -0.30, -2.5], "ci_low": [0.0003, -0.0010, -0.40, -3.0],
                      "ci_high": [0.0019, 0.0005, -0.20, -2.0], "p": [0.049, 0.50, 0.001, 0.0001]})
    line = _branch_removal_finding(("awsrn-m-x4", "Set14", "finetune-2000"), g)
    assert line == ("- Branch removal, awsrn-m-x4 Set14, retrain finetune-2000: removals that cost significantly: 5, 3; "
                    "removals that gain significantly: 9; lambda order is not established at 95% (the removals' "
                    "intervals in lambda order overlap).")
    # no gain: the clause is left out; intervals in lambda order apart: the order is established
    g = g.assign(ci_low=[-0.001, -0.1, -0.5, -3.0], ci_high=[0.001, -0.01, -0.2, -2.0], p=[0.5, 0.01, 0.001, 0.0001])
    assert _branch_removal_finding(("awsrn-s-x4", "Set5", "none"), g) == (
        "- Branch removal, awsrn-s-x4 Set5, retrain none: removals that cost significantly: 7, 5, 3; lambda order is "
        "established at 95% (the removals' intervals in lambda order do not overlap).")


def test_the_paper_gap_finding_names_the_gaps_within_retraining_noise_and_the_misprint():
    from benchmark.reproduce import _paper_gap_finding
    d = pd.DataFrame({"model": ["awsrn-s", "awsrn-sd", "awsrn-m"], "scale": [4, 3, 2],
                      "dataset": ["B100", "Set14", "Set5"], "d_psnr": [-0.07, -2.37, -0.3],
                      "psnr_ci_low": [27.0, 29.0, 37.0], "psnr_ci_high": [28.0, 31.0, 38.0],
                      "note": [np.nan, "printed 32.21 in the paper", np.nan]})
    text = _paper_gap_finding(d)
    assert "2 of the 3 gaps here are larger than that (-2.37 to -0.30 dB; the largest, awsrn-sd x3 on Set14, " \
           "is against a published value with a note: printed 32.21 in the paper)" in text
    assert text.endswith("; within it: awsrn-s x4 B100 -0.070 dB.")
    assert "median width is 1.00 dB on B100, 2.00 dB on Set14, 1.00 dB on Set5" in text


def test_the_pruning_section_states_each_checkpoints_own_finetune_budget():
    """The fine-tuned arm may run at another budget per checkpoint (CPU 60 iterations, a longer CPU or GPU run):
    the index says each one's, from its rows, not one number for all."""
    from benchmark.reproduce import _finetune_budgets
    d = pd.DataFrame({"checkpoint": ["awsrn-s-x2", "awsrn-s-x2", "awsrn-s-x4", "awsrn-s-x4", "awsrn-sd-x4"],
                      "retrain": ["none", "finetune-60", "finetune-1000", "none", "finetune-60"],
                      "recipe": ["", "cpu, batch 16, patch 48, amp none", "cpu, batch 16, patch 32, amp bf16", "",
                                 np.nan]})
    assert _finetune_budgets(d) == (
        "Budget and recipe per checkpoint: awsrn-s-x2 60 iterations (cpu, batch 16, patch 48, amp none, lr 1e-4, "
        "cosine); awsrn-s-x4 1000 iterations (cpu, batch 16, patch 32, amp bf16, lr 1e-4, cosine); awsrn-sd-x4 60 "
        "iterations (recipe not recorded, lr 1e-4, cosine).\n")
    assert _finetune_budgets(None) == "" and _finetune_budgets(d[d.retrain == "none"]) == ""
