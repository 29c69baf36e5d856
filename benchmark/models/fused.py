"""Fused (deploy-form) blocks: what each AWSRN block's ``fuse()`` returns.

The same function with fewer, plainer operations (the generic driver is ``benchmark.deploy.reparameterize``):
* weight norm is folded into plain conv weights (:func:`plain_conv`, i.e. ``WNConv2d.fuse``);
* each AWRU's and LFB's ``res_scale`` is folded into the conv that precedes it (exact: a scalar times a
  conv is a conv); their ``x_scale`` stays a scalar multiply (it scales an identity path);
* the AWMS branches become one conv of the largest kernel: the kernels are zero-padded, weighted by
  their lambda and summed (exact because PixelShuffle and the sum are linear);
* the output de-normalisation is folded into the fused AWMS conv and the skip conv (exact: it is affine
  and comes after the last conv). The input normalisation stays, because folding it into a zero-padded
  conv would change the borders.
Weights and activations are channels_last (NHWC), and the identity paths are added in place.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .layers import normalize_input


def plain_conv(weight: torch.Tensor, bias: torch.Tensor | None, scale: float | torch.Tensor = 1.0) -> nn.Conv2d:
    """``nn.Conv2d`` holding ``scale * weight`` (and ``scale * bias``), 'same' padding, in the weight's dtype
    and device, so that a float64 deploy is exact to float64 rounding."""
    out_ch, in_ch, k, _ = weight.shape
    out = nn.Conv2d(in_ch, out_ch, k, padding=k // 2, bias=bias is not None, dtype=weight.dtype,
                    device=weight.device)
    with torch.no_grad():
        out.weight.copy_(weight * scale)
        if bias is not None:
            out.bias.copy_(bias * scale)
    return out


class FusedLFB(nn.Module):
    """An LFB of plain convs: ``relu(c1) -> c2 (res_scale folded in) + x_scale * h`` per unit, then the
    fused reduction (the block's res_scale folded in) + the block's x_scale times its input."""

    def __init__(self, convs1: list[nn.Conv2d], convs2: list[nn.Conv2d], x_scales: list[float],
                 reduction: nn.Conv2d, x_scale: float):
        super().__init__()
        self.convs1, self.convs2 = nn.ModuleList(convs1), nn.ModuleList(convs2)
        # the identity-path scalars as Python floats, applied by in-place ``add_(h, alpha=...)``:
        # no extra tensor is allocated per unit
        self.x_scales = list(x_scales)
        self.reduction, self.x_scale = reduction, float(x_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs, h = [], x
        for c1, c2, xs in zip(self.convs1, self.convs2, self.x_scales):
            h = c2(F.relu(c1(h), inplace=True)).add_(h, alpha=xs)
            outs.append(h)
        return self.reduction(torch.cat(outs, dim=1)).add_(x, alpha=self.x_scale)


class FusedAWSRN(nn.Module):
    """The deploy form of an AWSRN: head, fused LFBs, attention (kept), one fused AWMS conv and the skip
    conv (both with the output affine folded in), PixelShuffle. Built by ``AWSRN.fuse()``."""

    def __init__(self, cfg, rgb_mean: torch.Tensor, head: nn.Conv2d, body: list[nn.Module],
                 attention: nn.Module | None, tail: nn.Conv2d, skip: nn.Conv2d):
        super().__init__()
        self.cfg = cfg
        self.register_buffer("rgb_mean", rgb_mean.detach().clone(), persistent=False)
        self.head, self.body, self.attention = head, nn.Sequential(*body), attention
        self.tail, self.skip = tail, skip
        self.pixelshuffle = nn.PixelShuffle(cfg.scale)
        # oneDNN's CPU convolutions run faster on NHWC tensors (about 1.3x here for 3x3 convs)
        self.to(memory_format=torch.channels_last)

    @property
    def scale(self) -> int:
        return self.cfg.scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = normalize_input(x, self.cfg, self.rgb_mean).contiguous(memory_format=torch.channels_last)
        h = self.body(self.head(x))
        if self.attention is not None:
            h = self.attention(h)
        return self.pixelshuffle(self.tail(h).add_(self.skip(x))).contiguous()
