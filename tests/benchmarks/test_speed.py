"""pytest-benchmark suite (kept out of `make test`; run with `make bench`). Records numbers, asserts none."""
import numpy as np
import pytest
import torch

from benchmark import create_model
from benchmark.deploy import reparameterize
from benchmark.imresize import bicubic_downscale, imresize
from benchmark.metrics import psnr, ssim



@pytest.fixture(autouse=True)
def _one_thread():
    """Recorded numbers are single-threaded; set per test and restored, so the rest of the suite (collected
    in the same session) keeps its threads."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("name", ["awsrn-s", "awsrn-sd", "awsrn-m", "awsrn-l"])
@pytest.mark.parametrize("deploy", [False, True])
def test_forward_64x64_x2(benchmark, name, deploy):
    m = create_model(name, scale=2).eval()
    m = reparameterize(m) if deploy else m
    x = torch.rand(1, 3, 64, 64)
    with torch.inference_mode():
        benchmark(m, x)


def test_imresize_down_x4_512(benchmark):
    img = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (3, 512, 512), dtype=np.uint8))
    benchmark(bicubic_downscale, img, 4)


def test_imresize_up_x4_128(benchmark):
    img = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (3, 128, 128), dtype=np.uint8))
    benchmark(imresize, img, 4.0)


def test_ssim_512(benchmark):
    a = torch.rand(512, 512, dtype=torch.float64) * 255
    benchmark(ssim, a, (a + 3).clamp(0, 255))


def test_psnr_512(benchmark):
    a = torch.rand(512, 512, dtype=torch.float64) * 255
    benchmark(psnr, a, (a + 3).clamp(0, 255))
