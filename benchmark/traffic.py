"""Memory traffic of one forward, and the latency floor it sets on a GPU.

Every aten op the forward executes reads its tensor inputs and writes its outputs; views move nothing.
Counted on the ``meta`` device (shapes and dtypes only, no arithmetic) with a ``TorchDispatchMode``, so a
720p count costs no compute. The floor is the traffic of this execution order, op by op, divided by the
device's memory bandwidth: a kernel can run no faster than it moves its bytes, so ``latency_ms / floor_ms``
says how far a measured latency is from the hardware (1.0 would be a forward bound by bandwidth alone).
Written here because no library counts bytes per op (fvcore and torch's ``FlopCounterMode`` count FLOPs).

Elements are counted, not bytes, and the precision's width is applied afterwards: under fp16/bf16 autocast
every activation is taken at 2 bytes, which keeps the floor a lower bound (a few ops stay in float32).
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

# Peak memory bandwidth (GB/s) of the GPUs this project is lent, from the vendors' data sheets; the first
# name found in the device name applies. Other devices: pass ``bandwidth_gbs``.
BANDWIDTH_GBS = {"H200": 4800.0, "H100 PCIe": 2000.0, "H100 NVL": 3900.0, "H100": 3350.0,
                 "A100-SXM4-80GB": 2039.0, "A100": 1555.0}
WIDTH = {"fp32": 4, "fp16": 2, "bf16": 2}


def bandwidth_gbs(device_name: str) -> float | None:
    for key, value in BANDWIDTH_GBS.items():
        if key in device_name:
            return value
    return None


@dataclass(frozen=True)
class Traffic:
    activation_elems: int        # elements read and written by the ops, weights excluded
    weight_elems: int            # parameter and buffer elements read
    n_ops: int

    def bytes(self, precision: str = "fp32") -> int:
        w = WIDTH[precision]
        return (self.activation_elems + self.weight_elems) * w

    def floor_ms(self, gbs: float | None, precision: str = "fp32") -> float:
        return self.bytes(precision) / (gbs * 1e9) * 1e3 if gbs else math.nan


class _Counter(TorchDispatchMode):
    def __init__(self, weights: set[int]):
        super().__init__()
        self.weights, self.act, self.w, self.n = weights, 0, 0, 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if func.is_view:
            return out
        self.n += 1
        for t in tree_flatten((args, kwargs))[0]:
            if isinstance(t, torch.Tensor):
                if id(t) in self.weights:
                    self.w += t.numel()
                else:
                    self.act += t.numel()
        self.act += sum(t.numel() for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor))
        return out


def forward_traffic(model: nn.Module, shape: tuple[int, ...], channels_last: bool = False) -> Traffic:
    """Elements one forward of ``model`` on an input of ``shape`` (N, 3, h, w) reads and writes."""
    meta = copy.deepcopy(model).to("meta")
    if channels_last:
        meta = meta.to(memory_format=torch.channels_last)
    weights = {id(t) for t in [*meta.parameters(), *meta.buffers()]}
    x = torch.empty(shape, device="meta")
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    counter = _Counter(weights)
    with torch.inference_mode(), counter:
        meta(x)
    return Traffic(counter.act, counter.w, counter.n)
