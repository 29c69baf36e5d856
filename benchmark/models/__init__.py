from torch import nn

from ..config import PeerConfig
from .awsrn import AWMS, AWRU, AWSRN, LFB
from .bam import BalancedAttention
from .bicubic import Bicubic
from .classic import CLASSIC_CLASSES
from .layers import Scale, WNConv2d
from .peers import CARNM, IMDN, PEER_CLASSES

__all__ = ["AWSRN", "AWRU", "LFB", "AWMS", "BalancedAttention", "Bicubic", "Scale", "WNConv2d", "IMDN", "CARNM", "build_peer"]


def build_peer(cfg: PeerConfig) -> nn.Module:
    """A peer network: one with official weights (peers.py) or one of the paper table's methods (classic.py)."""
    return {**PEER_CLASSES, **CLASSIC_CLASSES}[cfg.arch](cfg)
