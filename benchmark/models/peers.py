"""Peers with official trained weights (../shared/peers): IMDN and CARN-M, written here in this
project's style with the official module names, so the official state dicts load key for key.

* IMDN (Hui et al., ACM MM 2019; Zheng222/IMDN ``model/architecture.py``, ``model/block.py``): 6
  information multi-distillation blocks (IMDB) of 64 channels, distillation rate 1/4, contrast-aware
  channel attention (CCA), a 1x1 fusion of all block outputs with LeakyReLU(0.05), a 3x3 conv plus the
  head's features, and a 3x3 conv + PixelShuffle upsampler. One model per scale.
* CARN-M (Ahn et al., ECCV 2018; nmhkahn/CARN-pytorch ``carn/model/carn_m.py``, ``ops.py``): cascading
  blocks whose three efficient residual blocks share one set of weights (``b1`` reused), group
  convolutions (4 groups), and one multi-scale model holding x2, x3 and x4 upsamplers.

Both take RGB in [0, 1] and return RGB in [0, 1] (not clamped); CARN-M shifts by the DIV2K mean inside.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..config import PeerConfig

__all__ = ["IMDN", "CARNM", "PEER_CLASSES"]


# ---------------------------------------------------------------------------------------- IMDN
def _conv(cin: int, cout: int, k: int, groups: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, padding=(k - 1) // 2, groups=groups)


class CCA(nn.Module):
    """Contrast-aware channel attention: (per-channel std + mean) -> 1x1 -> ReLU -> 1x1 -> sigmoid."""

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        self.conv_du = nn.Sequential(_conv(channels, channels // reduction, 1), nn.ReLU(inplace=True),
                                     _conv(channels // reduction, channels, 1), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=(2, 3), keepdim=True)
        # the official stdv_channels: the population standard deviation over the spatial positions
        std = (x - mean).pow(2).mean(dim=(2, 3), keepdim=True).pow(0.5)
        return x * self.conv_du(std + mean)


class IMDB(nn.Module):
    """Information multi-distillation block: three 3x3 steps each keep 1/4 of the channels, a fourth
    maps the rest to 1/4; the four parts are concatenated, weighted by CCA, fused by a 1x1, plus input."""

    def __init__(self, channels: int = 64, distillation_rate: float = 0.25):
        super().__init__()
        self.distilled = int(channels * distillation_rate)
        self.remaining = channels - self.distilled
        self.c1 = _conv(channels, channels, 3)
        self.c2 = _conv(self.remaining, channels, 3)
        self.c3 = _conv(self.remaining, channels, 3)
        self.c4 = _conv(self.remaining, self.distilled, 3)
        self.c5 = _conv(self.distilled * 4, channels, 1)
        self.cca = CCA(self.distilled * 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        act = lambda t: F.leaky_relu(t, 0.05)  # noqa: E731
        parts, h = [], x
        for conv in (self.c1, self.c2, self.c3):
            d, h = torch.split(act(conv(h)), (self.distilled, self.remaining), dim=1)
            parts.append(d)
        parts.append(self.c4(h))
        return self.c5(self.cca(torch.cat(parts, dim=1))) + x


class IMDN(nn.Module):
    def __init__(self, cfg: PeerConfig, n_feats: int = 64, n_blocks: int = 6):
        super().__init__()
        self.cfg = cfg
        s = cfg.scale
        self.fea_conv = _conv(3, n_feats, 3)
        for i in range(1, n_blocks + 1):          # attributes IMDB1 ... IMDB6 as in the official code
            self.add_module(f"IMDB{i}", IMDB(n_feats))
        self.n_blocks = n_blocks
        self.c = nn.Sequential(_conv(n_feats * n_blocks, n_feats, 1), nn.LeakyReLU(0.05, inplace=True))
        self.LR_conv = _conv(n_feats, n_feats, 3)
        self.upsampler = nn.Sequential(_conv(n_feats, 3 * s * s, 3), nn.PixelShuffle(s))

    @property
    def scale(self) -> int:
        return self.cfg.scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fea = self.fea_conv(x)
        outs, h = [], fea
        for i in range(1, self.n_blocks + 1):
            h = getattr(self, f"IMDB{i}")(h)
            outs.append(h)
        return self.upsampler(self.LR_conv(self.c(torch.cat(outs, dim=1))) + fea)


# -------------------------------------------------------------------------------------- CARN-M
class MeanShift(nn.Module):
    """A fixed 1x1 conv adding (or subtracting) the DIV2K mean; stored in the official state dict."""

    def __init__(self, mean_rgb, sign: int):
        super().__init__()
        self.shifter = nn.Conv2d(3, 3, 1)
        with torch.no_grad():
            self.shifter.weight.copy_(torch.eye(3).view(3, 3, 1, 1))
            self.shifter.bias.copy_(sign * torch.tensor(mean_rgb))
        for p in self.shifter.parameters():
            p.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shifter(x)


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, k: int = 3):
        super().__init__()
        self.body = nn.Sequential(_conv(cin, cout, k), nn.ReLU(inplace=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class EResidualBlock(nn.Module):
    """Efficient residual block: group 3x3, ReLU, group 3x3, ReLU, 1x1, plus input, ReLU."""

    def __init__(self, channels: int, groups: int):
        super().__init__()
        self.body = nn.Sequential(_conv(channels, channels, 3, groups), nn.ReLU(inplace=True),
                                  _conv(channels, channels, 3, groups), nn.ReLU(inplace=True),
                                  _conv(channels, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.body(x) + x)


class CascadingBlock(nn.Module):
    """Three passes through one shared EResidualBlock, each output concatenated and fused by a 1x1."""

    def __init__(self, channels: int, groups: int):
        super().__init__()
        self.b1 = EResidualBlock(channels, groups)
        self.c1 = BasicBlock(channels * 2, channels, 1)
        self.c2 = BasicBlock(channels * 3, channels, 1)
        self.c3 = BasicBlock(channels * 4, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cat, o = x, x
        for fuse in (self.c1, self.c2, self.c3):
            cat = torch.cat([cat, self.b1(o)], dim=1)
            o = fuse(cat)
        return o


class Upsampler(nn.Module):
    """group conv (64 -> r^2 * 64) + ReLU + PixelShuffle(r), once for x3, log2(s) times for x2/x4."""

    def __init__(self, channels: int, scale: int, groups: int):
        super().__init__()
        steps = [3] if scale == 3 else [2] * int(math.log2(scale))
        mods = []
        for r in steps:
            mods += [_conv(channels, r * r * channels, 3, groups), nn.ReLU(inplace=True), nn.PixelShuffle(r)]
        self.body = nn.Sequential(*mods)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class MultiScaleUpsampler(nn.Module):
    def __init__(self, channels: int, groups: int, scales=(2, 3, 4)):
        super().__init__()
        for s in scales:
            self.add_module(f"up{s}", Upsampler(channels, s, groups))

    def forward(self, x: torch.Tensor, scale: int) -> torch.Tensor:
        return getattr(self, f"up{scale}")(x)


class CARNM(nn.Module):
    """CARN-M, the multi-scale model; ``cfg.scale`` picks the upsampler the forward uses."""

    DIV2K_MEAN = (0.4488, 0.4371, 0.4040)

    def __init__(self, cfg: PeerConfig, n_feats: int = 64, groups: int = 4):
        super().__init__()
        self.cfg = cfg
        self.sub_mean = MeanShift(self.DIV2K_MEAN, -1)
        self.add_mean = MeanShift(self.DIV2K_MEAN, +1)
        self.entry = _conv(3, n_feats, 3)
        self.b1, self.b2, self.b3 = (self.cascading_block(n_feats, groups) for _ in range(3))
        self.c1 = BasicBlock(n_feats * 2, n_feats, 1)
        self.c2 = BasicBlock(n_feats * 3, n_feats, 1)
        self.c3 = BasicBlock(n_feats * 4, n_feats, 1)
        self.upsample = MultiScaleUpsampler(n_feats, groups)
        self.exit = _conv(n_feats, 3, 3)

    @staticmethod
    def cascading_block(n_feats: int, groups: int) -> nn.Module:
        return CascadingBlock(n_feats, groups)       # CARN (classic.py) puts its own block here

    @property
    def scale(self) -> int:
        return self.cfg.scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.entry(self.sub_mean(x))
        cat, o = x, x
        for block, fuse in ((self.b1, self.c1), (self.b2, self.c2), (self.b3, self.c3)):
            cat = torch.cat([cat, block(o)], dim=1)
            o = fuse(cat)
        return self.add_mean(self.exit(self.upsample(o, self.cfg.scale)))


PEER_CLASSES = {"imdn": IMDN, "carn-m": CARNM}
