"""super-image's ``AwsrnModel`` (PyPI ``super-image``), for side-by-side checks and timings, and its other model
families (CARN, MSRN) as an independent count of the peers built in ``models/classic.py``.

super-image imports torchvision when its package is imported, but only its training datasets use it
(``super_image.data.datasets``: ``from torchvision.transforms import transforms``); the model classes
never do. PyPI's torchvision does not import beside the CPU torch build used here, so when torchvision
is missing the import runs with a placeholder ``torchvision.transforms`` that is removed again right
after. Install: ``pip install --no-deps super-image==0.2.0 h5py huggingface-hub opencv-python-headless``
(``make`` installs it into .venv).
"""
from __future__ import annotations

import importlib
import sys
import types


class SuperImageUnavailable(RuntimeError):
    pass


def import_awsrn():
    """(AwsrnModel, AwsrnConfig) from super-image, or SuperImageUnavailable with the reason."""
    return import_family("awsrn")


def import_family(family: str):
    """(<Family>Model, <Family>Config) of one of super-image's model families ('awsrn', 'carn', 'msrn', ...), or
    SuperImageUnavailable with the reason."""
    names = (f"super_image.models.{family}.modeling_{family}", f"super_image.models.{family}.configuration_{family}")
    placeholders = {}
    try:
        importlib.import_module("torchvision.transforms")
    except Exception:
        tv, tvt = types.ModuleType("torchvision"), types.ModuleType("torchvision.transforms")
        tvt.transforms = types.SimpleNamespace()
        tv.transforms = tvt
        placeholders = {"torchvision": tv, "torchvision.transforms": tvt}
    saved = {k: sys.modules.get(k) for k in placeholders}
    sys.modules.update(placeholders)
    try:
        modeling, configuration = (importlib.import_module(n) for n in names)
    except ImportError as exc:
        raise SuperImageUnavailable(
            f"super-image cannot be imported ({exc}); install it with "
            "`pip install --no-deps super-image==0.2.0 h5py huggingface-hub opencv-python-headless`") from exc
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v
    stem = family.capitalize()
    return getattr(modeling, f"{stem}Model"), getattr(configuration, f"{stem}Config")


def build(cfg):
    """super-image's model with the structure of one of our :class:`AWSRNConfig`s."""
    AwsrnModel, AwsrnConfig = import_awsrn()
    if tuple(cfg.awms_kernels) != (3, 5, 7, 9):
        raise ValueError("super-image's AWMS always has the four branches 3, 5, 7, 9")
    conf = AwsrnConfig(scale=cfg.scale, n_resblocks=cfg.n_lfb, n_awru=cfg.n_awru, n_feats=cfg.n_feats,
                       block_feats=cfg.block_feats, bam=cfg.bam)
    return AwsrnModel(conf).eval()
