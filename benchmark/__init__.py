"""awsrn-bench: benchmarking and ablation suite for AWSRN (arXiv 1904.02358) and its BAM variant."""
from .config import AWSRNConfig
from .registry import create_model, get_variant, list_variants, pretrained_weights, register

__version__ = "0.1.0"
__all__ = ["AWSRNConfig", "create_model", "get_variant", "list_variants", "pretrained_weights", "register",
           "__version__"]
