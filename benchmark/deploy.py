"""``reparameterize(model)``: the deploy form of any model, block by block.

As timm's ``reparameterize_model``: a module that has ``fuse()`` is replaced by what it returns, and the
walk goes down the children of every other module. Each block knows its own fusion (``WNConv2d.fuse``,
``LFB.fuse``, ``AWMS.fuse``, ``AWSRN.fuse``; what is folded and why is in ``benchmark.models.fused``).
A model with nothing to fuse (bicubic, the peers) is returned as it is. The input model is never changed.
"""
from __future__ import annotations

import copy

from torch import nn


def _fuse_children(module: nn.Module) -> None:
    for name, child in module.named_children():
        if hasattr(child, "fuse"):
            setattr(module, name, child.fuse())
        else:
            _fuse_children(child)


def reparameterize(model: nn.Module) -> nn.Module:
    """A deploy copy of ``model`` in eval mode, on the model's device, carrying its provenance."""
    if hasattr(model, "fuse"):
        out = model.fuse()
    elif any(hasattr(m, "fuse") for m in model.modules()):
        out = copy.deepcopy(model)
        _fuse_children(out)
    else:
        return model
    if hasattr(model, "provenance"):
        out.provenance = model.provenance
    return out.eval()
