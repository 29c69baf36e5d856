"""The deploy form of an AWSRN: the same function with fewer, plainer operations.

``reparameterize(model)`` returns a new module in which
* weight norm is folded into plain conv weights;
* each AWRU's and LFB's ``res_scale`` is folded into the conv that precedes it (exact: a scalar times a
  conv is a conv); their ``x_scale`` stays a scalar multiply (it scales an identity path);
* the AWMS branches become one conv of the largest kernel: the kernels are zero-padded, weighted by
  their lambda and summed (exact because PixelShuffle and the sum are linear);
* the output de-normalisation (``* 127.5 + mean*255``, ``/ input_range``) is folded into the fused AWMS
  conv and the skip conv (exact: it is affine and comes after the last conv). The input normalisation
  stays, because folding it into a zero-padded conv would change the borders.
BAM and the skip path are kept. Weights and activations are channels_last (NHWC), and the identity
paths are added in place.
"""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from .models.awsrn import AWSRN, LFB, normalize_input
from .models.layers import WNConv2d


def _plain(conv: WNConv2d, scale: float | torch.Tensor = 1.0) -> nn.Conv2d:
    # built in the source's dtype and device, so that a float64 deploy is exact to float64 rounding
    out = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, padding=conv.padding,
                    bias=conv.bias is not None, dtype=conv.weight_v.dtype, device=conv.weight_v.device)
    with torch.no_grad():
        out.weight.copy_(conv.weight * scale)
        if conv.bias is not None:
            out.bias.copy_(conv.bias * scale)
    return out


class DeployLFB(nn.Module):
    def __init__(self, lfb: LFB):
        super().__init__()
        units = lfb.units()
        self.convs1 = nn.ModuleList([_plain(u.body[0]) for u in units])
        self.convs2 = nn.ModuleList([_plain(u.body[2], u.res_scale.scale.detach()) for u in units])
        # the identity-path scalars as Python floats, applied by in-place ``add_(h, alpha=...)``:
        # no extra tensor is allocated per unit
        self.x_scales = [float(u.x_scale.scale.detach()) for u in units]
        self.reduction = _plain(lfb.reduction, lfb.res_scale.scale.detach())
        self.x_scale = float(lfb.x_scale.scale.detach())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs, h = [], x
        for c1, c2, xs in zip(self.convs1, self.convs2, self.x_scales):
            h = c2(F.relu(c1(h), inplace=True)).add_(h, alpha=xs)
            outs.append(h)
        return self.reduction(torch.cat(outs, dim=1)).add_(x, alpha=self.x_scale)


class DeployAWSRN(nn.Module):
    def __init__(self, model: AWSRN):
        super().__init__()
        cfg = model.cfg
        self.cfg = cfg
        s = cfg.scale
        self.register_buffer("rgb_mean", model.rgb_mean.detach().clone(), persistent=False)
        self.head = _plain(model.head[0])
        self.body = nn.Sequential(*[DeployLFB(b) for b in model.body])
        self.attention = copy.deepcopy(model.attention)
        # output affine: y -> (y * a + c) / input_range, per colour
        a = 127.5 if cfg.mean_shift else 1.0
        like = dict(dtype=model.rgb_mean.dtype, device=model.rgb_mean.device)
        c = model.rgb_mean.detach().view(3) * 255.0 if cfg.mean_shift else torch.zeros(3, **like)
        a, c = a / cfg.input_range, c / cfg.input_range
        kmax = max(model.tail.kernels)
        nf, out_ch = cfg.n_feats, 3 * s * s
        w = torch.zeros(out_ch, nf, kmax, kmax, **like)
        b = torch.zeros(out_ch, **like)
        with torch.no_grad():
            for k in model.tail.kernels:
                conv, lam = model.tail.conv(k), model.tail.lam(k).scale.detach()
                p = (kmax - k) // 2
                w[:, :, p:p + k, p:p + k] += conv.weight * lam
                b += conv.bias * lam
        self.tail = nn.Conv2d(nf, out_ch, kmax, padding=kmax // 2, **like)
        self.skip = _plain(model.skip[0])
        # PixelShuffle sends channel col*s*s + i to colour col: the constant goes on those biases.
        c_ch = c.repeat_interleave(s * s)
        with torch.no_grad():
            self.tail.weight.copy_(w * a)
            self.tail.bias.copy_(b * a)
            self.skip.weight.mul_(a)
            self.skip.bias.mul_(a).add_(c_ch)
        self.pixelshuffle = nn.PixelShuffle(s)
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


def reparameterize(model: nn.Module) -> nn.Module:
    """A deploy copy of ``model`` (the input is left untouched); non-AWSRN models are returned as is."""
    if not isinstance(model, AWSRN):
        return model
    if model.cfg.unit != "awru" or not model.cfg.lrfu:
        raise ValueError(f"the deploy form covers AWRU units with the LRFU (the paper's variants), not "
                         f"unit={model.cfg.unit!r}, lrfu={model.cfg.lrfu}")
    out = DeployAWSRN(model).to(next(model.parameters()).device).eval()
    for attr in ("variant_name", "weights_path"):
        if hasattr(model, attr):
            setattr(out, attr, getattr(model, attr))
    return out
