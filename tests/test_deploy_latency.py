from pathlib import Path

import pytest
import torch

from benchmark import create_model
from benchmark.complexity import count_params, model_complexity
from benchmark.deploy import reparameterize
from benchmark.latency import LatencySpec, latency_table, lr_shape, measure, summarize_times
from tests.reference_awsrn import Net, randomize

CASES = [(n, s) for n in ("awsrn-s", "awsrn-sd", "awsrn-m", "awsrn-l") for s in (2, 3, 4, 8)]
CASES += [("awsrn-s-bam", 2), ("awsrn-sd-bam", 3), ("awsrn-l-bam", 4), ("awsrn-m-bam", 8),
          ("awsrn-s-awms3", 2), ("awsrn-sd-awms59", 3), ("awsrn-m-awms357", 4), ("awsrn-l-awms79", 8)]


@pytest.mark.parametrize("name,scale", CASES)
def test_deploy_form_equals_training_form(name, scale):
    """The folding is exact algebra: in float64 the two forms agree to rounding (1e-10). In float32 the
    two forms round differently; both stay within 1e-5 per unit of output magnitude of each other (the
    randomised deep L/M models reach |y| ~ 5, trained models stay near [0, 1]: see the checkpoint test)."""
    m = randomize(create_model(name, scale=scale), seed=scale).eval()
    d = reparameterize(m)
    x = torch.rand(2, 3, 13, 11, generator=torch.Generator().manual_seed(scale))
    with torch.no_grad():
        y = m(x)
        assert (y - d(x)).abs().max().item() < 1e-5 * max(1.0, y.abs().max().item())
        m64 = m.double()
        assert (m64(x.double()) - reparameterize(m64)(x.double())).abs().max().item() < 1e-10
    assert d is not m and any(p.requires_grad for p in m.parameters())   # input untouched


@pytest.mark.parametrize("ckpt", ["awsrn-s-x4", "awsrn-sd-x2"])
def test_deploy_of_trained_checkpoint_within_1e5(ckpt):
    """On trained weights (outputs on the [0, 1] image scale) the float32 forms agree within 1e-5."""
    path = Path(__file__).resolve().parents[1] / "checkpoints" / ckpt / "model.safetensors"
    name, s = ckpt.rsplit("-x", 1)
    m = create_model(name, scale=int(s), weights=path).eval()
    x = torch.rand(1, 3, 40, 40, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert (m(x) - reparameterize(m)(x)).abs().max().item() < 1e-5


def test_each_block_fuses_exactly_and_reparameterize_walks_any_container():
    """fuse() lives on each block: WNConv2d, LFB and AWMS each equal their fused form in float64, and
    reparameterize replaces such blocks inside a module that has no fuse() of its own (timm's walk)."""
    m = randomize(create_model("awsrn-s", scale=3), seed=4).double().eval()
    x = torch.rand(1, 32, 9, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        for block in (m.body[0].b0.body[0], m.body[0], m.tail):
            assert (block(x) - block.fuse()(x)).abs().max().item() < 1e-10
        holder = torch.nn.Sequential(m.body[0], torch.nn.ReLU(), m.tail)
        fused = reparameterize(holder)
        assert type(fused[0]).__name__ == "FusedLFB" and type(fused[2][0]) is torch.nn.Conv2d
        assert (holder(x) - fused(x)).abs().max().item() < 1e-10
        assert type(holder[0]).__name__ == "LFB"                      # the input is not changed
    peer = create_model("carn-m", scale=2)
    assert reparameterize(peer) is peer                              # nothing to fuse: the same module
    with pytest.raises(ValueError, match="unit='ru'"):
        reparameterize(create_model("awsrn-s", scale=2, unit="ru"))


def test_deploy_complexity_is_reported_and_smaller():
    m = create_model("awsrn-s", scale=2)
    d = reparameterize(m)
    full, dep = model_complexity(m, 2), model_complexity(d, 2)
    # AWMS: (9+25+49+81) = 164 taps per channel pair before, 81 after: 83 * 32 * 12 MACs per LR pixel saved
    saved = (full["multi_adds_g"] - dep["multi_adds_g"]) * 1e9 / (1280 * 720 / 4)
    assert saved == pytest.approx(83 * 32 * 12)
    assert count_params(d) < count_params(m)


def test_deploy_of_loaded_official_checkpoint(tmp_path):
    ref = randomize(Net(3, 1, 4, 32), seed=9).eval()
    torch.save(ref.state_dict(), tmp_path / "model_latest.pt")
    d = reparameterize(create_model("awsrn-s", scale=3, weights=tmp_path / "model_latest.pt"))
    x = torch.rand(1, 3, 10, 10)
    with torch.no_grad():
        assert torch.allclose(d(x) * 255, ref(x * 255), atol=2e-3)


def test_latency_presets_and_summary():
    assert lr_shape(LatencySpec(preset="720p"), 3) == (240, 427)
    assert lr_shape(LatencySpec(preset="ntire"), 4) == (256, 256)
    assert lr_shape(LatencySpec(preset="custom", lr_hw=(10, 20)), 2) == (10, 20)
    with pytest.raises(ValueError, match="needs lr_hw"):
        LatencySpec(preset="custom")
    with pytest.raises(ValueError, match="precision"):
        LatencySpec(precision="int8")
    s = summarize_times([5.0, 1.0, 3.0, 2.0, 4.0, 6.0, 7.0, 8.0, 9.0, 10.0])
    assert s["latency_ms"] == 5.5 and s["p90_ms"] == 9.0 and s["min_ms"] == 1.0


def test_measure_records_provenance_and_store(tmp_path):
    spec = LatencySpec(preset="custom", lr_hw=(8, 8), warmup=1, repeats=3, threads=1, deploy=True)
    row, times = measure(create_model("awsrn-s", scale=2), 2, spec)
    assert len(times) == 3 and row["threads"] == 1 and row["deploy"] and row["device"].startswith("cpu")
    df = latency_table("awsrn-sd", (2,), spec, store=str(tmp_path))
    assert list(df.model) == ["awsrn-sd"]
    raw = list((tmp_path / "latency").glob("*.csv"))
    assert len(raw) == 1 and "repeat" in raw[0].read_text().splitlines()[0]


def test_super_image_model_matches_ours_when_installed():
    from benchmark import superimage
    try:
        si = superimage.build(create_model("awsrn-s-bam", scale=2).cfg)
    except superimage.SuperImageUnavailable as exc:
        pytest.skip(str(exc))
    randomize(si, seed=4)
    ours = create_model("awsrn-s-bam", scale=2)
    ours.load_state_dict(_rename(si.state_dict()))
    x = torch.rand(1, 3, 9, 9)
    with torch.no_grad():
        assert torch.allclose(ours.eval()(x), si(x), atol=1e-6)


def _rename(sd):
    from benchmark.checkpoints import checkpoint_filter_fn
    return checkpoint_filter_fn(sd, "super-image")


def test_traffic_counts_each_op_reads_and_writes_and_skips_views():
    """Golden values: a 3x3 conv (8 -> 4 channels) on a 1x8x5x6 input reads the input, weight and bias and
    writes its output; a ReLU reads and writes the output again; a view (flatten) moves nothing."""
    from benchmark.traffic import Traffic, bandwidth_gbs, forward_traffic
    net = torch.nn.Sequential(torch.nn.Conv2d(8, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten())
    t = forward_traffic(net, (1, 8, 5, 6))
    x, y, w = 8 * 5 * 6, 4 * 5 * 6, 4 * 8 * 9 + 4
    assert t == Traffic(activation_elems=x + y + 2 * y, weight_elems=w, n_ops=2)
    assert t.bytes("fp32") == 4 * (x + 3 * y + w) and t.bytes("fp16") == t.bytes("fp32") // 2
    assert t.floor_ms(1.0) == pytest.approx(t.bytes() / 1e9 * 1e3)
    assert bandwidth_gbs("cuda: NVIDIA H200") == 4800 and bandwidth_gbs("cuda: NVIDIA H100 80GB HBM3") == 3350
    assert bandwidth_gbs("cpu: AMD EPYC") is None
    # the deploy form moves fewer bytes than the training form (one AWMS conv, no weight norm)
    m = create_model("awsrn-s", scale=2)
    assert forward_traffic(reparameterize(m), (1, 3, 20, 20)).bytes() < forward_traffic(m, (1, 3, 20, 20)).bytes()


def test_latency_rows_state_the_floor_where_a_bandwidth_is_known():
    m = create_model("awsrn-s", scale=2)
    spec = LatencySpec(preset="custom", lr_hw=(8, 8), repeats=2, warmup=0, deploy=True, bandwidth_gbs=50.0)
    row, _ = measure(m, 2, spec)
    assert row["bandwidth_gbs"] == 50.0 and row["x_floor"] == pytest.approx(row["latency_ms"] / row["floor_ms"])
    row, _ = measure(m, 2, LatencySpec(preset="custom", lr_hw=(8, 8), repeats=1, warmup=0))
    assert row["floor_ms"] != row["floor_ms"] and not row["graph"]          # CPU, no bandwidth given: NaN
    with pytest.raises(ValueError, match="a CUDA graph needs device cuda"):
        LatencySpec(graph=True)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a CUDA device")
def test_graph_mode_equals_the_deploy_form_on_cuda():
    from benchmark.latency import graphed
    d = reparameterize(randomize(create_model("awsrn-s", scale=2), seed=1)).cuda().eval()
    x = torch.rand(1, 3, 32, 40, device="cuda")
    replay, out = graphed(d, x, LatencySpec(device="cuda", deploy=True))
    x2 = torch.rand_like(x)
    x.copy_(x2)
    replay()
    with torch.inference_mode():
        assert torch.allclose(out, d(x2), atol=1e-5, rtol=0)
