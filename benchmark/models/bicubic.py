"""The bicubic baseline as a "model": MATLAB-compatible bicubic upscaling by ``scale``."""
from __future__ import annotations

import torch
from torch import nn

from ..imresize import imresize


class Bicubic(nn.Module):
    """Takes RGB in [0, 1] (N, 3, h, w) like every model here and returns (N, 3, s*h, s*w).

    The literature's bicubic row is MATLAB ``imresize`` on uint8 images, so the input is quantised to
    uint8 first and the resize rounds as MATLAB does; the result is returned in [0, 1].
    """

    def __init__(self, scale: int):
        super().__init__()
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q = (x * 255.0).round().clamp(0, 255).to(torch.uint8)
        return imresize(q, float(self.scale)).to(x.dtype) / 255.0
