"""Balanced attention (BAM, Wang et al. 2021, arXiv 2104.07566): ACAM x MSAM x input.

Attribute names follow the BAM repo / super-image (``ca.fc1``, ``ca.relu1``, ``ca.fc2``, ``sa.conv1``)
so that their checkpoints load key-for-key.
"""
from __future__ import annotations

import torch
from torch import nn


class ChannelAttention(nn.Module):
    """ACAM: avg-pool -> 1x1 conv (no bias) -> PReLU -> 1x1 conv (no bias) -> sigmoid."""

    def __init__(self, channels: int, reduction: int):
        super().__init__()
        hidden = channels // reduction
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, hidden, 1, bias=False)
        self.relu1 = nn.PReLU(hidden)
        self.fc2 = nn.Conv2d(hidden, channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.fc2(self.relu1(self.fc1(self.avg_pool(x)))))


class SpatialAttention(nn.Module):
    """MSAM: channel-wise max -> 7x7 conv (no bias) -> sigmoid."""

    def __init__(self, kernel_size: int = 7):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 1, kernel_size, padding=kernel_size // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.conv1(torch.amax(x, dim=1, keepdim=True)))


class BalancedAttention(nn.Module):
    def __init__(self, channels: int, reduction: int = 8):
        super().__init__()
        self.ca = ChannelAttention(channels, reduction)
        self.sa = SpatialAttention()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ca(x) * self.sa(x) * x
