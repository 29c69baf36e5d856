"""awsrn-bench bench: the suite's own speed tables (values are measured, so the tests check their
structure and the arithmetic that ties the columns together)."""
import io

import pandas as pd
import pytest
import skimage
import torch
from PIL import Image

from benchmark.cli import main


@pytest.mark.slow
def test_eval_overhead_rows_for_a_cold_and_a_warm_cache(tmp_path, capsys):
    # x4: a quarter of x2's forward work, the same stages
    assert main(["bench", "eval-overhead", "--datasets", "skimage", "--threads", "1", "--scale", "4",
                 "--out", str(tmp_path), "--format", "csv"]) == 0
    df = pd.read_csv(tmp_path / "eval_overhead_cpu.csv")
    assert list(df.lr_cache) == ["cold", "warm"] and set(df.n_images) == {5} and set(df.scale) == {4}
    assert (df.wall_over_forward == df.wall_s / df.forward_s).all()
    assert (df.wall_s >= df.forward_s).all() and df.device.str.startswith("cpu").all() and set(df.threads) == {1}
    printed = pd.read_csv(io.StringIO(capsys.readouterr().out))
    assert list(printed.columns) == ["lr_cache", "n_images", "wall_s", "forward_s", "wall_over_forward", "device",
                                     "threads"]


def test_train_throughput_on_the_cpu_compares_eager_and_fast(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True)
    d = tmp_path / "train"
    d.mkdir()
    for i in range(3):
        Image.fromarray(skimage.data.astronaut()[i * 80:i * 80 + 120, :120]).save(d / f"t{i}.png")
    assert main(["bench", "train-throughput", "--data", str(d), "--scale", "2", "--eager-iters", "2",
                 "--fast-iters", "2", "--batch", "3", "--patch", "20", "--set", "n_feats=8", "--set", "block_feats=16", "--set", "n_awru=1",
                 "--out", str(tmp_path), "--device", "cpu"]) == 0
    df = pd.read_csv(tmp_path / "train_throughput_cpu.csv")
    # no CUDA graph on the CPU; bf16 autocast instead
    assert list(df.step) == ["eager", "fast, no graph", "fast, no graph, bf16", "fast, no graph, bf16, channels_last",
                             "fast, no graph, bf16, channels_last, ema 0.999", "fast, no graph, AWMS one conv",
                             "fast, no graph, bf16, channels_last, AWMS one conv"]
    assert df.amp.tolist() == ["none", "none", "bf16", "bf16", "bf16", "none", "bf16"] and df.error.isna().all()
    assert df.awms_one_conv.tolist() == [False] * 5 + [True] * 2
    assert df.speedup_it_vs_eager.iloc[0] == 1.0
    assert set(df.batch) == {3} and set(df.patch) == {20}        # the step size asked for, in every row
    assert df.patches_per_s.tolist() == pytest.approx((df.it_per_s * df.batch).tolist())
    assert "graph_equals_eager" not in df
    # the CPU rows say whether bf16 was native (patched to yes, above), since 'AMD EPYC' alone does not
    assert set(df.cpu_isa) == {torch.backends.cpu.get_cpu_capability() + ", native bf16"}


@pytest.mark.slow
def test_bench_gpu_dry_run_on_the_cpu_writes_its_three_tables(tmp_path, capsys):
    """The GPU check is one subcommand; on the CPU with tiny settings it is the dry run of the same code:
    three tables named for the device, the latency table with one row per model, scale and form."""
    from benchmark.bench import LATENCY_FORMS
    d = tmp_path / "train"
    d.mkdir()
    for i in range(2):           # x4 patches of 16 px need 64 px of HR
        Image.fromarray(skimage.data.astronaut()[i * 100:i * 100 + 100, :100]).save(d / f"t{i}.png")
    assert main(["bench", "gpu", "awsrn-s", "--device", "cpu", "--data", str(d), "--datasets", "skimage",
                 "--scales", "2", "--eval-scale", "4", "--lr-size", "12x10", "--repeats", "1", "--eager-iters", "2",
                 "--fast-iters", "2", "--batch", "2", "--patch", "16",
                 "--set", "n_feats=8", "--set", "block_feats=16", "--set", "n_awru=1", "--out", str(tmp_path),
                 "--format", "csv"]) == 0
    printed = pd.read_csv(io.StringIO(capsys.readouterr().out))
    assert list(printed.table) == ["train_throughput", "eval_overhead", "latency"]
    assert [p.rsplit("/", 1)[1] for p in printed.path] == [f"{t}_cpu.csv" for t in printed.table]
    lat = pd.read_csv(tmp_path / "latency_cpu.csv")
    cpu_forms = [f for f in LATENCY_FORMS if not f[3]]                  # no CUDA graph on the CPU
    assert len(lat) == len(cpu_forms) and set(lat.model) == {"awsrn-s"} and set(lat.lr_h) == {12}
    assert list(zip(lat.deploy, lat.precision, lat.channels_last, lat.graph)) == cpu_forms
    assert (lat.latency_ms > 0).all()
    overhead = pd.read_csv(tmp_path / "eval_overhead_cpu.csv")
    assert set(overhead.n_images) == {5} and set(overhead.scale) == {4}
    step = pd.read_csv(tmp_path / "train_throughput_cpu.csv")
    assert set(step.batch) == {2} and set(step.patch) == {16} and step.error.isna().all()


def test_bench_gpu_runs_only_the_stages_asked_for(tmp_path, capsys):
    """``--stages latency`` measures the latency forms alone (the training step was measured elsewhere);
    an unknown stage is refused with the ones it could be."""
    assert main(["bench", "gpu", "awsrn-s", "--device", "cpu", "--data", str(tmp_path), "--stages", "latency",
                 "--scales", "2", "--lr-size", "8x8", "--repeats", "1", "--out", str(tmp_path), "--format", "csv"]) == 0
    printed = pd.read_csv(io.StringIO(capsys.readouterr().out))
    assert list(printed.table) == ["latency"]
    assert sorted(p.name for p in tmp_path.glob("*.csv")) == ["latency_cpu.csv"]
    with pytest.raises(SystemExit) as e:
        main(["bench", "gpu", "--device", "cpu", "--data", "x", "--stages", "latency,speed"])
    assert e.value.code == 2
    assert "expected some of train_throughput,eval_overhead,latency, got 'latency,speed'" in capsys.readouterr().err


def test_each_throughput_row_gets_the_graph_check_of_its_awms_form():
    """On CUDA the graph-vs-eager check runs for the branch form and for the one-conv AWMS; a row carries its own
    (scripts/gpu_train.sh trains with the one conv only where that row's check is equal)."""
    from benchmark.bench import _throughput_table
    rows = [dict(step="eager", it_per_s=1.0, patches_per_s=16.0, awms_one_conv=False),
            dict(step="fast, AWMS one conv", it_per_s=3.0, patches_per_s=48.0, awms_one_conv=True)]
    check = {False: dict(equal=True, max_param_diff=0.0, max_ema_diff=0.0),
             True: dict(equal=False, max_param_diff=0.5, max_ema_diff=0.25)}
    df = _throughput_table(rows, check)
    assert df.graph_equals_eager.tolist() == [True, False]
    assert df.graph_max_param_diff.tolist() == [0.0, 0.5] and df.graph_max_ema_diff.tolist() == [0.0, 0.25]
    assert df.speedup_it_vs_eager.tolist() == [1.0, 3.0]
