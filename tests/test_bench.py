"""awsrn-bench bench: the suite's own speed tables (values are measured, so the tests check their
structure and the arithmetic that ties the columns together)."""
import io

import pandas as pd
import pytest
import skimage
from PIL import Image

from benchmark.cli import main


def test_eval_overhead_rows_for_a_cold_and_a_warm_cache(tmp_path, capsys):
    out = tmp_path / "eo.csv"
    assert main(["bench", "eval-overhead", "--datasets", "skimage", "--threads", "1", "--out", str(out),
                 "--format", "csv"]) == 0
    df = pd.read_csv(out)
    assert list(df.lr_cache) == ["cold", "warm"] and set(df.n_images) == {5}
    assert (df.wall_over_forward == df.wall_s / df.forward_s).all()
    assert (df.wall_s >= df.forward_s).all() and df.device.str.startswith("cpu").all() and set(df.threads) == {1}
    printed = pd.read_csv(io.StringIO(capsys.readouterr().out))
    assert list(printed.columns) == ["lr_cache", "n_images", "wall_s", "forward_s", "wall_over_forward", "device",
                                     "threads"]


def test_train_throughput_on_the_cpu_compares_eager_and_fast(tmp_path, capsys):
    d = tmp_path / "train"
    d.mkdir()
    for i in range(3):
        Image.fromarray(skimage.data.astronaut()[i * 80:i * 80 + 120, :120]).save(d / f"t{i}.png")
    out = tmp_path / "tp.csv"
    assert main(["bench", "train-throughput", "--data", str(d), "--scale", "2", "--eager-iters", "2",
                 "--fast-iters", "2", "--set", "n_feats=8", "--set", "block_feats=16", "--set", "n_awru=1",
                 "--out", str(out)]) == 0
    df = pd.read_csv(out)
    assert list(df.config) == ["eager", "fast, no graph"]          # no CUDA graph on the CPU
    assert df.speedup_it_vs_eager.iloc[0] == 1.0
    assert df.patches_per_s.tolist() == pytest.approx((df.it_per_s * df.batch).tolist())
    assert "graph_equals_eager" not in df
