"""torch.hub entry points: ``torch.hub.load(REPO, "awsrn_s", scale=4, pretrained=True)`` with REPO a clone of this
repository and ``source="local"`` (or ``owner/awsrn-bench`` from GitHub). Each entry is ``create_model`` for one
registered variant; ``pretrained`` loads the checkpoint this project trained (``checkpoints/<model>-x<scale>``)."""
# torch.hub imports this file with the repository folder on sys.path: the package beside it builds the models
from benchmark.registry import create_model

dependencies = ["torch", "numpy", "safetensors"]


def _entry(name: str):
    def load(scale: int = 4, pretrained: bool = False, **overrides):
        return create_model(name, scale=scale, pretrained=pretrained, **overrides)
    load.__name__ = name.replace("-", "_")
    load.__doc__ = (f"{name} at ``scale`` (2, 3, 4 or 8); ``pretrained=True``: this project's trained checkpoint "
                    f"(``checkpoints/{name}-x<scale>``); ``overrides``: fields of its config, as create_model's.")
    return load


awsrn_s = _entry("awsrn-s")
awsrn_sd = _entry("awsrn-sd")
awsrn_m = _entry("awsrn-m")
awsrn_l = _entry("awsrn-l")
