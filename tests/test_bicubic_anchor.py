"""The bicubic baseline under the matlab protocol reproduces the literature row (paper_notes.md section 4)."""
import pytest

from benchmark.evaluate import evaluate

LITERATURE = {  # (dataset, scale): (psnr, ssim)
    ("Set5", 2): (33.66, 0.9299), ("Set14", 2): (30.24, 0.8688), ("B100", 2): (29.56, 0.8431),
    ("Urban100", 2): (26.88, 0.8403),
    ("Set5", 3): (30.39, 0.8682), ("Set14", 3): (27.55, 0.7742), ("B100", 3): (27.21, 0.7385),
    ("Urban100", 3): (24.46, 0.7349),
    ("Set5", 4): (28.42, 0.8104), ("Set14", 4): (26.00, 0.7027), ("B100", 4): (25.96, 0.6675),
    ("Urban100", 4): (23.14, 0.6577),
}


@pytest.fixture(scope="module")
def bicubic_summary(data_root, tmp_path_factory):
    res = evaluate("bicubic", ["Set5", "Set14", "B100", "Urban100"], [2, 3, 4], data_root=data_root,
                   cache_dir=tmp_path_factory.mktemp("cache"), progress=False)
    assert not res.skipped
    return res.summary.set_index(["dataset", "scale"])


@pytest.mark.slow
@pytest.mark.parametrize("key", sorted(LITERATURE))
def test_bicubic_matches_literature(bicubic_summary, key):
    psnr, ssim = LITERATURE[key]
    row = bicubic_summary.loc[key]
    assert abs(row.psnr - psnr) <= 0.03, (key, row.psnr, psnr)
    assert abs(row.ssim - ssim) <= 0.001, (key, row.ssim, ssim)
