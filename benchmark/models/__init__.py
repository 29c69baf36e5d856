from .awsrn import AWMS, AWRU, AWSRN, LFB
from .bam import BalancedAttention
from .bicubic import Bicubic
from .layers import Scale, WNConv2d
from .peers import CARNM, IMDN, build_peer

__all__ = ["AWSRN", "AWRU", "LFB", "AWMS", "BalancedAttention", "Bicubic", "Scale", "WNConv2d", "IMDN", "CARNM", "build_peer"]
