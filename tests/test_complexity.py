import subprocess
import sys

import pandas as pd
import pytest

from benchmark import create_model
from benchmark.complexity import breakdown, complexity_table, count_params, model_complexity

# The paper's 13 (variant, scale) Multi-Adds cells, in G, for a 1280x720 HR output.
PAPER_MULTI_ADDS = {
    ("awsrn-s", 2): 91.2, ("awsrn-s", 3): 48.6, ("awsrn-s", 4): 33.7,
    ("awsrn-sd", 2): 79.6, ("awsrn-sd", 3): 39.5, ("awsrn-sd", 4): 25.4,
    ("awsrn-m", 2): 244.1, ("awsrn-m", 3): 116.6, ("awsrn-m", 4): 72.0,
    ("awsrn-l", 2): 320.5, ("awsrn-l", 3): 150.6, ("awsrn-l", 4): 91.1, ("awsrn-l", 8): 33.7,
}


@pytest.fixture(scope="module")
def table():
    return complexity_table()


@pytest.mark.parametrize("key", sorted(PAPER_MULTI_ADDS))
def test_multi_adds_match_paper(table, key):
    row = table[(table.model == key[0]) & (table.scale == key[1])].iloc[0]
    assert round(row.multi_adds_g, 1) == PAPER_MULTI_ADDS[key]
    assert row.multi_adds_g_diff == 0 and row.params_k_diff == 0


def test_exact_macs_s_x2(table):
    # per LR pixel: head 864 + LFB 331,776 + AWMS (9+25+49+81)*32*12 + skip 324 = 395,940 MACs
    row = table[(table.model == "awsrn-s") & (table.scale == 2)].iloc[0]
    assert row.multi_adds_g * 1e9 == pytest.approx(395_940 * 1280 * 720 / 4, rel=1e-12)
    assert row.multi_adds_ntire_g * 1e9 == pytest.approx(395_940 * 256 * 256, rel=1e-12)


def test_breakdown_sums_to_total():
    m = create_model("awsrn-m-bam", scale=3)
    bd = breakdown(m, 3)
    assert list(bd.module) == ["head", "body.0", "body.1", "body.2", "attention",
                               "tail.tail_k3", "tail.tail_k5", "tail.tail_k7", "tail.tail_k9", "skip"]
    assert bd.params.sum() == count_params(m)
    assert bd.multi_adds_g.sum() == pytest.approx(model_complexity(m, 3)["multi_adds_g"], rel=1e-9)
    # AWMS 9x9 branch at x3, n_feats 32: 81*32*27 MACs per LR pixel on 1280*720/9 pixels -> 7.2G
    assert bd.set_index("module").loc["tail.tail_k9", "multi_adds_g"] == pytest.approx(81 * 32 * 27 * 102_400 / 1e9)


def test_cli_complexity_csv_paper_rows_zero_diff():
    # the CLI's table for two variants (every one of the 13 cells is checked on the table above)
    out = subprocess.run([sys.executable, "-m", "benchmark.cli", "complexity", "awsrn-sd", "--scales", "2,4",
                          "--format", "csv"], capture_output=True, text=True, check=True).stdout
    from io import StringIO
    df = pd.read_csv(StringIO(out))
    assert {"model", "scale", "params", "multi_adds_g"} <= set(df.columns)
    assert list(zip(df.model, df.scale, df.params)) == [("awsrn-sd", 2, 348098), ("awsrn-sd", 4, 443894)]
    assert (df.multi_adds_g_diff == 0).all() and (df.params_k_diff == 0).all()


def test_cli_complexity_formats(tmp_path, capsys):
    from benchmark.cli import main
    assert main(["complexity", "awsrn-s", "--scales", "2", "--format", "latex", "--out", str(tmp_path)]) == 0
    assert "\\begin{tabular}" in capsys.readouterr().out
    df = pd.read_csv(tmp_path / "complexity.csv")                       # --out is a folder, as everywhere
    assert list(zip(df.model, df.scale, df.params)) == [("awsrn-s", 2, 397482)]
    assert main(["complexity", "nothing-*"]) == 2


def test_awms_subset_multi_adds_equal_counting_each_pruned_model():
    from benchmark.complexity import awms_subset_multi_adds
    full = create_model("awsrn-sd", scale=3)
    subsets = awms_subset_multi_adds(full, 3)
    assert len(subsets) == 15
    for sub in [(3,), (5, 9), (3, 7, 9), (3, 5, 7, 9)]:
        pruned = create_model("awsrn-sd", scale=3, awms_kernels=sub)
        assert subsets[sub] == pytest.approx(model_complexity(pruned, 3)["multi_adds_g"], rel=1e-12)


def test_conv_costs_are_counted_once_per_structure(monkeypatch):
    """The memo returns the first count for a model of the same structure (other weights) and counts anew when
    the scale or the AWMS kernels change the structure."""
    from benchmark import complexity
    calls = []
    real = complexity._count_conv_costs
    monkeypatch.setattr(complexity, "_count_conv_costs", lambda m: calls.append(1) or real(m))
    monkeypatch.setattr(complexity, "_COSTS", {})
    tiny = dict(n_feats=8, block_feats=16, n_awru=1)
    a = complexity.conv_costs(create_model("awsrn-s", scale=2, **tiny))
    other = create_model("awsrn-s", scale=2, **tiny)                 # other random weights
    assert complexity.conv_costs(other) == a and len(calls) == 1
    x4 = complexity.conv_costs(create_model("awsrn-s", scale=4, **tiny))
    pruned = complexity.conv_costs(create_model("awsrn-s", scale=2, awms_kernels=(3, 5), **tiny))
    assert len(calls) == 3 and x4[""] != a[""] and pruned[""].per_lr_pixel < a[""].per_lr_pixel
