import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import skimage.data
import torch
from PIL import Image

from benchmark import create_model
from benchmark.data import list_images
from benchmark.evaluate import evaluate
from benchmark.inference import Runner, forward_tiled, receptive_radius
from benchmark.protocols import get_protocol
from tests.reference_awsrn import randomize

ROOT = Path(__file__).resolve().parent.parent


def _make_root(tmp_path, n=4, size=(60, 72), layout="edsr", corrupt=False, gray=False):
    """A tiny data root with crops of skimage photographs as dataset 'Set5'."""
    src = skimage.data.astronaut()
    hr_dir = tmp_path / ("benchmark/Set5/HR" if layout == "edsr" else "Set5/GTmod12")
    hr_dir.mkdir(parents=True)
    for i in range(n):
        crop = src[i * 40:i * 40 + size[0], i * 30:i * 30 + size[1]]
        Image.fromarray(crop).save(hr_dir / f"img{i}.png")
    if gray:
        Image.fromarray(skimage.data.camera()[:64, :64]).save(hr_dir / "gray.png")
    if corrupt:
        (hr_dir / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not really a png")
    return tmp_path


def test_evaluate_runs_on_embedded_skimage_set(tmp_path):
    res = evaluate("bicubic", ["skimage"], [4], cache_dir=tmp_path, progress=False)
    assert list(res.images.image) == ["astronaut", "camera", "chelsea", "coffee", "rocket"]
    row = res.summary.iloc[0]
    assert row.n_images == 5 and 20 < row.psnr < 40 and 0.3 < row.ssim < 1


def test_corrupt_image_is_reported_and_skipped(tmp_path):
    root = _make_root(tmp_path / "data", corrupt=True)
    res = evaluate("bicubic", ["Set5"], [2], data_root=root, cache_dir=tmp_path, progress=False)
    assert len(res.images) == 4
    assert len(res.skipped) == 1 and res.skipped[0][0].endswith("broken.png")
    assert "cannot read image" in res.skipped[0][1]


def test_gray_image_fed_as_three_channels(tmp_path):
    root = _make_root(tmp_path / "data", n=1, gray=True)
    seen = []

    class Spy(torch.nn.Module):
        scale = 2

        def forward(self, x):
            seen.append(x.shape)
            assert torch.equal(x[:, 0], x[:, 1]) or x.shape[-1] != 32
            return torch.nn.functional.interpolate(x, scale_factor=2)

    res = evaluate(Spy(), ["Set5"], data_root=root, cache_dir=tmp_path, progress=False)
    assert len(res.images) == 2 and all(s[1] == 3 for s in seen)


def test_lr_cache_is_reused_and_invalidated_by_edits(tmp_path, monkeypatch):
    root = _make_root(tmp_path / "data", n=2)
    kw = dict(data_root=root, cache_dir=tmp_path / "cache", progress=False)
    first = evaluate("bicubic", ["Set5"], [2], **kw)
    calls = []
    proto = get_protocol("matlab")
    orig = type(proto).make_lr
    monkeypatch.setattr(type(proto), "make_lr", lambda self, hr, s: calls.append(1) or orig(self, hr, s))
    second = evaluate("bicubic", ["Set5"], [2], **kw)
    assert calls == [] and np.allclose(first.images.psnr, second.images.psnr)
    # edit one image: only that one is recomputed
    p = root / "benchmark/Set5/HR/img0.png"
    arr = np.array(Image.open(p))
    arr[:10] = 0
    Image.fromarray(arr).save(p)
    third = evaluate("bicubic", ["Set5"], [2], **kw)
    assert calls == [1] and third.images.psnr.iloc[0] != first.images.psnr.iloc[0]


def test_basicsr_layout_and_provided_lr(tmp_path):
    root = _make_root(tmp_path / "data", n=2, size=(48, 48), layout="basicsr")
    lr_dir = root / "Set5/LRbicx4"
    lr_dir.mkdir()
    for ref in list_images("Set5", root):
        Image.fromarray(np.full((12, 12, 3), 128, np.uint8)).save(lr_dir / f"{ref.name}.png")
    refs = list_images("Set5", root)
    assert refs[0].provided_lr(4) is not None and refs[0].provided_lr(2) is None
    res = evaluate("bicubic", ["set5"], [4], data_root=root, cache_dir=tmp_path, progress=False)
    assert res.summary.iloc[0].psnr < 20   # a flat grey LR is far from the photograph


def test_missing_dataset_error_names_paths(tmp_path):
    with pytest.raises(FileNotFoundError, match="dataset Urban100 not found under"):
        list_images("Urban100", tmp_path)
    with pytest.raises(KeyError, match="unknown dataset"):
        list_images("Set6", tmp_path)


def test_tiled_forward_matches_whole():
    torch.manual_seed(0)
    m = randomize(create_model("awsrn-s", scale=3)).eval()
    x = torch.rand(1, 3, 45, 70)
    with torch.no_grad():
        whole = m(x)
        tiled = forward_tiled(m, x, tile=16)
    assert tiled.shape == whole.shape
    assert (tiled - whole).abs().max() < 1e-5
    assert receptive_radius(create_model("awsrn-s-bam", scale=2)) is None
    with pytest.raises(ValueError, match="BAM"):
        forward_tiled(create_model("awsrn-s-bam", scale=2), x, 16)


def test_self_ensemble_is_flip_equivariant():
    m = randomize(create_model("awsrn-sd", scale=2)).eval()
    run = Runner(m, self_ensemble=True)
    x = torch.rand(1, 3, 12, 16)
    y, _ = run(x)
    y_flipped, _ = run(torch.flip(x, (-1,)).transpose(-2, -1))
    assert torch.allclose(torch.flip(y, (-1,)).transpose(-2, -1), y_flipped, atol=1e-5)
    plain, _ = Runner(m)(x)
    assert not torch.allclose(plain, y, atol=1e-4)


def test_store_reuses_rows(tmp_path):
    root = _make_root(tmp_path / "data", n=3)
    kw = dict(data_root=root, cache_dir=tmp_path, store=tmp_path / "store", progress=False)
    a = evaluate("bicubic", ["Set5"], [2], **kw)
    files = list((tmp_path / "store/eval").glob("*.csv"))
    assert len(files) == 1 and files[0].with_suffix(".json").is_file()
    b = evaluate("bicubic", ["Set5"], [2], **kw)
    assert b.images.forward_s.tolist() == a.images.forward_s.tolist()   # read back, not recomputed


def _cli(*args):
    return [sys.executable, "-m", "benchmark.cli", *args]


@pytest.mark.slow
def test_kill_9_then_resume_gives_the_uninterrupted_rows(tmp_path):
    root = _make_root(tmp_path / "data", n=8, size=(120, 120))
    weights = tmp_path / "w.safetensors"
    from benchmark.checkpoints import save_native
    save_native(randomize(create_model("awsrn-m", scale=2)), weights)
    common = ["evaluate", "--model", "awsrn-m", "--weights", str(weights), "--scales", "2", "--datasets", "Set5",
              "--data-root", str(root), "--format", "csv", "--quiet"]
    env = {**os.environ, "AWSRN_CACHE": str(tmp_path / "cache")}
    # uninterrupted reference
    subprocess.run(_cli(*common, "--out", str(tmp_path / "ref")), check=True, env=env, capture_output=True)
    ref = pd.concat(pd.read_csv(f) for f in (tmp_path / "ref/store/eval").glob("*.csv"))
    # interrupted: kill -9 once two images are stored
    proc = subprocess.Popen(_cli(*common, "--out", str(tmp_path / "run")), env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    store = tmp_path / "run/store/eval"
    deadline = time.time() + 120
    while time.time() < deadline:
        files = list(store.glob("*.csv"))
        if files and len(pd.read_csv(files[0])) >= 2:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = pd.read_csv(next(store.glob("*.csv")))
    assert 2 <= len(partial) < 8
    subprocess.run(_cli(*common, "--out", str(tmp_path / "run")), check=True, env=env, capture_output=True)
    resumed = pd.read_csv(next(store.glob("*.csv")))
    assert sorted(resumed.image) == sorted(ref.image) and len(resumed) == 8
    merged = resumed.merge(ref, on="image", suffixes=("", "_ref"))
    assert np.allclose(merged.psnr, merged.psnr_ref, rtol=0, atol=1e-9)
    assert np.allclose(merged.ssim, merged.ssim_ref, rtol=0, atol=1e-12)
    assert not list(store.glob("*.tmp")) and not list(store.glob(".*.tmp"))


def test_cli_evaluate_csv_columns(tmp_path):
    out = subprocess.run(_cli("evaluate", "--model", "bicubic", "--scales", "3", "--datasets", "skimage",
                              "--format", "csv", "--no-store", "--quiet"),
                         capture_output=True, text=True, check=True,
                         env={**os.environ, "AWSRN_CACHE": str(tmp_path)}).stdout
    from io import StringIO
    df = pd.read_csv(StringIO(out))
    assert {"model", "scale", "dataset", "psnr", "ssim", "n_images"} <= set(df.columns)
    assert df.iloc[0].n_images == 5 and df.iloc[0].scale == 3


def test_deploy_form_evaluates_to_the_same_psnr(tmp_path):
    from benchmark.checkpoints import save_native
    w = tmp_path / "w.safetensors"
    save_native(randomize(create_model("awsrn-s", scale=4), seed=2), w)
    kw = dict(weights=w, cache_dir=tmp_path, progress=False)
    a = evaluate("awsrn-s", ["skimage"], [4], **kw)
    b = evaluate("awsrn-s", ["skimage"], [4], deploy=True, **kw)
    assert bool(b.summary.deploy.iloc[0]) and not bool(a.summary.deploy.iloc[0])
    assert b.summary.psnr.iloc[0] == pytest.approx(a.summary.psnr.iloc[0], abs=1e-3)
    assert b.summary.ssim.iloc[0] == pytest.approx(a.summary.ssim.iloc[0], abs=1e-5)


def test_graph_mode_needs_cuda_and_says_so(tmp_path, capsys):
    from benchmark.cli import main
    root = _make_root(tmp_path / "data", n=1)
    assert main(["evaluate", "--model", "bicubic", "--datasets", "Set5", "--data-root", str(root), "--graph",
                 "--no-store", "--out", str(tmp_path)]) == 2
    assert "graph: a CUDA graph needs device cuda, got 'cpu'" in capsys.readouterr().err
    from benchmark.inference import CUDAGraphs
    with pytest.raises(ValueError, match="needs a CUDA tensor"):
        CUDAGraphs(create_model("awsrn-s", scale=2))(torch.rand(1, 3, 8, 8))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a CUDA device")
def test_graph_mode_gives_the_plain_forward_whole_tiled_and_ensembled_on_cuda():
    """Each forward replayed from a graph of its shape equals the plain forward; tiles of one size share a
    graph, and no more than ``keep`` graphs are held."""
    m = randomize(create_model("awsrn-s", scale=2), seed=3).cuda().eval()
    for tile, ensemble in ((None, False), (16, False), (None, True)):
        x = torch.rand(1, 3, 40, 48, device="cuda")
        want, _ = Runner(m, self_ensemble=ensemble, tile=tile)(x)
        run = Runner(m, self_ensemble=ensemble, tile=tile, graph=True)
        got, _ = run(x)
        assert torch.allclose(got, want, atol=1e-5, rtol=0)
        again, _ = run(torch.flip(x, (-1,)))              # new contents, same shapes: replays, no capture
        plain, _ = Runner(m, self_ensemble=ensemble, tile=tile)(torch.flip(x, (-1,)))
        assert torch.allclose(again, plain, atol=1e-5, rtol=0)
        assert 1 <= len(run.forward.graphs) <= run.forward.keep
