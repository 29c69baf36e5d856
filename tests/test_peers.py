"""IMDN and CARN-M: architectures written here, official weights loaded strictly, published numbers."""
import os
from pathlib import Path

import pytest
import torch

from benchmark import create_model
from benchmark.checkpoints import CheckpointError, convert, model_from_checkpoint, read_checkpoint
from benchmark.complexity import complexity_table, count_params
from benchmark.evaluate import evaluate


@pytest.fixture(scope="module")
def peers() -> Path:
    root = Path(os.environ.get("AWSRN_PEERS") or Path(__file__).resolve().parents[2] / "shared" / "peers")
    if not (root / "imdn").is_dir() or not (root / "carn").is_dir():
        pytest.skip(f"{root}: no official peer weights (../shared/peers)")
    return root


@pytest.mark.parametrize("name,scale,params", [("imdn", 2, 694404), ("imdn", 3, 703059), ("imdn", 4, 715176),
                                               ("carn-m", 2, 414811), ("carn-m", 4, 414811)])
def test_parameter_counts(name, scale, params):
    assert count_params(create_model(name, scale=scale)) == params


def test_multi_adds_match_the_published_tables():
    df = complexity_table("imdn", scales=(2, 3, 4, 8))
    assert list(df.scale) == [2, 3, 4]                       # a peer runs at its own scales only
    assert list(df.multi_adds_g_diff) == [0.0, -0.1, 0.0]     # x3: IMDN counted a 427x240 LR input
    assert list(df.params_k_diff) == [0, 0, 0]
    carn = complexity_table("carn-m", scales=(2, 3, 4))
    assert list(carn.multi_adds_g_diff) == [0.0, 0.0, 0.0] and list(carn.paper_params_k) == [412] * 3


def test_official_weights_load_strictly_and_are_recognised(peers):
    ck = read_checkpoint(peers / "imdn/IMDN_x3.pth")
    assert ck.source_format == "imdn" and ck.config.scale == 3 and not any(k.startswith("module.") for k in ck.state_dict)
    carn = read_checkpoint(peers / "carn/carn_m.pth")
    assert carn.source_format == "carn-m" and carn.config.scale is None
    m = create_model("carn-m", scale=3, weights=peers / "carn/carn_m.pth")
    assert torch.equal(m.state_dict()["upsample.up3.body.0.weight"], carn.state_dict["upsample.up3.body.0.weight"])


def test_wrong_peer_weights_name_the_difference(peers):
    with pytest.raises(CheckpointError, match="scale: checkpoint 2 vs model 4"):
        create_model("imdn", scale=4, weights=peers / "imdn/IMDN_x2.pth")
    with pytest.raises(CheckpointError, match="architecture: checkpoint imdn vs model carn-m"):
        create_model("carn-m", scale=2, weights=peers / "imdn/IMDN_x2.pth")
    with pytest.raises(CheckpointError, match="architecture: checkpoint carn-m vs model awsrn"):
        create_model("awsrn-s", scale=2, weights=peers / "carn/carn_m.pth")
    with pytest.raises(CheckpointError, match="multi-scale carn-m checkpoint"):
        model_from_checkpoint(peers / "carn/carn_m.pth")


def test_convert_keeps_the_function_and_the_multi_scale_model(peers, tmp_path):
    x = torch.rand(1, 3, 20, 24)
    for src, name, scales in ((peers / "carn/carn_m.pth", "carn-m", (2, 3, 4)), (peers / "imdn/IMDN_x3.pth", "imdn", (3,))):
        dst = tmp_path / f"{name}.safetensors"
        assert convert(src, dst).source_format == "native"
        for s in scales:
            a = create_model(name, scale=s, weights=src).eval()
            b = create_model(name, scale=s, weights=dst).eval()
            with torch.no_grad():
                assert torch.equal(a(x), b(x))


@pytest.mark.slow
def test_imdn_reproduces_its_paper(peers, data_root):
    """Set5 x4 under the matlab protocol, and Set14 x4 under basicsr (IMDN's own gray-image rule)."""
    s5 = evaluate("imdn", ["Set5"], [4], weights=peers / "imdn/IMDN_x4.pth", data_root=data_root,
                  progress=False).summary
    assert s5.psnr.iloc[0] == pytest.approx(32.21, abs=0.005) and s5.ssim.iloc[0] == pytest.approx(0.8948, abs=0.0005)
    s14 = {p: evaluate("imdn", ["Set14"], [4], p, weights=peers / "imdn/IMDN_x4.pth", data_root=data_root,
                       progress=False).summary.psnr.iloc[0] for p in ("matlab", "basicsr")}
    assert s14["basicsr"] == pytest.approx(28.58, abs=0.005)
    assert 0.05 < s14["basicsr"] - s14["matlab"] < 0.15        # one gray image (bridge) of 14


def test_carn_m_is_within_the_known_distance_of_its_paper(peers, data_root):
    s5 = evaluate("carn-m", ["Set5"], [4], weights=peers / "carn/carn_m.pth", data_root=data_root,
                  progress=False).summary
    assert abs(s5.psnr.iloc[0] - 31.92) < 0.15


def test_peers_are_never_tiled():
    """IMDN's contrast-aware attention pools over the whole image, so a tiled forward would not be the
    model's function: large inputs run whole."""
    from benchmark.inference import Runner, receptive_radius
    m = create_model("imdn", scale=2).eval()
    assert receptive_radius(m) is None and receptive_radius(create_model("carn-m", scale=2)) is None
    x = torch.rand(1, 3, 40, 40)
    y, _ = Runner(m, max_pixels=100)(x)
    with torch.no_grad():
        assert torch.equal(y, m(x))
