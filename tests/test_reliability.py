"""Bad input gets one clear answer (skip and report, or a one-line error and exit 2), and the results
store never mixes rows of other images. One test per item of the hostile-input list (README table)."""
import json
import os
from io import StringIO
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import skimage.data
import torch
from PIL import Image

from benchmark import create_model
from benchmark.checkpoints import CheckpointError, read_checkpoint, save_native
from benchmark.data import ImageReadError, decode_image
from benchmark.evaluate import evaluate, summarize

ROOT = Path(__file__).resolve().parent.parent


def _root(path: Path, images: dict[str, np.ndarray]) -> Path:
    hr = path / "benchmark/Set5/HR"
    hr.mkdir(parents=True, exist_ok=True)
    for name, arr in images.items():
        Image.fromarray(arr).save(hr / f"{name}.png")
    return path


def _crops(n: int, offset: int = 0) -> dict[str, np.ndarray]:
    src = skimage.data.astronaut()
    return {f"img{i}": src[(i + offset) * 30:(i + offset) * 30 + 48, 40:100].copy() for i in range(n)}


class _Result:
    def __init__(self, returncode, stdout, stderr):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def _cli(*args, env=None):
    """The CLI in this process (fast); stdout and stderr captured separately, as a shell would see them."""
    import contextlib
    import io

    from benchmark.cli import main
    out, err = io.StringIO(), io.StringIO()
    old = {k: os.environ.get(k) for k in (env or {})}
    os.environ.update(env or {})
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                rc = main(list(args))
            except SystemExit as exc:
                rc = exc.code
    finally:
        for k, v in old.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    return _Result(rc, out.getvalue(), err.getvalue())


# 1. decompression bomb --------------------------------------------------------------------------
@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")   # Pillow warns first, by design
def test_an_image_declaring_too_many_pixels_is_not_decoded_and_the_rest_is_graded(tmp_path, monkeypatch):
    import benchmark.data as data
    root = _root(tmp_path, _crops(3))
    bomb = root / "benchmark/Set5/HR/bomb.png"
    Image.new("1", (12000, 12000)).save(bomb)       # 144 MP declared, a few KB on disk
    assert bomb.stat().st_size < 100_000
    with pytest.raises(ImageReadError, match=r"bomb.png: declares 12000x12000 = 144.0 MP, over the 40 MP limit"):
        decode_image(bomb)
    monkeypatch.setattr(data, "MAX_PIXELS", 48 * 60 - 1)    # the cap is configurable (AWSRN_MAX_PIXELS)
    with pytest.raises(ImageReadError, match="over the"):
        decode_image(root / "benchmark/Set5/HR/img0.png")
    monkeypatch.setattr(data, "MAX_PIXELS", 40_000_000)
    res = evaluate("bicubic", ["Set5"], [2], data_root=root, cache_dir=tmp_path, progress=False)
    assert res.summary.n_images.iloc[0] == 3
    assert [Path(p).name for p, _ in res.skipped] == ["bomb.png"]


# 2. stale rows ------------------------------------------------------------------------------------
def test_rows_are_keyed_by_image_content_and_only_this_runs_images_are_reported(tmp_path):
    store = tmp_path / "store"
    a = _root(tmp_path / "a", _crops(4))
    evaluate("bicubic", ["Set5"], [2], data_root=a, store=store, cache_dir=tmp_path, progress=False)
    changed = {"img0": _crops(1, offset=5)["img0"], "img9": _crops(1, offset=7)["img0"]}   # img0 edited, img9 new
    b = _root(tmp_path / "b", changed)
    got = evaluate("bicubic", ["Set5"], [2], data_root=b, store=store, cache_dir=tmp_path, progress=False)
    fresh = evaluate("bicubic", ["Set5"], [2], data_root=b, store=tmp_path / "fresh", cache_dir=tmp_path,
                     progress=False)
    assert sorted(got.images.image) == ["img0", "img9"] and got.summary.n_images.iloc[0] == 2
    assert got.summary.psnr.iloc[0] == pytest.approx(fresh.summary.psnr.iloc[0], abs=1e-12)
    stored = pd.read_csv(next((store / "eval").glob("*.csv")))
    assert sorted(stored.image.astype(str)) == ["img0", "img1", "img2", "img3", "img9"]   # a's others kept
    again = evaluate("bicubic", ["Set5"], [2], data_root=a, store=store, cache_dir=tmp_path, progress=False)
    assert again.summary.n_images.iloc[0] == 4 and sorted(again.images.image) == ["img0", "img1", "img2", "img3"]


# 3. 16-bit images, and no inf/NaN in a mean -----------------------------------------------------
def test_16_bit_gray_decodes_like_matlab_im2uint8(tmp_path):
    ramp = (np.arange(64 * 64, dtype=np.uint32) * 16).reshape(64, 64).astype(np.uint16)
    ramp[0, :4] = [0, 128, 129, 65535]
    p = tmp_path / "g16.png"
    Image.fromarray(ramp).save(p)
    assert Image.open(p).mode.startswith("I;16")
    got = decode_image(p)
    assert got.dtype == np.uint8 and got.shape == (64, 64)
    assert got[0, :4].tolist() == [0, 0, 1, 255]           # round(x / 257): 128.5/257 -> 0, 129 -> 1
    assert np.array_equal(got, np.floor(ramp / 257 + 0.5).astype(np.uint8))
    root = _root(tmp_path / "r", {})
    Image.fromarray(ramp).save(root / "benchmark/Set5/HR/g16.png")
    res = evaluate("bicubic", ["Set5"], [2], data_root=root, cache_dir=tmp_path, progress=False)
    assert np.isfinite(res.summary.psnr.iloc[0]) and res.summary.psnr.iloc[0] < 60


def test_32_bit_images_are_refused_with_the_reason(tmp_path):
    p = tmp_path / "f.tif"
    Image.fromarray(np.zeros((8, 8), np.float32)).save(p)
    with pytest.raises(ImageReadError, match=r"f.tif: pixel mode F \(32-bit\) has no defined 8-bit reading"):
        decode_image(p)


def test_a_non_finite_psnr_is_left_out_of_the_mean_and_counted():
    rows = pd.DataFrame({"model": "m", "weights_sha256": "w", "scale": 2, "dataset": "D", "protocol": "matlab",
                         "self_ensemble": False, "deploy": False, "image": ["a", "b", "c"],
                         "psnr": [30.0, np.inf, 32.0], "ssim": [0.9, 1.0, 0.8], "forward_s": 0.1})
    s = summarize(rows)
    assert s.psnr.iloc[0] == 31.0 and s.n_nonfinite.iloc[0] == 1 and s.n_images.iloc[0] == 3


# 4. stdout holds the table only --------------------------------------------------------------------
def test_csv_on_stdout_parses_while_skips_go_to_stderr(tmp_path):
    root = _root(tmp_path, _crops(2))
    (root / "benchmark/Set5/HR/broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not a png")
    r = _cli("evaluate", "--model", "bicubic", "--scales", "2", "--datasets", "Set5", "--data-root", str(root),
             "--format", "csv", "--no-store", "--quiet", env={"AWSRN_CACHE": str(tmp_path / "c")})
    assert r.returncode == 0, r.stderr
    df = pd.read_csv(StringIO(r.stdout))
    assert len(df) == 1 and df.n_images.iloc[0] == 2
    assert "broken.png" in r.stderr and "broken" not in r.stdout


# 5. ordinary mistakes: one line, exit 2 -------------------------------------------------------------
@pytest.mark.parametrize("argv,expected", [
    (["evaluate", "--model", "bicubic", "--scales", "0"], "--scales: expected one of 2, 3, 4, 8, got '0'"),
    (["evaluate", "--model", "bicubic", "--scales", "-2"], "got '-2'"),
    (["evaluate", "--model", "bicubic", "--scales", "5"], "got '5'"),
    (["evaluate", "--model", "bicubic", "--scales", ""], "expected comma-separated scales"),
    (["evaluate", "--model", "bicubic", "--datasets", ""], "--datasets: expected comma-separated names"),
    (["evaluate", "--model", "bicubic", "--tile", "-3"], "--tile: expected an integer >= 16, got -3"),
    (["evaluate", "--model", "bicubic", "--tile", "1"], "--tile: expected an integer >= 16, got 1"),
    (["evaluate", "--model", "bicubic", "--device", "foo"], "--device: expected cpu, cuda or cuda:N, got 'foo'"),
    (["evaluate", "--model", "imdn", "--scales", "8"], "--scales 8: imdn runs at scales 2, 3, 4"),
    (["train", "--data", "x", "--batch", "0"], "--batch: expected an integer >= 1, got 0"),
    (["train", "--data", "x", "--batch", "-4"], "--batch: expected an integer >= 1, got -4"),
    (["train", "--data", "x", "--iters", "0"], "--iters: expected an integer >= 1, got 0"),
])
def test_ordinary_mistakes_get_one_line_and_exit_2(argv, expected):
    r = _cli(*argv)
    assert r.returncode == 2
    assert expected in r.stderr and len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr


def test_cuda_without_cuda_is_named():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    r = _cli("evaluate", "--model", "bicubic", "--device", "cuda")
    assert r.returncode == 2 and "CUDA is not available here" in r.stderr and len(r.stderr.splitlines()) == 1


def test_out_that_is_a_file_is_named(tmp_path):
    f = tmp_path / "afile"
    f.write_text("x")
    r = _cli("evaluate", "--model", "bicubic", "--scales", "2", "--datasets", "skimage", "--out", str(f),
             env={"AWSRN_CACHE": str(tmp_path / "c")})
    assert r.returncode == 2 and f"--out {f}: is a file; expected a folder" in r.stderr
    r = _cli("train", "--data", str(tmp_path), "--out", str(f))
    assert r.returncode == 2 and "is a file; expected a folder" in r.stderr


def test_resume_from_a_pickle_checkpoint_is_refused_with_its_reason(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned > " + str(tmp_path / "pwned"),))
    data = _root(tmp_path / "d", _crops(4))
    out = tmp_path / "run"
    out.mkdir()
    torch.save({"model": Evil()}, out / "checkpoint.pt")
    r = _cli("train", "--data", str(data / "benchmark/Set5/HR"), "--scale", "2", "--patch", "8", "--batch", "2",
             "--iters", "2", "--val-images", "1", "--out", str(out), "--resume", "--quiet",
             env={"AWSRN_CACHE": str(tmp_path / "c")})
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "holds executable pickle content (it asks for posix.system); refused" in r.stderr
    assert not (tmp_path / "pwned").exists()


# 6. messages that say what happened ------------------------------------------------------------------
def test_messages_name_the_file_and_the_real_size(tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not a png")
    with pytest.raises(ImageReadError) as err:
        decode_image(bad, bad.read_bytes())
    assert str(err.value).startswith(str(bad)) and "BytesIO" not in str(err.value)
    root = _root(tmp_path / "r", {"tiny": np.zeros((1, 3, 3), np.uint8)})     # 3 wide, 1 high
    res = evaluate("bicubic", ["Set5"], [4], data_root=root, cache_dir=tmp_path, progress=False)
    assert "image 3x1 is too small for x4" in res.skipped[0][1]     # width x height, as the bomb message


def test_train_says_why_no_image_is_usable(tmp_path):
    from benchmark.train import TrainConfig, train
    d = tmp_path / "imgs"
    d.mkdir()
    for i in range(3):
        Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(d / f"s{i}.png")
    (d / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n nope")
    with pytest.raises(ValueError, match=r"no usable training image .*: 3 smaller than the 96px HR patch, 1 unreadable"):
        train(TrainConfig(data=(str(d),), out=str(tmp_path / "o"), scale=2, val_images=0, iters=1), progress=False)


# 7. identities and configs -------------------------------------------------------------------------
def test_random_init_rows_have_a_seeded_identity_and_modules_without_weights_are_not_stored(tmp_path, capsys):
    kw = dict(data_root=_root(tmp_path / "r", _crops(2)), cache_dir=tmp_path, progress=False)
    torch.manual_seed(123)
    a = evaluate("awsrn-s", ["Set5"], [2], store=tmp_path / "store", **kw)
    torch.manual_seed(456)
    b = evaluate("awsrn-s", ["Set5"], [2], store=tmp_path / "other", **kw)
    assert a.images.weights_sha256.iloc[0] == "random-init-seed0"
    assert np.array_equal(a.images.psnr, b.images.psnr)          # the same model whatever the RNG state
    evaluate(create_model("awsrn-s", scale=2), ["Set5"], [2], store=tmp_path / "mod", **kw)
    assert not (tmp_path / "mod").exists() and "has no weights file; its rows are not stored" in capsys.readouterr().err


def test_a_config_that_does_not_describe_its_tensors_is_refused_before_building(tmp_path):
    path = save_native(create_model("awsrn-s", scale=2), tmp_path / "m.safetensors")
    from safetensors.torch import load_file, save_file
    cfg = json.loads((tmp_path / "m.json").read_text())
    cfg["n_lfb"] = 400
    from safetensors import safe_open
    with safe_open(str(path), framework="pt") as f:
        meta = dict(f.metadata())
    meta["config"] = json.dumps(cfg)
    save_file(load_file(str(path)), str(path), metadata=meta)
    with pytest.raises(CheckpointError, match=r"does not describe its tensors: n_lfb 400 \(tensors: 1\)"):
        read_checkpoint(path)


# 8. files follow the umask -----------------------------------------------------------------------------
def test_store_files_follow_the_umask(tmp_path):
    import benchmark.atomic as atomic
    evaluate("bicubic", ["skimage"], [4], store=tmp_path / "store", cache_dir=tmp_path, progress=False)
    f = next((tmp_path / "store/eval").glob("*.csv"))
    assert f.stat().st_mode & 0o777 == 0o666 & ~atomic._UMASK


def test_a_temp_file_left_by_a_killed_writer_is_swept_and_a_live_writers_is_kept(tmp_path):
    """kill -9 between mkstemp and os.replace leaves ``.<name>.<host>-<pid>.<rand>.tmp``; the next writer
    into that folder removes it when that pid is gone, and leaves a live process's temp file alone."""
    import subprocess
    import sys
    import benchmark.atomic as atomic
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        folder = tmp_path / "eval"
        folder.mkdir()
        left = folder / f".run.json.{atomic._HOST}-{dead.pid}.k3j_x9ab.tmp"
        busy = folder / f".run.json.{atomic._HOST}-{live.pid}.a0b1c2d3.tmp"
        other_host = folder / f".run.json.elsewhere-{dead.pid}.a0b1c2d3.tmp"
        for f in (left, busy, other_host):
            f.write_text("{")
        assert atomic.stale_temps(folder) == [left]
        atomic.atomic_write_text(folder / "run.json", "{}\n")
        assert (folder / "run.json").read_text() == "{}\n"
        assert not left.exists() and busy.exists() and other_host.exists()
        assert sorted(p.name for p in folder.iterdir()) == sorted(["run.json", busy.name, other_host.name])
    finally:
        live.kill()
        live.wait()


def test_a_second_model_on_the_same_images_decodes_nothing_and_an_edited_image_is_read_again(tmp_path, monkeypatch):
    """The in-memory pair cache: a second evaluation in the same process takes every (HR, LR) pair from
    memory (no decode, no resize) and grades the same rows; an image rewritten on disk is decoded again."""
    import benchmark.data as data
    from benchmark.evaluate import evaluate
    root = _root(tmp_path, _crops(3))
    data.PAIRS.clear()
    decoded = []
    real = data.decode_image
    monkeypatch.setattr(data, "decode_image", lambda *a, **k: decoded.append(a[0]) or real(*a, **k))
    kw = dict(data_root=root, cache_dir=tmp_path / "c", progress=False)
    first = evaluate("bicubic", ["Set5"], [2], **kw).images
    n_first = len(decoded)
    assert n_first == 3 and data.PAIRS.misses == 3
    second = evaluate("bicubic", ["Set5"], [2], **kw).images
    assert len(decoded) == n_first and data.PAIRS.hits == 3
    assert second.psnr.tolist() == first.psnr.tolist()
    edited = _crops(1, offset=5)["img0"]
    Image.fromarray(edited).save(root / "benchmark/Set5/HR/img0.png")
    third = evaluate("bicubic", ["Set5"], [2], **kw).images.set_index("image")
    assert decoded[n_first:] == [root / "benchmark/Set5/HR/img0.png"]          # only the edited one
    assert third.loc["img0", "psnr"] != first.set_index("image").loc["img0", "psnr"]
    small = data.PairCache(max_bytes=2 * 48 * 60 * 3 + 2 * 24 * 30 * 3)       # room for two pairs
    for i in range(3):
        small.put(i, np.zeros((48, 60, 3), np.uint8), np.zeros((24, 30, 3), np.uint8))
    assert list(small.items) == [1, 2] and small.bytes <= small.max_bytes      # the oldest went first


def test_ctrl_c_is_one_line_and_exit_130(monkeypatch, capsys):
    import benchmark.evaluate
    from benchmark.cli import main

    def interrupted(*a, **k):
        raise KeyboardInterrupt
    monkeypatch.setattr(benchmark.evaluate, "evaluate", interrupted)
    assert main(["evaluate", "--model", "bicubic", "--scales", "2", "--datasets", "skimage"]) == 130
    assert capsys.readouterr().err.splitlines() == ["awsrn-bench evaluate: interrupted"]
