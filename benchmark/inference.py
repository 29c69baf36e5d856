"""Running a model on one LR image: whole, tiled (bounded memory), or self-ensembled (the paper's "+")."""
from __future__ import annotations

import time
from collections import OrderedDict

import torch
from torch import nn


def receptive_radius(model: nn.Module) -> int | None:
    """LR pixels on each side that influence one output pixel, or None when the model has a global
    operation (BAM's or wSE's average pool) or is not an AWSRN (tiling would then not be exact)."""
    from .config import AWSRNConfig
    cfg = getattr(model, "cfg", None)
    if not isinstance(cfg, AWSRNConfig) or cfg.bam or cfg.unit == "wru":   # peers: IMDN's CCA pools globally
        return None
    return 1 + cfg.n_lfb * (2 * cfg.n_awru + 1) + max(cfg.awms_kernels) // 2


def forward_tiled(model: nn.Module, x: torch.Tensor, tile: int, overlap: int | None = None) -> torch.Tensor:
    """Run ``model`` on (N, 3, h, w) in LR tiles of ``tile`` pixels, each padded by ``overlap`` real
    neighbours (default: the receptive radius), and stitch the cores; equal to the whole forward up to
    float rounding."""
    radius = receptive_radius(model)
    if radius is None:
        raise ValueError("tiled forward is exact only for AWSRN models without BAM (BAM pools globally)")
    overlap = radius if overlap is None else overlap
    n, _, h, w = x.shape
    s = model.scale
    out = None
    for y0 in range(0, h, tile):
        for x0 in range(0, w, tile):
            y1, x1 = min(y0 + tile, h), min(x0 + tile, w)
            py0, px0, py1, px1 = max(0, y0 - overlap), max(0, x0 - overlap), min(h, y1 + overlap), min(w, x1 + overlap)
            y = model(x[:, :, py0:py1, px0:px1])
            if out is None:
                out = y.new_empty(n, y.shape[1], h * s, w * s)
            out[:, :, y0 * s:y1 * s, x0 * s:x1 * s] = y[:, :, (y0 - py0) * s:(y1 - py0) * s, (x0 - px0) * s:(x1 - px0) * s]
    return out


class CUDAGraphs:
    """Calls ``model`` by replaying CUDA graphs, one captured per input shape (the ``keep`` most recently used).

    A capture costs a few forwards, so this pays where a shape repeats: the fixed-size tiles of a large
    image, video frames, crops of one size. The replay runs the captured kernels on the new input's copy, so
    its output equals the plain forward's (a CUDA test). The output is cloned: the graph's own buffer is
    overwritten by the next replay."""

    WARMUP = 3

    def __init__(self, model: nn.Module, keep: int = 4):
        self.model, self.keep = model, keep
        self.graphs: OrderedDict = OrderedDict()
        self.scale = getattr(model, "scale", None)
        self.cfg = getattr(model, "cfg", None)          # receptive_radius() reads it to decide on tiling

    def _capture(self, x: torch.Tensor):
        static_in = x.clone()
        here = torch.cuda.current_stream(x.device)
        side = torch.cuda.Stream(x.device)
        side.wait_stream(here)
        with torch.cuda.stream(side):       # warm-up off the capture (cuDNN picks its algorithms here)
            for _ in range(self.WARMUP):
                self.model(static_in)
        here.wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_out = self.model(static_in)
        return static_in, static_out, graph

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type != "cuda":
            raise ValueError(f"graph: a CUDA graph needs a CUDA tensor, got one on {x.device}")
        key = (tuple(x.shape), x.dtype, x.device)
        if key not in self.graphs:
            self.graphs[key] = self._capture(x)
            if len(self.graphs) > self.keep:
                self.graphs.popitem(last=False)
        self.graphs.move_to_end(key)
        static_in, static_out, graph = self.graphs[key]
        static_in.copy_(x)
        graph.replay()
        return static_out.clone()


_TRANSFORMS = [(t, f) for t in (False, True) for f in ((), (-1,), (-2,), (-2, -1))]


def _apply(x: torch.Tensor, transpose: bool, flips: tuple) -> torch.Tensor:
    x = torch.flip(x, flips) if flips else x
    return x.transpose(-2, -1) if transpose else x


def _invert(y: torch.Tensor, transpose: bool, flips: tuple) -> torch.Tensor:
    y = y.transpose(-2, -1) if transpose else y
    return torch.flip(y, flips) if flips else y


class Runner:
    """Calls a model the way an evaluation asks: optional tiling above ``max_pixels`` LR pixels and
    optional 8-fold self-ensemble; returns the SR and the forward seconds (synchronised on CUDA)."""

    def __init__(self, model: nn.Module, self_ensemble: bool = False, tile: int | None = None,
                 max_pixels: int = 512 * 512, graph: bool = False):
        self.model, self.self_ensemble, self.tile, self.max_pixels = model, self_ensemble, tile, max_pixels
        # graph: every forward (each tile, each ensemble member) replays a CUDA graph of its input's shape
        self.forward = CUDAGraphs(model) if graph else model

    def _once(self, x: torch.Tensor) -> torch.Tensor:
        tile = self.tile
        if tile is None and x.shape[-2] * x.shape[-1] > self.max_pixels and receptive_radius(self.model) is not None:
            tile = 256
        return forward_tiled(self.forward, x, tile) if tile else self.forward(x)

    @torch.inference_mode()
    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, float]:
        sync = torch.cuda.synchronize if x.device.type == "cuda" else (lambda: None)
        sync()
        t0 = time.perf_counter()
        if self.self_ensemble:
            acc = None
            for transpose, flips in _TRANSFORMS:
                y = _invert(self._once(_apply(x, transpose, flips)), transpose, flips)
                acc = y if acc is None else acc + y
            y = acc / len(_TRANSFORMS)
        else:
            y = self._once(x)
        sync()
        return y, time.perf_counter() - t0
