"""Frozen configuration of one AWSRN network. A variant is a config plus a name; an ablation is
``dataclasses.replace(cfg, ...)``."""
from __future__ import annotations

from dataclasses import dataclass, field

DIV2K_RGB_MEAN = (0.4488, 0.4371, 0.4040)
SCALES = (2, 3, 4, 8)
AWMS_KERNELS = (3, 5, 7, 9)
UNITS = ("awru", "ru", "wru")


@dataclass(frozen=True)
class AWSRNConfig:
    """Structure of an AWSRN network (official ``awsrn.py`` / ``awsrnd.py``).

    ``input_range`` and ``mean_shift`` describe the input convention the *weights* were trained
    with; ``forward`` always takes and returns RGB in [0, 1] and converts internally.
    Official code: range 255 with the DIV2K mean shift. BAM repo / super-image BAM: range 1, no shift.
    """

    scale: int = 2
    n_lfb: int = 4
    n_awru: int = 4
    n_feats: int = 32
    block_feats: int = 128
    awms_kernels: tuple[int, ...] = AWMS_KERNELS
    unit: str = "awru"                 # residual unit: 'awru' (paper), 'ru' (plain), 'wru' (wSE weights)
    lrfu: bool = True                  # fuse all unit outputs of an LFB with the 3x3 conv (paper)
    bam: bool = False
    bam_reduction: int = 8
    input_range: float = 255.0
    mean_shift: bool = True
    rgb_mean: tuple[float, float, float] = field(default=DIV2K_RGB_MEAN)

    def __post_init__(self) -> None:
        if self.scale not in SCALES:
            raise ValueError(f"scale must be one of {SCALES}, got {self.scale!r}")
        kernels = tuple(self.awms_kernels)
        if not kernels or any(k not in AWMS_KERNELS for k in kernels) or len(set(kernels)) != len(kernels):
            raise ValueError(
                f"awms_kernels must be a non-empty subset of {AWMS_KERNELS}, got {self.awms_kernels!r}")
        # keep a canonical, sorted tuple so that equal configs compare equal
        object.__setattr__(self, "awms_kernels", tuple(sorted(kernels)))
        for key in ("n_lfb", "n_awru", "n_feats", "block_feats"):
            if int(getattr(self, key)) < 1:
                raise ValueError(f"{key} must be >= 1, got {getattr(self, key)!r}")
        if self.unit not in UNITS:
            raise ValueError(f"unit must be one of {UNITS}, got {self.unit!r}")
        if self.bam and self.n_feats % self.bam_reduction:
            raise ValueError(
                f"BAM needs n_feats divisible by bam_reduction ({self.n_feats} % {self.bam_reduction} != 0)")

    def to_dict(self) -> dict:
        from dataclasses import asdict
        d = asdict(self)
        d["awms_kernels"] = list(self.awms_kernels)
        d["rgb_mean"] = list(self.rgb_mean)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "AWSRNConfig":
        known = set(cls.__dataclass_fields__)
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown AWSRNConfig keys {sorted(unknown)}; expected a subset of {sorted(known)}")
        d = dict(d)
        if "awms_kernels" in d:
            d["awms_kernels"] = tuple(d["awms_kernels"])
        if "rgb_mean" in d:
            d["rgb_mean"] = tuple(d["rgb_mean"])
        return cls(**d)


PEER_SCALES = {"imdn": (2, 3, 4), "carn-m": (2, 3, 4),
               # the paper table's other methods (models/classic.py), at the scales the table reports them
               "srcnn": (2, 3, 4, 8), "fsrcnn": (2, 3, 4, 8), "vdsr": (2, 3, 4, 8), "drcn": (2, 3, 4, 8),
               "drrn": (2, 3, 4), "memnet": (2, 3, 4), "srmdnf": (2, 3, 4), "carn": (2, 3, 4), "msrn": (2, 3, 4, 8)}
MULTI_SCALE_PEERS = ("carn-m",)        # one set of weights for every scale


@dataclass(frozen=True)
class PeerConfig:
    """A peer network: one with official weights (``benchmark.models.peers``) or one of the paper table's other
    methods, measured only (``benchmark.models.classic``); its architecture and the scale it runs at. CARN-M is
    one multi-scale model, so its weights alone do not name a scale."""

    arch: str
    scale: int | None = 2              # None: a multi-scale checkpoint's config (a built model has a scale)

    def __post_init__(self) -> None:
        if self.arch not in PEER_SCALES:
            raise ValueError(f"unknown peer architecture {self.arch!r}; expected one of {sorted(PEER_SCALES)}")
        if self.scale is None and self.arch in MULTI_SCALE_PEERS:
            return
        if self.scale not in PEER_SCALES[self.arch]:
            raise ValueError(f"{self.arch} runs at scales {PEER_SCALES[self.arch]}, got {self.scale!r}")

    def to_dict(self) -> dict:
        return {"arch": self.arch, "scale": self.scale}

    @classmethod
    def from_dict(cls, d: dict) -> "PeerConfig":
        unknown = set(d) - {"arch", "scale"}
        if unknown:
            raise ValueError(f"unknown PeerConfig keys {sorted(unknown)}")
        return cls(**d)


def config_from_dict(d: dict) -> "AWSRNConfig | PeerConfig":
    """The config a native checkpoint stores: a peer's has an ``arch`` key, AWSRN's does not."""
    return PeerConfig.from_dict(d) if "arch" in d else AWSRNConfig.from_dict(d)
