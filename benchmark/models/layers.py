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


class Scale(nn.Module):
    """A learnable scalar multiplier (the paper's adaptive weights lambda)."""

    def __init__(self, init_value: float):
        super().__init__()
        self.scale = nn.Parameter(torch.tensor([float(init_value)]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale
