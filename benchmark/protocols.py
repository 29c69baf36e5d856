"""Evaluation protocols: how LR is made and how SR is graded against HR.

Named objects so that a user can see why leaderboards disagree:
* ``matlab``      the AWSRN paper's Evaluate_PSNR_SSIM.m (the default; see DESIGN.md)
* ``rgb``         same LR and quantisation, PSNR/SSIM on RGB (mean SSIM over channels)
* ``basicsr``     as ``matlab``, but a gray image is graded as RGB (replicated), on Y: BasicSR's and IMDN's rule
* ``super-image`` super-image / BAM repo: PIL bicubic LR, Y with the 64.738 typo (/256), no rounding
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .imresize import bicubic_downscale, modcrop
from .metrics import BT601_Y, SUPER_IMAGE_Y, psnr, rgb_to_y, shave, ssim


@dataclass(frozen=True)
class Protocol:
    name: str
    lr_method: str                 # 'matlab' (MATLAB imresize) or 'pil' (PIL bicubic)
    color: str                     # 'y' or 'rgb'
    y_coeffs: tuple[float, float, float] = BT601_Y
    y_divisor: float = 255.0
    quantize_sr: bool = True       # clamp and round SR to uint8 before grading
    gray_own_values: bool = True   # grayscale HR graded on its own values (not on Y)
    matlab_single: bool = True     # MATLAB keeps Y in single precision before x255
    description: str = ""

    def make_lr(self, hr: np.ndarray, scale: int) -> np.ndarray:
        """uint8 LR from a modcropped uint8 HR ((H, W) or (H, W, 3))."""
        if self.lr_method == "pil":
            from PIL import Image
            h, w = hr.shape[:2]
            return np.asarray(Image.fromarray(hr).resize((w // scale, h // scale), Image.BICUBIC))
        t = torch.from_numpy(hr)
        t = t.unsqueeze(0) if t.ndim == 2 else t.permute(2, 0, 1)
        lr = bicubic_downscale(t, scale)
        return (lr[0] if hr.ndim == 2 else lr.permute(1, 2, 0)).contiguous().numpy()

    def grade(self, sr: torch.Tensor, hr: torch.Tensor, scale: int) -> tuple[float, float]:
        """PSNR and SSIM of ``sr`` (3, H, W) float in [0, 1] against ``hr`` uint8 (H, W) or (3, H, W)
        ((1, H, W) counts as gray) on the same device; the border of ``scale`` pixels is shaved."""
        sr = sr.to(torch.float64) * 255.0
        sr = sr.clamp(0, 255)
        if self.quantize_sr:
            sr = sr.round()
        hr = hr.to(torch.float64)
        if hr.ndim == 3 and hr.shape[0] == 1:
            hr = hr[0]
        if hr.ndim == 2:
            if self.gray_own_values:
                # a gray image is graded on its own values (as the script does); the model's 3-channel
                # output is reduced to gray by its channel mean (identical channels for bicubic)
                a, b = hr, sr.mean(0)
                if self.quantize_sr:
                    b = b.round()
                return self._score(a, b, scale)
            hr = hr.expand(3, -1, -1)
        if self.color == "rgb":
            return self._score(hr, sr, scale)
        return self._score(self._y(hr), self._y(sr), scale)

    def _y(self, img: torch.Tensor) -> torch.Tensor:
        y = rgb_to_y(img, self.y_coeffs, self.y_divisor)
        if self.matlab_single:  # single(rgb2ycbcr(im2double(x))) * 255 is computed in single precision
            y = ((y / 255.0).to(torch.float32) * 255.0).to(torch.float64)
        return y

    @staticmethod
    def _score(a: torch.Tensor, b: torch.Tensor, scale: int) -> tuple[float, float]:
        a, b = shave(a, scale), shave(b, scale)
        return psnr(b, a), ssim(a, b)


PROTOCOLS = {
    "matlab": Protocol("matlab", "matlab", "y",
                       description="AWSRN Evaluate_PSNR_SSIM.m: MATLAB bicubic LR, uint8 SR, Y (BT.601), "
                                   "gray on own values, shave s, Wang SSIM"),
    "rgb": Protocol("rgb", "matlab", "rgb", matlab_single=False,
                    description="MATLAB bicubic LR, uint8 SR, PSNR/SSIM on RGB, shave s"),
    "basicsr": Protocol("basicsr", "matlab", "y", gray_own_values=False,
                        description="BasicSR / IMDN: as matlab, but every image is read as RGB (a gray image "
                                    "replicated to 3 channels) and graded on Y"),
    "super-image": Protocol("super-image", "pil", "y", SUPER_IMAGE_Y, 256.0, quantize_sr=False,
                            gray_own_values=False, matlab_single=False,
                            description="super-image/BAM: PIL bicubic LR, unrounded SR, Y with 64.738/256"),
}


def get_protocol(name: str | Protocol) -> Protocol:
    if isinstance(name, Protocol):
        return name
    if name not in PROTOCOLS:
        raise KeyError(f"unknown protocol {name!r}; expected one of {sorted(PROTOCOLS)}")
    return PROTOCOLS[name]


__all__ = ["Protocol", "PROTOCOLS", "get_protocol", "modcrop"]
