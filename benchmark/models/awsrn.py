"""AWSRN: Lightweight Image Super-Resolution with Adaptive Weighted Learning Network.

Wang, Li, Shi 2019, arXiv 1904.02358; official code github.com/ChaofWang/AWSRN (``awsrn.py``,
``awsrnd.py``). Module and parameter names reproduce the official state-dict keys
(``head.0``, ``body.{i}.b{j}.body.{0,2}``, ``body.{i}.reduction``, ``tail.tail_k{k}``,
``tail.scale_k{k}.scale``, ``skip.0``) so official checkpoints load without renaming.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..config import AWSRNConfig
from .bam import BalancedAttention
from .fused import FusedAWSRN, FusedLFB, plain_conv
from .layers import Scale, WNConv2d, normalize_input

__all__ = ["AWRU", "LFB", "AWMS", "AWSRN", "normalize_input"]


class WSE(nn.Module):
    """wRU's weight predictor (Fast and accurate SISR with weighted residual units, arXiv 1811.06878),
    as built here: global average -> 1x1 conv (n_feats -> n_feats/4) -> ReLU -> 1x1 conv (-> 2) ->
    2*sigmoid, giving per-image (lambda_res, lambda_x) that start near 1 like AWRU's scalars."""

    def __init__(self, n_feats: int):
        super().__init__()
        hidden = max(1, n_feats // 4)
        self.fc1 = nn.Conv2d(n_feats, hidden, 1)
        self.fc2 = nn.Conv2d(hidden, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 2 * torch.sigmoid(self.fc2(torch.relu(self.fc1(x.mean(dim=(2, 3), keepdim=True)))))


class AWRU(nn.Module):
    """Adaptive weighted residual unit: res_scale * body(x) + x_scale * x (both scalars init 1).

    ``unit='ru'`` is the plain residual unit body(x) + x; ``unit='wru'`` predicts the two weights with
    a :class:`WSE` from the input (the residual-unit ablation)."""

    def __init__(self, n_feats: int, block_feats: int, unit: str = "awru"):
        super().__init__()
        self.unit = unit
        if unit == "awru":
            self.res_scale = Scale(1.0)
            self.x_scale = Scale(1.0)
        elif unit == "wru":
            self.wse = WSE(n_feats)
        self.body = nn.Sequential(
            WNConv2d(n_feats, block_feats, 3), nn.ReLU(inplace=True), WNConv2d(block_feats, n_feats, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.unit == "awru":
            return self.res_scale(self.body(x)) + self.x_scale(x)
        if self.unit == "wru":
            w = self.wse(x)
            return w[:, :1] * self.body(x) + w[:, 1:] * x
        return self.body(x) + x


class LFB(nn.Module):
    """Local fusion block: a chain of AWRUs whose outputs are concatenated and fused by a 3x3 conv
    (the LRFU), plus the block's own two adaptive scalars. With ``lrfu=False`` (ablation) the last
    unit's output takes the fused output's place."""

    def __init__(self, n_feats: int, block_feats: int, n_awru: int, unit: str = "awru", lrfu: bool = True):
        super().__init__()
        self.n_awru = n_awru
        for j in range(n_awru):  # attributes b0, b1, ... as in the official code
            self.add_module(f"b{j}", AWRU(n_feats, block_feats, unit))
        self.reduction = WNConv2d(n_feats * n_awru, n_feats, 3) if lrfu else None
        self.res_scale = Scale(1.0)
        self.x_scale = Scale(1.0)

    def units(self) -> list[AWRU]:
        return [getattr(self, f"b{j}") for j in range(self.n_awru)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs, h = [], x
        for unit in self.units():
            h = unit(h)
            outs.append(h)
        fused = self.reduction(torch.cat(outs, dim=1)) if self.reduction is not None else h
        return self.res_scale(fused) + self.x_scale(x)

    def fuse(self) -> FusedLFB:
        """The same block with plain convs, each res_scale folded into the conv before it (AWRU units with
        the LRFU, the paper's form; the ablation units have no fixed scalars to fold)."""
        units = self.units()
        if self.reduction is None or any(u.unit != "awru" for u in units):
            raise ValueError(f"the deploy form covers AWRU units with the LRFU (the paper's variants), not "
                             f"unit={units[0].unit!r}, lrfu={self.reduction is not None}")
        return FusedLFB([u.body[0].fuse() for u in units],
                        [u.body[2].fuse(u.res_scale.scale.detach()) for u in units],
                        [float(u.x_scale.scale.detach()) for u in units],
                        self.reduction.fuse(self.res_scale.scale.detach()), float(self.x_scale.scale.detach()))


class AWMS(nn.Module):
    """Adaptive weighted multi-scale reconstruction: sum_k PixelShuffle(lambda_k * conv_k(x)).

    ``kernels`` is any non-empty subset of (3, 5, 7, 9): a subset is a pruned AWMS.
    """

    def __init__(self, n_feats: int, scale: int, kernels: tuple[int, ...], n_colors: int = 3):
        super().__init__()
        self.kernels = tuple(kernels)
        out_feats = scale * scale * n_colors
        for k in self.kernels:
            self.add_module(f"tail_k{k}", WNConv2d(n_feats, out_feats, k))
            self.add_module(f"scale_k{k}", Scale(0.25))
        self.pixelshuffle = nn.PixelShuffle(scale)
        # the training-time form (train --awms-one-conv): one conv of the largest kernel whose weights are built
        # from the branches' at every call; a computation choice, not structure, so not in the state dict
        self.one_conv = False

    # The state-dict names of branch k (kept from the official code, so its checkpoints load as they are).
    # Everything outside this class asks these methods instead of rebuilding the strings.
    @staticmethod
    def conv_name(k: int) -> str:
        return f"tail_k{k}"

    @staticmethod
    def lambda_name(k: int) -> str:
        return f"scale_k{k}"

    @classmethod
    def branch_keys(cls, k: int, prefix: str = "tail.") -> tuple[str, str]:
        """State-dict key prefixes of branch k's conv and lambda inside a model whose AWMS is ``prefix``."""
        return f"{prefix}{cls.conv_name(k)}.", f"{prefix}{cls.lambda_name(k)}."

    @classmethod
    def kernels_in(cls, state_dict, prefix: str = "tail.") -> tuple[int, ...]:
        """The AWMS kernels a state dict holds (a pruned checkpoint holds a subset)."""
        from ..config import AWMS_KERNELS
        return tuple(k for k in AWMS_KERNELS if f"{prefix}{cls.conv_name(k)}.weight_v" in state_dict)

    def conv(self, k: int) -> nn.Module:
        return getattr(self, self.conv_name(k))

    def lam(self, k: int) -> nn.Module:
        """Branch k's learned weight (a Scale module; ``.scale`` is the parameter)."""
        return getattr(self, self.lambda_name(k))

    def lambdas(self) -> dict[int, float]:
        return {k: float(self.lam(k).scale.detach()) for k in self.kernels}

    def branch(self, k: int, x: torch.Tensor) -> torch.Tensor:
        """Output of one branch (after lambda and PixelShuffle)."""
        return self.pixelshuffle(self.lam(k)(self.conv(k)(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.one_conv:
            # PixelShuffle and the lambdas are linear, so the sum of the branches is one conv whose kernel is the
            # lambda-weighted sum of the zero-padded kernels: 81 taps per pixel instead of 3^2+5^2+7^2+9^2 = 164,
            # and gradients reach every branch's weight_v, weight_g, bias and lambda through that sum
            w, b = self.combined_weights()
            return self.pixelshuffle(F.conv2d(x, w, b, padding=max(self.kernels) // 2))
        out = None
        for k in self.kernels:
            y = self.branch(k, x)
            out = y if out is None else out + y
        return out

    def combined_weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(weight, bias) of the one conv of the largest kernel equal to the sum of the branches before
        PixelShuffle: each kernel zero-padded to the largest and weighted by its lambda, summed in kernel order.
        Differentiable (the ``one_conv`` training form); :meth:`fused_weights` is its detached copy."""
        kmax = max(self.kernels)
        w = b = None
        for k in self.kernels:
            conv, lam = self.conv(k), self.lam(k).scale
            p = (kmax - k) // 2
            wk, bk = F.pad(conv.weight * lam, (p, p, p, p)), conv.bias * lam
            w, b = (wk, bk) if w is None else (w + wk, b + bk)
        return w, b

    def fused_weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`combined_weights` for the deploy form (no graph to the parameters)."""
        with torch.no_grad():
            return self.combined_weights()

    def fuse(self) -> nn.Sequential:
        """One conv of the largest kernel, then PixelShuffle."""
        return nn.Sequential(plain_conv(*self.fused_weights()), nn.PixelShuffle(self.pixelshuffle.upscale_factor))


class AWSRN(nn.Module):
    """AWSRN and its variants (S, SD, M, L, BAM, pruned AWMS), built from an :class:`AWSRNConfig`.

    ``forward`` takes RGB in [0, 1] of shape (N, 3, h, w) and returns (N, 3, s*h, s*w) in [0, 1]
    (not clamped); the input convention the weights expect is handled inside.
    """

    def __init__(self, cfg: AWSRNConfig):
        super().__init__()
        self.cfg = cfg
        s, nf = cfg.scale, cfg.n_feats
        self.register_buffer("rgb_mean", torch.tensor(cfg.rgb_mean).view(1, 3, 1, 1), persistent=False)
        self.head = nn.Sequential(WNConv2d(3, nf, 3))
        self.body = nn.Sequential(*[LFB(nf, cfg.block_feats, cfg.n_awru, cfg.unit, cfg.lrfu)
                                    for _ in range(cfg.n_lfb)])
        # BAM on n_feats channels (the BAM repo uses block_feats // 4, which equals n_feats for S/M/L;
        # for SD it would not fit, so the channel count follows n_feats).
        self.attention = BalancedAttention(nf, cfg.bam_reduction) if cfg.bam else None
        self.tail = AWMS(nf, s, cfg.awms_kernels)
        self.skip = nn.Sequential(WNConv2d(3, 3 * s * s, 3), nn.PixelShuffle(s))

    @property
    def scale(self) -> int:
        return self.cfg.scale

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return normalize_input(x, self.cfg, self.rgb_mean)

    def _denormalize(self, y: torch.Tensor) -> torch.Tensor:
        if self.cfg.mean_shift:
            y = y * 127.5 + self.rgb_mean * 255.0
        return y / self.cfg.input_range

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised input -> the features the AWMS tail receives."""
        h = self.body(self.head(x))
        return self.attention(h) if self.attention is not None else h

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.normalize(x)
        return self._denormalize(self.tail(self.features(x)) + self.skip(x))

    def fuse(self) -> FusedAWSRN:
        """The deploy form (``benchmark.models.fused``): every block fused, and the output de-normalisation
        ``(y * a + c) / input_range`` folded into the fused AWMS conv and the skip conv (it is affine and comes
        after the last conv; PixelShuffle sends channel col*s*s + i to colour col, so c goes on those biases)."""
        import copy
        cfg, s = self.cfg, self.cfg.scale
        a = (127.5 if cfg.mean_shift else 1.0) / cfg.input_range
        c = (self.rgb_mean.detach().view(3) * 255.0 if cfg.mean_shift
             else torch.zeros(3, dtype=self.rgb_mean.dtype, device=self.rgb_mean.device)) / cfg.input_range
        w, b = self.tail.fused_weights()
        skip = self.skip[0].fuse(a)
        with torch.no_grad():
            skip.bias.add_(c.to(skip.bias.dtype).repeat_interleave(s * s))
        return FusedAWSRN(cfg, self.rgb_mean, self.head[0].fuse(), [blk.fuse() for blk in self.body],
                          copy.deepcopy(self.attention), plain_conv(w, b, a), skip)
