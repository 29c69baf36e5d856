"""The other methods of the AWSRN paper's comparison table, built from their papers so that they are counted
(parameters, Multi-Adds) and timed the same way as AWSRN. No trained weights of these are reachable here, so they
are measured, never graded.

* SRCNN (Dong et al., TPAMI 2016, 9-5-5, 64/32 filters), VDSR (Kim et al., CVPR 2016, 20 layers of 64, global
  residual), DRCN (Kim et al., CVPR 2016: 2-layer embedding, one 256-filter layer recursed 16 times, a shared
  2-layer reconstruction per recursion, learned weights over the 16 predictions), DRRN (Tai et al., CVPR 2017,
  B1U25: one residual unit of two 128-filter convs recursed 25 times, pre-activation), MemNet (Tai et al., ICCV
  2017, M6R6: six memory blocks, each a residual block recursed six times and a 1x1 gate over its short- and
  long-term memories; a shared reconstruction per block, learned weights over the six predictions): bicubic
  pre-upsampling, Y channel only; Cb and Cr are bicubic, as those papers do.
* FSRCNN (Dong et al., ECCV 2016, d=56, s=12, m=4, PReLU): Y channel on the LR image, a 9x9 transposed conv.
* SRMDNF (Zhang et al., CVPR 2018): 12 convs of 128 on the LR image and 15 degradation maps (for bicubic
  degradation a fixed code, a buffer here), batch norm in the 10 middle layers, sub-pixel output.
* CARN (Ahn et al., ECCV 2018): CARN-M's structure (``peers.py``) with plain residual blocks, no sharing, no
  groups: one multi-scale model holding x2, x3 and x4 upsamplers.
* MSRN (Li et al., ECCV 2018): 8 multi-scale residual blocks (3x3 and 5x5 paths, crossed), a 1x1 over the head
  and all block outputs, a 3x3, an EDSR upsampler and a 3x3 to RGB.

Batch norm is left out where the table's count shows it was (DRRN, MemNet). Every model takes RGB in [0, 1] at LR
size and returns RGB at HR size, as every model of this suite does. ``PAPER_COUNTING`` says, per method, how the
table's numbers were counted where that differs from this suite's convention (every parameter; conv
multiply-accumulates as fvcore counts them, for a 1280x720 output); tests/test_classic.py checks each statement.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..config import PeerConfig
from .peers import CARNM

__all__ = ["SRCNN", "FSRCNN", "VDSR", "DRCN", "DRRN", "MemNet", "SRMDNF", "CARN", "MSRN", "CLASSIC_CLASSES",
           "PAPER_COUNTING"]

# BT.601 as in MATLAB's rgb2ycbcr on [0, 1] values (offsets 16/255 and 128/255), the convention of these papers.
_RGB_TO_YCBCR = torch.tensor([[65.481, 128.553, 24.966], [-37.797, -74.203, 112.0], [112.0, -93.786, -18.214]]) / 255
_YCBCR_TO_RGB = torch.linalg.inv(_RGB_TO_YCBCR)
_YCBCR_OFFSET = torch.tensor([16.0, 128.0, 128.0]) / 255

# How the AWSRN paper's table counted each method, where that is not this suite's convention (the `note` column of
# results/complexity_peers).
PAPER_COUNTING = {
    "srcnn": "the table counts conv weights only (biases left out)",
    "fsrcnn": ("the table counts conv weights only, and the 9x9 transposed conv once per HR pixel, i.e. s^2 times "
               "its multiply-accumulates (it runs on the LR grid); its x8 row repeats the x4 value"),
    "vdsr": "the table counts conv weights only (biases left out)",
    "drcn": "the table counts conv weights only (biases and the 16 ensemble weights left out)",
    "drrn": "the table counts conv weights only (biases left out)",
    "memnet": ("the table counts conv weights only, and the reconstruction once, where MemNet's output averages "
               "the reconstructions of all 6 memory blocks"),
    "msrn": ("the table's Multi-Adds are MSRN's parameters times the LR pixels: every conv counted on the LR grid, "
             "the later upsampler stages and the output conv too"),
}


def _conv(cin: int, cout: int, k: int, bias: bool = True) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, padding=k // 2, bias=bias)


def _bicubic(x: torch.Tensor, scale: int) -> torch.Tensor:
    return F.interpolate(x, scale_factor=scale, mode="bicubic", align_corners=False)


class LumaSR(nn.Module):
    """A single-channel network on Y, as the papers of SRCNN, FSRCNN, VDSR, DRCN, DRRN and MemNet ran theirs:
    Cb and Cr are upscaled bicubically. ``pre_upsample``: the network takes the bicubic-upscaled Y."""

    pre_upsample = True
    complexity_probes = ((2, 2), (3, 4))     # tiny LR sizes for fvcore's trace: DRCN costs 19.5M MACs per HR pixel

    def __init__(self, cfg: PeerConfig):
        super().__init__()
        self.cfg = cfg

    @property
    def scale(self) -> int:
        return self.cfg.scale

    def forward_y(self, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = _RGB_TO_YCBCR.to(x)
        ycc = torch.einsum("ij,bjhw->bihw", m, x) + _YCBCR_OFFSET.to(x).view(1, 3, 1, 1)
        if self.pre_upsample:
            ycc = _bicubic(ycc, self.scale)
            y = self.forward_y(ycc[:, :1])
            cbcr = ycc[:, 1:]
        else:
            y = self.forward_y(ycc[:, :1])
            cbcr = _bicubic(ycc[:, 1:], self.scale)
        out = torch.cat([y, cbcr], dim=1) - _YCBCR_OFFSET.to(x).view(1, 3, 1, 1)
        return torch.einsum("ij,bjhw->bihw", _YCBCR_TO_RGB.to(x), out)


class SRCNN(LumaSR):
    def __init__(self, cfg: PeerConfig):
        super().__init__(cfg)
        self.body = nn.Sequential(_conv(1, 64, 9), nn.ReLU(inplace=True), _conv(64, 32, 5), nn.ReLU(inplace=True),
                                  _conv(32, 1, 5))

    def forward_y(self, y):
        return self.body(y)


class FSRCNN(LumaSR):
    pre_upsample = False

    def __init__(self, cfg: PeerConfig, d: int = 56, s: int = 12, m: int = 4):
        super().__init__(cfg)
        layers = [_conv(1, d, 5), nn.PReLU(d), _conv(d, s, 1), nn.PReLU(s)]
        for _ in range(m):
            layers += [_conv(s, s, 3), nn.PReLU(s)]
        layers += [_conv(s, d, 1), nn.PReLU(d)]
        self.body = nn.Sequential(*layers)
        r = cfg.scale                    # output side exactly r times the input: (H-1)r - 8 + 9 + (r-1) = rH
        self.deconv = nn.ConvTranspose2d(d, 1, 9, stride=r, padding=4, output_padding=r - 1)

    def forward_y(self, y):
        return self.deconv(self.body(y))


class VDSR(LumaSR):
    def __init__(self, cfg: PeerConfig, depth: int = 20, feats: int = 64):
        super().__init__(cfg)
        layers = [_conv(1, feats, 3), nn.ReLU(inplace=True)]
        for _ in range(depth - 2):
            layers += [_conv(feats, feats, 3), nn.ReLU(inplace=True)]
        self.body = nn.Sequential(*layers, _conv(feats, 1, 3))

    def forward_y(self, y):
        return y + self.body(y)


class DRCN(LumaSR):
    def __init__(self, cfg: PeerConfig, feats: int = 256, recursions: int = 16):
        super().__init__(cfg)
        self.embed = nn.Sequential(_conv(1, feats, 3), nn.ReLU(inplace=True), _conv(feats, feats, 3),
                                   nn.ReLU(inplace=True))
        self.infer = _conv(feats, feats, 3)                  # one layer, its weights shared by every recursion
        self.recon = nn.Sequential(_conv(feats, feats, 3), nn.ReLU(inplace=True), _conv(feats, 1, 3))
        self.ensemble = nn.Parameter(torch.full((recursions,), 1.0 / recursions))

    def forward_y(self, y):
        h, out = self.embed(y), 0
        for w in self.ensemble:
            h = F.relu(self.infer(h))
            out = out + w * (self.recon(h) + y)              # each recursion's prediction, skip included
        return out


class DRRN(LumaSR):
    def __init__(self, cfg: PeerConfig, feats: int = 128, units: int = 25):
        super().__init__(cfg)
        self.units = units
        self.entry = _conv(1, feats, 3)
        self.conv_a, self.conv_b = _conv(feats, feats, 3), _conv(feats, feats, 3)   # shared by the 25 units
        self.exit = _conv(feats, 1, 3)

    def forward_y(self, y):
        h0 = self.entry(y)
        h = h0
        for _ in range(self.units):           # pre-activation residual unit; local residual to the block input
            h = self.conv_b(F.relu(self.conv_a(F.relu(h)))) + h0
        return y + self.exit(F.relu(h))


class MemoryBlock(nn.Module):
    """A residual block recursed ``recursions`` times (shared weights), then a 1x1 gate over the short-term
    memories (each recursion's output) and the long-term ones (the outputs of every earlier block)."""

    def __init__(self, feats: int, recursions: int, n_long: int):
        super().__init__()
        self.recursions = recursions
        self.conv_a, self.conv_b = _conv(feats, feats, 3), _conv(feats, feats, 3)
        self.gate = _conv(feats * (recursions + n_long), feats, 1)

    def forward(self, x, long_term):
        short, h = [], x
        for _ in range(self.recursions):
            h = h + self.conv_b(F.relu(self.conv_a(F.relu(h))))
            short.append(h)
        return self.gate(F.relu(torch.cat(short + long_term, dim=1)))


class MemNet(LumaSR):
    def __init__(self, cfg: PeerConfig, feats: int = 64, blocks: int = 6, recursions: int = 6):
        super().__init__(cfg)
        self.entry = _conv(1, feats, 3)
        self.blocks = nn.ModuleList(MemoryBlock(feats, recursions, m) for m in range(1, blocks + 1))
        self.recon = _conv(feats, 1, 3)                      # shared by the predictions of every block
        self.ensemble = nn.Parameter(torch.full((blocks,), 1.0 / blocks))

    def forward_y(self, y):
        h = self.entry(F.relu(y))
        memories, out = [h], 0
        for block, w in zip(self.blocks, self.ensemble):
            h = block(h, memories)
            memories.append(h)
            out = out + w * (self.recon(F.relu(h)) + y)
        return out


class SRMDNF(nn.Module):
    DEGRADATION_CODE = 15                                     # PCA length of the blur kernel; no noise map (NF)

    def __init__(self, cfg: PeerConfig, feats: int = 128, depth: int = 12):
        super().__init__()
        self.cfg = cfg
        s = cfg.scale
        self.register_buffer("code", torch.zeros(self.DEGRADATION_CODE))
        layers = [_conv(3 + self.DEGRADATION_CODE, feats, 3), nn.ReLU(inplace=True)]
        for _ in range(depth - 2):
            layers += [_conv(feats, feats, 3), nn.BatchNorm2d(feats), nn.ReLU(inplace=True)]
        layers += [_conv(feats, 3 * s * s, 3), nn.PixelShuffle(s)]
        self.body = nn.Sequential(*layers)

    @property
    def scale(self) -> int:
        return self.cfg.scale

    def forward(self, x):
        maps = self.code.to(x).view(1, -1, 1, 1).expand(x.shape[0], -1, *x.shape[2:])
        return self.body(torch.cat([x, maps], dim=1))


class ResidualBlock(nn.Module):
    def __init__(self, feats: int):
        super().__init__()
        self.body = nn.Sequential(_conv(feats, feats, 3), nn.ReLU(inplace=True), _conv(feats, feats, 3))

    def forward(self, x):
        return F.relu(self.body(x) + x)


class CARNBlock(nn.Module):
    """CARN's cascading block: three residual blocks of their own (CARN-M shares one), cascaded by 1x1 fusions."""

    def __init__(self, feats: int):
        super().__init__()
        self.b1, self.b2, self.b3 = (ResidualBlock(feats) for _ in range(3))
        self.c1, self.c2, self.c3 = (nn.Sequential(_conv(feats * k, feats, 1), nn.ReLU(inplace=True)) for k in (2, 3, 4))

    def forward(self, x):
        cat, o = x, x
        for block, fuse in ((self.b1, self.c1), (self.b2, self.c2), (self.b3, self.c3)):
            cat = torch.cat([cat, block(o)], dim=1)
            o = fuse(cat)
        return o


class CARN(CARNM):
    def __init__(self, cfg: PeerConfig, n_feats: int = 64):
        super().__init__(cfg, n_feats=n_feats, groups=1)

    @staticmethod
    def cascading_block(n_feats: int, groups: int) -> nn.Module:
        return CARNBlock(n_feats)


class MSRB(nn.Module):
    def __init__(self, feats: int = 64):
        super().__init__()
        self.conv_3_1, self.conv_5_1 = _conv(feats, feats, 3), _conv(feats, feats, 5)
        self.conv_3_2, self.conv_5_2 = _conv(2 * feats, 2 * feats, 3), _conv(2 * feats, 2 * feats, 5)
        self.confusion = _conv(4 * feats, feats, 1)

    def forward(self, x):
        mid = torch.cat([F.relu(self.conv_3_1(x)), F.relu(self.conv_5_1(x))], dim=1)
        out = torch.cat([F.relu(self.conv_3_2(mid)), F.relu(self.conv_5_2(mid))], dim=1)
        return self.confusion(out) + x


class MSRN(nn.Module):
    DIV2K_MEAN = (0.4488, 0.4371, 0.4040)

    def __init__(self, cfg: PeerConfig, feats: int = 64, blocks: int = 8):
        super().__init__()
        self.cfg = cfg
        s = cfg.scale
        self.head = _conv(3, feats, 3)
        self.body = nn.ModuleList(MSRB(feats) for _ in range(blocks))
        steps = [3] if s == 3 else [2] * int(math.log2(s))
        up = []
        for r in steps:
            up += [_conv(feats, r * r * feats, 3), nn.PixelShuffle(r)]
        self.tail = nn.Sequential(_conv(feats * (blocks + 1), feats, 1), _conv(feats, feats, 3), *up,
                                  _conv(feats, 3, 3))
        self.register_buffer("mean", torch.tensor(self.DIV2K_MEAN).view(1, 3, 1, 1))

    @property
    def scale(self) -> int:
        return self.cfg.scale

    def forward(self, x):
        h = self.head(x - self.mean)
        outs = [h]
        for block in self.body:
            h = block(h)
            outs.append(h)
        return self.tail(torch.cat(outs, dim=1)) + self.mean


CLASSIC_CLASSES = {"srcnn": SRCNN, "fsrcnn": FSRCNN, "vdsr": VDSR, "drcn": DRCN, "drrn": DRRN, "memnet": MemNet,
                   "srmdnf": SRMDNF, "carn": CARN, "msrn": MSRN}
