"""Building blocks shared by the AWSRN family."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class WNConv2d(nn.Module):
    """A weight-normed 2-D convolution (``w = g * v / ||v||``, norm over all dims but 0).

    Written here rather than using ``torch.nn.utils.parametrizations.weight_norm`` because that
    renames the parameters (``parametrizations.weight.original0``); keeping ``weight_g`` /
    ``weight_v`` / ``bias`` makes the official and super-image state dicts load key-for-key, and the
    computation is the same ``torch._weight_norm`` kernel the deprecated ``weight_norm`` used.
    """

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, bias: bool = True):
        super().__init__()
        self.in_channels, self.out_channels, self.kernel_size = in_ch, out_ch, kernel_size
        self.padding = kernel_size // 2
        conv = nn.Conv2d(in_ch, out_ch, kernel_size, padding=self.padding, bias=bias)  # torch's default init
        v = conv.weight.detach()
        self.weight_v = nn.Parameter(v.clone())
        self.weight_g = nn.Parameter(torch.linalg.vector_norm(v, dim=(1, 2, 3), keepdim=True).clone())
        self.bias = nn.Parameter(conv.bias.detach().clone()) if bias else None

    @property
    def weight(self) -> torch.Tensor:
        return torch._weight_norm(self.weight_v, self.weight_g, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight, self.bias, padding=self.padding)

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, weight_norm=True"

    def fuse(self, scale: float | torch.Tensor = 1.0) -> nn.Conv2d:
        """A plain conv computing ``scale * self(x)`` (weight norm folded in)."""
        from .fused import plain_conv
        return plain_conv(self.weight.detach(), None if self.bias is None else self.bias.detach(), scale)


def normalize_input(x: torch.Tensor, cfg, rgb_mean: torch.Tensor) -> torch.Tensor:
    """RGB in [0, 1] -> the input convention the weights were trained with (``cfg.input_range``, and
    the DIV2K mean shift ``(x - mean*255) / 127.5`` when ``cfg.mean_shift``)."""
    x = x * cfg.input_range
    if cfg.mean_shift:
        x = (x - rgb_mean * 255.0) / 127.5
    return x


class Scale(nn.Module):
    """A learnable scalar multiplier (the paper's adaptive weights lambda)."""

    def __init__(self, init_value: float):
        super().__init__()
        self.scale = nn.Parameter(torch.tensor([float(init_value)]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale
