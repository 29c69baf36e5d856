import math

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from benchmark.imresize import bicubic_downscale, contributions, imresize, modcrop
from benchmark.metrics import psnr, rgb_to_y, ssim
from benchmark.protocols import get_protocol


def _matlab_loop_resize_1d(vec, out_len, factor):
    """Independent transliteration of MATLAB imresize's contributions + resizeAlongDim for one row,
    element by element (slow, for checking only)."""
    def cubic(x):
        ax = abs(x)
        if ax <= 1:
            return 1.5 * ax ** 3 - 2.5 * ax ** 2 + 1
        if ax <= 2:
            return -0.5 * ax ** 3 + 2.5 * ax ** 2 - 4 * ax + 2
        return 0.0
    n = len(vec)
    width = 4.0 / factor if factor < 1 else 4.0
    h = (lambda x: factor * cubic(factor * x)) if factor < 1 else cubic
    out = []
    for i in range(1, out_len + 1):
        u = i / factor + 0.5 * (1 - 1 / factor)
        left = math.floor(u - width / 2)
        ws, vs = [], []
        for j in range(int(math.ceil(width)) + 2):
            idx = left + j
            ws.append(h(u - idx))
            m = (idx - 1) % (2 * n)                 # symmetric: 1..n, n..1
            vs.append(vec[m] if m < n else vec[2 * n - 1 - m])
        out.append(sum(w * v for w, v in zip(ws, vs)) / sum(ws))
    return np.array(out)


@pytest.mark.parametrize("factor,n,out", [(0.5, 17, 9), (1 / 3, 20, 7), (0.25, 24, 6), (2.0, 9, 18), (3.0, 7, 21)])
def test_resize_matches_elementwise_matlab_transliteration(factor, n, out):
    rng = np.random.default_rng(0)
    vec = rng.uniform(0, 255, n)
    expected = _matlab_loop_resize_1d(list(vec), out, factor)
    got = imresize(torch.from_numpy(vec).view(1, 1, n), factor, out_hw=(1, out))[0, 0].numpy()
    # (height pass on a single row is the identity: factor applies to both dims, so give H=1 -> 1)
    assert np.allclose(got, expected, atol=1e-9)


def test_contributions_are_normalised_and_symmetric():
    src, w = contributions(10, 5, 0.5)
    assert np.allclose(w.sum(1), 1.0)
    assert src.min() >= 0 and src.max() <= 9
    # mirror symmetry: output i from the left equals output n-1-i from the right
    assert np.allclose(w, w[::-1, ::-1])


def test_constant_image_stays_constant_and_uint8_rounds():
    img = torch.full((3, 12, 18), 77, dtype=torch.uint8)
    assert torch.equal(bicubic_downscale(img, 3), torch.full((3, 4, 6), 77, dtype=torch.uint8))
    up = imresize(img, 4)
    assert up.dtype == torch.uint8 and up.shape == (3, 48, 72) and (up == 77).all()


def test_downscale_requires_modcrop():
    with pytest.raises(ValueError, match="not a multiple of scale 4"):
        bicubic_downscale(torch.zeros(3, 10, 12), 4)
    assert modcrop(np.zeros((11, 13, 3)), 4).shape == (8, 12, 3)


def test_psnr_matches_skimage():
    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, (40, 50)).astype(np.float64)
    b = np.clip(a + rng.normal(0, 5, a.shape), 0, 255).round()
    assert psnr(torch.from_numpy(b), torch.from_numpy(a)) == pytest.approx(
        peak_signal_noise_ratio(a, b, data_range=255), abs=1e-10)
    assert psnr(torch.from_numpy(a), torch.from_numpy(a)) == math.inf


def test_ssim_matches_skimage_wang_settings():
    rng = np.random.default_rng(2)
    a = rng.integers(0, 256, (64, 48)).astype(np.float64)
    b = np.clip(a + rng.normal(0, 20, a.shape), 0, 255)
    ref = structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                data_range=255)
    assert ssim(torch.from_numpy(a), torch.from_numpy(b)) == pytest.approx(ref, abs=1e-12)
    assert ssim(torch.from_numpy(a), torch.from_numpy(a)) == pytest.approx(1.0, abs=1e-12)
    with pytest.raises(ValueError, match="smaller than the 11x11 window"):
        ssim(torch.zeros(10, 30), torch.zeros(10, 30))


def test_ssim_cpu_filter_equals_the_tensor_filter_used_on_gpus():
    """The CPU path (scipy correlate1d) and the tensor path (what a GPU runs) filter alike to float64
    rounding, so a grade does not depend on the device beyond 1e-15."""
    from benchmark.metrics import _gauss_1d, _valid_filter, _valid_gauss_2d
    g = torch.Generator().manual_seed(3)
    stack = torch.rand(5, 1, 37, 29, dtype=torch.float64, generator=g) * 255
    taps = _gauss_1d(11, 1.5, "cpu").tolist()
    fast, ref = _valid_gauss_2d(stack, taps), _valid_filter(_valid_filter(stack, taps, -2), taps, -1)
    assert fast.shape == ref.shape == (5, 1, 27, 19)
    assert (fast - ref).abs().max().item() < 1e-15 * 255


def test_y_channel_coefficients():
    white = torch.full((3, 1, 1), 255.0)
    black = torch.zeros(3, 1, 1)
    assert rgb_to_y(white).item() == pytest.approx(235.0)
    assert rgb_to_y(black).item() == pytest.approx(16.0)


def test_gray_graded_on_own_values_rgb_on_y():
    proto = get_protocol("matlab")
    rng = np.random.default_rng(3)
    hr = torch.from_numpy(rng.integers(0, 256, (32, 32)).astype(np.uint8))
    sr = (hr.double() + 4).clamp(0, 255) / 255
    p_gray, _ = proto.grade(sr.expand(3, -1, -1), hr, 2)
    p_rgb, _ = proto.grade(sr.expand(3, -1, -1), hr.expand(3, -1, -1), 2)
    # the same error on Y is compressed by 219/255: exactly 20 log10(255/219) dB apart
    assert p_rgb - p_gray == pytest.approx(20 * math.log10(255 / 219), abs=1e-3)


def test_super_image_protocol_differs_by_its_typo_and_no_rounding():
    rng = np.random.default_rng(4)
    hr = torch.from_numpy(rng.integers(0, 256, (3, 32, 32)).astype(np.uint8))
    sr = (hr.double() + torch.from_numpy(rng.normal(0, 3, (3, 32, 32)))).clamp(0, 255) / 255
    m, s = get_protocol("matlab").grade(sr, hr, 2), get_protocol("super-image").grade(sr, hr, 2)
    assert m[0] != pytest.approx(s[0], abs=1e-3)
    with pytest.raises(KeyError, match="unknown protocol"):
        get_protocol("nope")


def test_half_rounds_away_from_zero_like_matlab():
    from benchmark.imresize import round_half_away
    x = torch.tensor([0.5, 1.5, 2.5, -0.5, -1.5, 2.4999, 254.5])
    assert round_half_away(x).tolist() == [1.0, 2.0, 3.0, -1.0, -2.0, 2.0, 255.0]


def test_uint8_rounding_shortcut_equals_round_then_saturate():
    """imresize rounds a uint8 image's passes with clamp + floor(x + 0.5): the same levels as MATLAB's
    round followed by saturation, on halves, negatives, values past 255 and random sums of taps."""
    from benchmark.imresize import _round_to_uint8_levels, round_half_away
    x = torch.tensor([-300.0, -1.5, -0.5, -0.49, -0.0, 0.0, 0.5, 1.5, 2.5, 2.4999, 254.5, 254.49, 255.0, 255.5, 1e9],
                     dtype=torch.float64)
    x = torch.cat([x, torch.from_numpy(np.random.default_rng(0).normal(128, 90, 10_000))])
    assert torch.equal(_round_to_uint8_levels(x.clone()), round_half_away(x).clamp(0, 255))


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_imresize_equals_matlab_output_bit_for_bit(data_root, scale):
    """matlab_lr/Set5/x{s}: LR images written by MATLAB's own imresize (from the IMDN repository)."""
    from PIL import Image
    folder = data_root / "matlab_lr" / "Set5" / f"x{scale}"
    if not folder.is_dir():
        pytest.skip(f"{folder} is absent: no MATLAB-written LR images to compare with")
    names = sorted(p.stem for p in (data_root / "benchmark/Set5/HR").glob("*.png"))
    assert len(names) == 5
    for name in names:
        hr = modcrop(np.array(Image.open(data_root / f"benchmark/Set5/HR/{name}.png").convert("RGB")), scale)
        ours = bicubic_downscale(torch.from_numpy(hr).permute(2, 0, 1).contiguous(), scale).permute(1, 2, 0).numpy()
        ref = np.array(Image.open(folder / f"{name}x{scale}.bmp").convert("RGB"))
        assert ours.shape == ref.shape, name
        assert np.array_equal(ours, ref), f"{name} x{scale}: {np.count_nonzero(ours != ref)} pixels differ"


def test_basicsr_protocol_grades_gray_images_as_rgb_and_rgb_images_like_matlab():
    """A gray HR is graded on its own values under matlab and on the Y of the replicated gray under
    basicsr (Y = 16 + 0.8588 g); an RGB image scores the same under both."""
    g = torch.Generator().manual_seed(1)
    gray = torch.randint(0, 256, (40, 40), generator=g, dtype=torch.uint8)
    sr_gray = (gray.double() / 255 + 0.02 * torch.randn(40, 40, generator=g, dtype=torch.float64)).clamp(0, 1)
    sr3 = sr_gray.expand(3, -1, -1).float()
    m, b = get_protocol("matlab"), get_protocol("basicsr")
    pm, _ = m.grade(sr3, gray, 2)
    pb, _ = b.grade(sr3, gray, 2)
    # Y spans 219/255 of the gray range, so the same error reads 20 log10(255/219) = 1.32 dB higher
    assert pb - pm == pytest.approx(-20 * math.log10(219 / 255), abs=0.05)
    rgb = torch.randint(0, 256, (3, 40, 40), generator=g, dtype=torch.uint8)
    sr = (rgb.double() / 255 + 0.02 * torch.randn(3, 40, 40, generator=g, dtype=torch.float64)).clamp(0, 1).float()
    assert m.grade(sr, rgb, 2) == b.grade(sr, rgb, 2)
