"""The variant registry: a name -> a frozen config (per scale) plus the paper's reference numbers.

Patterned on timm (``register``, ``list_variants('awsrn*')`` with shell wildcards,
``create_model(name, **overrides)``), but registering a name twice raises.
"""
from __future__ import annotations

import dataclasses
import fnmatch
import os
import re
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from .config import AWMS_KERNELS, PEER_SCALES, AWSRNConfig, PeerConfig
from .paper import published_row


@dataclass(frozen=True)
class Variant:
    name: str
    config: AWSRNConfig | None          # None for the bicubic baseline
    paper_name: str | None              # the method's name in the paper table, if it is there
    description: str
    aliases: tuple[str, ...] = ()
    peer: str | None = None             # a peer architecture (benchmark.models.peers) instead of AWSRN

    @property
    def is_baseline(self) -> bool:
        return self.config is None and self.peer is None

    @property
    def scales(self) -> tuple[int, ...]:
        return PEER_SCALES[self.peer] if self.peer else (2, 3, 4, 8)

    def config_for(self, scale: int, **overrides) -> AWSRNConfig | PeerConfig:
        if self.peer:
            if overrides:
                raise ValueError(f"{self.name!r} is a peer with a fixed structure; no overrides (got {sorted(overrides)})")
            return PeerConfig(self.peer, scale)
        if self.config is None:
            raise ValueError(f"{self.name!r} is a baseline without an AWSRN config")
        fields = [f.name for f in dataclasses.fields(self.config) if f.name != "scale"]
        unknown = sorted(set(overrides) - set(fields))
        if unknown:
            raise ValueError(f"override {unknown[0]!r} (--set {unknown[0]}=...): not a field of {self.name}'s config; "
                             "expected one of "
                             f"{', '.join(fields)}")
        return dataclasses.replace(self.config, scale=scale, **overrides)

    def paper(self, scale: int) -> dict | None:
        """The published row (params_k, multi_adds_g, PSNR/SSIM per dataset) at ``scale``: the AWSRN
        paper's table, or for a peer outside it its own paper."""
        return published_row(self.paper_name, scale) if self.paper_name else None


class Registry:
    def __init__(self) -> None:
        self._variants: dict[str, Variant] = {}
        self._aliases: dict[str, str] = {}

    def register(self, variant: Variant) -> Variant:
        for key in (variant.name, *variant.aliases):
            if key in self._variants or key in self._aliases:
                raise KeyError(f"variant name {key!r} is already registered")
        self._variants[variant.name] = variant
        for alias in variant.aliases:
            self._aliases[alias] = variant.name
        return variant

    def get(self, name: str) -> Variant:
        key = self._aliases.get(name, name)
        if key not in self._variants:
            close = fnmatch.filter(self._variants, f"*{name}*")[:5]
            hint = f"; did you mean {close}?" if close else ""
            raise KeyError(f"unknown model {name!r}{hint} (see `awsrn-bench list`)")
        return self._variants[key]

    def list(self, pattern: str = "*") -> list[str]:
        names = [n for n in self._variants if fnmatch.fnmatchcase(n, pattern)]
        names += [a for a in self._aliases if fnmatch.fnmatchcase(a, pattern)]
        return sorted(set(names), key=_natural_key)

    def __contains__(self, name: str) -> bool:
        return name in self._variants or name in self._aliases


def _natural_key(s: str):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s)]


REGISTRY = Registry()
register = REGISTRY.register

# The four released variants (paper_notes.md section 6.1).
_BASES = {
    "awsrn-s": (AWSRNConfig(n_lfb=1, n_awru=4, n_feats=32, block_feats=128), "AWSRN-S", "1 LFB x 4 AWRU, 32 feats"),
    "awsrn-sd": (AWSRNConfig(n_lfb=1, n_awru=8, n_feats=16, block_feats=128), "AWSRN-SD", "1 LFB x 8 AWRU, 16 feats"),
    "awsrn-m": (AWSRNConfig(n_lfb=3, n_awru=4, n_feats=32, block_feats=128), "AWSRN-M", "3 LFB x 4 AWRU, 32 feats"),
    "awsrn-l": (AWSRNConfig(n_lfb=4, n_awru=4, n_feats=32, block_feats=128), "AWSRN", "4 LFB x 4 AWRU, 32 feats (the paper's AWSRN)"),
}


# The paper table's other methods with a fully published structure (models/classic.py).
_CLASSIC = {
    "srcnn": ("SRCNN", "SRCNN (Dong et al. 2016), 9-5-5 on bicubic-upscaled Y"),
    "fsrcnn": ("FSRCNN", "FSRCNN (Dong et al. 2016), d56 s12 m4 on Y, 9x9 transposed conv"),
    "vdsr": ("VDSR", "VDSR (Kim et al. 2016), 20 layers of 64 on bicubic-upscaled Y"),
    "drcn": ("DRCN", "DRCN (Kim et al. 2016), one 256-filter layer recursed 16 times, on bicubic-upscaled Y"),
    "drrn": ("DRRN", "DRRN B1U25 (Tai et al. 2017), 25 recursions of one residual unit, on bicubic-upscaled Y"),
    "memnet": ("MemNet", "MemNet M6R6 (Tai et al. 2017), 6 memory blocks, on bicubic-upscaled Y"),
    "srmdnf": ("SRMDNF", "SRMDNF (Zhang et al. 2018), 12 convs of 128 on LR RGB and 15 degradation maps"),
    "carn": ("CARN", "CARN (Ahn et al. 2018), one multi-scale model (x2/x3/x4)"),
    "msrn": ("MSRN", "MSRN (Li et al. 2018), 8 multi-scale residual blocks of 64"),
}


def _subsets(kernels=AWMS_KERNELS):
    from itertools import combinations
    for r in range(1, len(kernels)):
        yield from combinations(kernels, r)


def _register_defaults() -> None:
    register(Variant("bicubic", None, None, "MATLAB bicubic upscaling (baseline, no weights)"))
    register(Variant("imdn", None, "IMDN", "IMDN (Hui et al. 2019), peer: 6 IMDBs, 64 feats; official weights "
                                           "../shared/peers/imdn/IMDN_x{2,3,4}.pth", peer="imdn"))
    register(Variant("carn-m", None, "CARN-M", "CARN-M (Ahn et al. 2018), peer: one multi-scale model (x2/x3/x4); "
                                               "official weights ../shared/peers/carn/carn_m.pth", peer="carn-m"))
    for name, (paper_name, desc) in _CLASSIC.items():
        register(Variant(name, None, paper_name, f"{desc}; no trained weights reachable here: counted and timed only",
                         peer=name))
    for name, (cfg, paper_name, desc) in _BASES.items():
        aliases = ("awsrn",) if name == "awsrn-l" else ()
        register(Variant(name, cfg, paper_name, desc, aliases))
        # BAM as in the BAM repo / super-image: after the body, inputs in [0, 1], no mean shift.
        register(Variant(f"{name}-bam", dataclasses.replace(cfg, bam=True, input_range=1.0, mean_shift=False),
                         None, desc + " + balanced attention (BAM)"))
        for tag, change, what in (("ru", {"unit": "ru"}, "plain residual units (ablation)"),
                                  ("wru", {"unit": "wru"}, "wRU units with wSE-predicted weights (ablation)"),
                                  ("nolrfu", {"lrfu": False}, "no LRFU fusion in the LFBs (ablation)")):
            register(Variant(f"{name}-{tag}", dataclasses.replace(cfg, **change), None, f"{desc}, {what}"))
        for sub in _subsets():
            tag = "".join(str(k) for k in sub)
            register(Variant(f"{name}-awms{tag}", dataclasses.replace(cfg, awms_kernels=sub), None,
                             desc + f", AWMS pruned to kernels {sub}"))


_register_defaults()


def list_variants(pattern: str = "*") -> list[str]:
    """Registered names matching a shell-style wildcard, in natural order."""
    return REGISTRY.list(pattern)


def get_variant(name: str) -> Variant:
    return REGISTRY.get(name)


CHECKPOINTS_ENV = "AWSRN_CHECKPOINTS"
PEERS_ENV = "AWSRN_PEERS"
# The peers' official weights under the peers root (README of ../shared/peers); read there, never copied.
PEER_WEIGHTS = {("imdn", 2): "imdn/IMDN_x2.pth", ("imdn", 3): "imdn/IMDN_x3.pth", ("imdn", 4): "imdn/IMDN_x4.pth",
                ("carn-m", 2): "carn/carn_m.pth", ("carn-m", 3): "carn/carn_m.pth", ("carn-m", 4): "carn/carn_m.pth"}


def checkpoints_dir() -> Path:
    """Where this project's trained checkpoints are: ``$AWSRN_CHECKPOINTS``, else ``checkpoints/`` of the
    repository the package is installed from (the Makefile's editable install)."""
    env = os.environ.get(CHECKPOINTS_ENV)
    return Path(env) if env else Path(__file__).resolve().parents[1] / "checkpoints"


def peers_root(data_root: str | Path | None = None) -> Path | None:
    """``$AWSRN_PEERS``, else ``peers/`` beside the data root (``data_root``, else ``$AWSRN_DATA``): ../shared/peers
    beside ../shared/data."""
    env = os.environ.get(PEERS_ENV)
    if env:
        return Path(env) if Path(env).is_dir() else None
    root = data_root if data_root is not None else os.environ.get("AWSRN_DATA")
    if root and (Path(root).parent / "peers").is_dir():
        return Path(root).parent / "peers"
    return None


def _peer_weights(variant: Variant, scale: int, data_root=None) -> Path:
    rel = PEER_WEIGHTS.get((variant.name, scale))
    if rel is None and not any(n == variant.name for n, _ in PEER_WEIGHTS):
        raise FileNotFoundError(f"{variant.name} has no trained weights reachable here: it is counted and timed "
                                "only (complexity, latency)")
    if rel is None:
        raise FileNotFoundError(f"{variant.name} has no official weights at x{scale}; it has them at x"
                                + "/x".join(str(s) for (n, s) in PEER_WEIGHTS if n == variant.name))
    root = peers_root(data_root)
    if root is None or not (root / rel).is_file():
        where = root / rel if root is not None else f"<peers root>/{rel}"
        raise FileNotFoundError(f"no official weights of {variant.name} x{scale}: expected {where} (${PEERS_ENV}, "
                                "else peers/ beside the data root $AWSRN_DATA)")
    return root / rel


def pretrained_weights(name: str, scale: int, data_root: str | Path | None = None) -> Path:
    """The trained weights of a variant (an alias resolves to its name): for an AWSRN variant the checkpoint this
    project trained, ``<checkpoints_dir>/<name>-x<scale>/model.safetensors`` with its ``recipe.json`` and
    ``train_log.csv`` beside it; for a peer its official weights under ``peers_root(data_root)``."""
    variant = REGISTRY.get(name)
    if variant.peer:
        return _peer_weights(variant, scale, data_root)
    path = checkpoints_dir() / f"{variant.name}-x{scale}" / "model.safetensors"
    if not path.is_file():
        have = sorted(p.parent.name for p in checkpoints_dir().glob("*/model.safetensors"))
        raise FileNotFoundError(f"no trained checkpoint of {variant.name} x{scale}: expected {path} "
                                f"(${CHECKPOINTS_ENV} sets the folder); there are: {', '.join(have) or 'none'}")
    return path


def pretrained_scales(name: str) -> tuple[int, ...]:
    """The scales at which ``create_model(name, scale, pretrained=True)`` finds trained weights."""
    variant = REGISTRY.get(name)
    if variant.peer:
        root = peers_root()
        files = {s: PEER_WEIGHTS.get((variant.name, s)) for s in variant.scales}
        return tuple(s for s, rel in files.items() if root is not None and rel and (root / rel).is_file())
    root = checkpoints_dir()
    return tuple(s for s in variant.scales if (root / f"{variant.name}-x{s}" / "model.safetensors").is_file())


def create_model(name: str, scale: int = 2, weights: str | Path | None = None, pretrained: bool = False,
                 **overrides) -> nn.Module:
    """Build a registered model at ``scale``; ``weights`` loads any readable checkpoint strictly, ``pretrained``
    the checkpoint this project trained for it, or a peer's official weights (``pretrained_weights``; as timm's
    ``pretrained=True``).

    ``overrides`` replace fields of the variant's :class:`AWSRNConfig` (None values are ignored, so
    CLI defaults never override a variant's own settings).
    """
    from .checkpoints import Provenance, load_weights, read_checkpoint, with_input_convention
    from .models import AWSRN, Bicubic, build_peer

    overrides = {k: v for k, v in overrides.items() if v is not None}
    variant = REGISTRY.get(name)
    if pretrained:
        if weights is not None:
            raise ValueError(f"{name}: give weights ({weights}) or pretrained, not both")
        if variant.is_baseline:
            raise ValueError(f"{name!r} takes no weights, so it has no pretrained checkpoint")
        weights = pretrained_weights(name, scale)
    if variant.is_baseline:
        if weights is not None:
            raise ValueError(f"{name!r} takes no weights (got {weights})")
        if overrides:
            raise ValueError(f"{name!r} takes no config overrides (got {sorted(overrides)})")
        model = Bicubic(scale)
        model.provenance = Provenance(variant.name)
        return model
    cfg = variant.config_for(scale, **overrides)
    ck = read_checkpoint(weights) if weights is not None else None
    if ck is not None:
        cfg = with_input_convention(cfg, ck)
    model = build_peer(cfg) if variant.peer else AWSRN(cfg)
    model.provenance = Provenance(variant.name)
    if ck is not None:
        load_weights(model, weights, ck)
    return model
