import pytest
import torch

from benchmark import AWSRNConfig, create_model
from benchmark.complexity import count_params
from benchmark.models import AWSRN

# The official code's parameter counts (paper_notes.md 6.4; the list).
PARAMS = {
    "awsrn-s": {2: 397_482, 3: 476_757, 4: 587_742, 8: 1_348_782},
    "awsrn-sd": {2: 348_098, 3: 388_013, 4: 443_894, 8: 827_078},
    "awsrn-m": {2: 1_063_742, 3: 1_143_017, 4: 1_254_002, 8: 2_015_042},
    "awsrn-l": {2: 1_396_872, 3: 1_476_147, 4: 1_587_132, 8: 2_348_172},
}


@pytest.mark.parametrize("name,scale", [(n, s) for n in PARAMS for s in PARAMS[n]])
def test_param_counts_match_official(name, scale):
    assert count_params(create_model(name, scale=scale)) == PARAMS[name][scale]


@pytest.mark.parametrize("name", ["awsrn-s", "awsrn-m", "awsrn-l"])
def test_bam_adds_309_params(name):
    for s in (2, 3, 4, 8):
        assert count_params(create_model(f"{name}-bam", scale=s)) == PARAMS[name][s] + 309


def test_sd_bam_follows_n_feats():
    # 16 channels, reduction 8: fc1 16*2 + PReLU 2 + fc2 2*16 + 7x7 conv 49 = 115
    m = create_model("awsrn-sd-bam", scale=2)
    assert m.attention.ca.fc1.weight.shape == (2, 16, 1, 1)
    assert count_params(m) == PARAMS["awsrn-sd"][2] + 115


def test_pruned_awms_drops_exactly_the_branches():
    # branch costs from paper_notes.md 2.1 (n_feats 32, x2): 3x3 3,481; 5x5 9,625; 7x7 18,841; 9x9 31,129
    full = PARAMS["awsrn-s"][2]
    assert count_params(create_model("awsrn-s-awms35", scale=2)) == full - 18_841 - 31_129
    assert count_params(create_model("awsrn-s-awms9", scale=2)) == full - 3_481 - 9_625 - 18_841
    m = create_model("awsrn-s-awms57", scale=4)
    assert m.tail.kernels == (5, 7) and not hasattr(m.tail, "tail_k3")


@pytest.mark.parametrize("name", ["awsrn-s", "awsrn-sd", "awsrn-m-bam", "awsrn-l-awms3"])
@pytest.mark.parametrize("scale", [2, 3, 4, 8])
def test_forward_shape_and_dtype(name, scale):
    m = create_model(name, scale=scale).eval()
    with torch.no_grad():
        y = m(torch.rand(2, 3, 7, 9))
    assert y.shape == (2, 3, 7 * scale, 9 * scale) and y.dtype == torch.float32


def test_input_convention_is_consistent():
    """The [0,1] forward equals the official [0,255] computation divided by 255."""
    torch.manual_seed(0)
    m = create_model("awsrn-s", scale=2).eval()
    x = torch.rand(1, 3, 8, 8)
    mean = torch.tensor([0.4488, 0.4371, 0.4040]).view(1, 3, 1, 1)
    with torch.no_grad():
        xn = (x * 255 - mean * 255) / 127.5
        ref = (m.tail(m.features(xn)) + m.skip(xn)) * 127.5 + mean * 255
        assert torch.allclose(m(x) * 255, ref, atol=1e-4)


def test_config_validation_messages():
    with pytest.raises(ValueError, match="scale must be one of"):
        AWSRNConfig(scale=5)
    with pytest.raises(ValueError, match="non-empty subset"):
        AWSRNConfig(awms_kernels=())
    with pytest.raises(ValueError, match="non-empty subset"):
        AWSRNConfig(awms_kernels=(3, 11))
    assert AWSRNConfig(awms_kernels=(7, 3)).awms_kernels == (3, 7)


def test_config_dict_round_trip():
    cfg = AWSRNConfig(scale=3, n_lfb=2, awms_kernels=(5, 9), bam=True, mean_shift=False, input_range=1.0)
    assert AWSRNConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown AWSRNConfig keys"):
        AWSRNConfig.from_dict({**cfg.to_dict(), "n_blocks": 3})


def test_forward_is_device_agnostic_on_meta():
    m = AWSRN(AWSRNConfig(scale=2, n_lfb=1)).to("meta")
    assert m(torch.rand(1, 3, 4, 4, device="meta")).device.type == "meta"


def test_ablation_units_and_lrfu():
    base = count_params(create_model("awsrn-s", scale=2))
    # RU drops the 2 scalars of each of the 4 units; no LRFU drops the 3x3 fusion conv (128->32: 36,864+32+32)
    assert count_params(create_model("awsrn-s-ru", scale=2)) == base - 8
    assert count_params(create_model("awsrn-s-nolrfu", scale=2)) == base - 36_928
    wru = create_model("awsrn-s-wru", scale=2)
    # wSE per unit: 1x1 32->8 (256+8) and 8->2 (16+2), replacing the 2 scalars
    assert count_params(wru) == base - 8 + 4 * (264 + 18)
    x = torch.rand(2, 3, 8, 8)
    for name in ("awsrn-s-ru", "awsrn-s-wru", "awsrn-s-nolrfu"):
        m = create_model(name, scale=2).eval()
        assert m(x).shape == (2, 3, 16, 16)
        from benchmark.deploy import reparameterize
        with pytest.raises(ValueError, match="deploy form covers AWRU"):
            reparameterize(m)
    with pytest.raises(ValueError, match="unit must be one of"):
        AWSRNConfig(unit="dense")


def test_awms_names_its_branches_for_everyone_else():
    """The state-dict names of the AWMS branches come from AWMS itself (no module rebuilds the strings)."""
    from benchmark.checkpoints import without_branches
    from benchmark.models import AWMS
    m = create_model("awsrn-s", scale=2, awms_kernels=(3, 7))
    sd = m.state_dict()
    assert AWMS.kernels_in(sd) == (3, 7)
    conv, lam = AWMS.branch_keys(7)
    assert {k for k in sd if k.startswith((conv, lam))} == {
        "tail.tail_k7.weight_g", "tail.tail_k7.weight_v", "tail.tail_k7.bias", "tail.scale_k7.scale"}
    assert m.tail.lambdas() == {3: 0.25, 7: 0.25}
    assert AWMS.kernels_in(without_branches(sd, [7])) == (3,)
    assert len(without_branches(sd, [7])) == len(sd) - 4
