"""Forward latency measured the NTIRE efficient-SR way.

Warm-up, then ``repeats`` timed forwards: CUDA events with synchronisation on a GPU, ``perf_counter``
with a pinned thread count on the CPU. Reports median, p90, mean and std; on a GPU the peak memory
after a reset. ``graph=True`` (CUDA) captures the forward once as a CUDA graph and times its replays, so
the launch overhead of the many small kernels is gone. On a device of known bandwidth each row also states
the forward's memory traffic and the latency floor it sets (``benchmark.traffic``): ``x_floor`` is how many
times that floor the measured latency is. Input presets: ``720p`` (LR = 1280x720 / s, the Multi-Adds convention) and ``ntire``
(256x256 LR), or any (h, w).
"""
from __future__ import annotations

import contextlib
import math
import statistics
import time
from dataclasses import asdict, dataclass

import pandas as pd
import torch
from torch import nn

from .results import ResultStore, environment

PRECISIONS = {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}


@dataclass(frozen=True)
class LatencySpec:
    preset: str = "720p"               # '720p', 'ntire' or 'custom'
    lr_hw: tuple[int, int] | None = None
    batch: int = 1
    device: str = "cpu"
    precision: str = "fp32"            # fp32, fp16 or bf16 (autocast)
    channels_last: bool = False
    compile: bool = False
    deploy: bool = False
    warmup: int = 10
    repeats: int = 50
    threads: int | None = None         # CPU threads (None: torch's current setting)
    graph: bool = False                # CUDA: time replays of the forward captured as a CUDA graph
    bandwidth_gbs: float | None = None  # memory bandwidth for the floor (default: looked up by GPU name)

    def __post_init__(self):
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {sorted(PRECISIONS)}, got {self.precision!r}")
        if self.preset not in ("720p", "ntire", "custom"):
            raise ValueError(f"preset must be 720p, ntire or custom, got {self.preset!r}")
        if self.preset == "custom" and not self.lr_hw:
            raise ValueError("preset 'custom' needs lr_hw=(h, w)")
        if self.repeats < 1 or self.warmup < 0:
            raise ValueError("repeats must be >= 1 and warmup >= 0")
        if self.graph and not str(self.device).startswith("cuda"):
            raise ValueError(f"graph: a CUDA graph needs device cuda, got {self.device!r}")
        if self.graph and self.compile:
            raise ValueError("graph and compile are two ways to the same end: choose one")


def lr_shape(spec: LatencySpec, scale: int) -> tuple[int, int]:
    if spec.preset == "720p":
        return math.ceil(720 / scale), math.ceil(1280 / scale)
    if spec.preset == "ntire":
        return 256, 256
    return tuple(spec.lr_hw)


def prepare(model: nn.Module, spec: LatencySpec) -> nn.Module:
    if spec.deploy:
        from .deploy import reparameterize
        model = reparameterize(model)
    model = model.to(spec.device).eval()
    if spec.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if spec.compile:
        model = torch.compile(model)
    return model


def _autocast(device_type: str, spec: LatencySpec):
    dtype = PRECISIONS[spec.precision]
    if dtype is None:
        return contextlib.nullcontext()
    # under graph capture the cast weights must not come from autocast's cache (freed at the context's exit)
    return torch.autocast(device_type, dtype=dtype, cache_enabled=not spec.graph)


def graphed(model: nn.Module, x: torch.Tensor, spec: LatencySpec):
    """``(replay, output)``: the forward on ``x`` captured as a CUDA graph after warm-up on a side stream;
    ``replay()`` recomputes ``output`` in place from the current contents of ``x``."""
    side = torch.cuda.Stream(x.device)
    side.wait_stream(torch.cuda.current_stream(x.device))
    with torch.cuda.stream(side), torch.inference_mode(), _autocast("cuda", spec):
        for _ in range(max(3, spec.warmup)):
            model(x)
    torch.cuda.current_stream(x.device).wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.inference_mode(), _autocast("cuda", spec), torch.cuda.graph(graph):
        out = model(x)
    return graph.replay, out


def time_forward(model: nn.Module, x: torch.Tensor, spec: LatencySpec) -> tuple[list[float], float | None]:
    """Per-repeat milliseconds and (CUDA) peak memory in MiB."""
    cuda = x.device.type == "cuda"
    times = []
    if spec.graph:
        replay, _ = graphed(model, x, spec)
        forward = lambda _x: replay()  # noqa: E731
    else:
        forward = model
    with torch.inference_mode(), _autocast(x.device.type, spec) if not spec.graph else contextlib.nullcontext():
        for _ in range(spec.warmup):
            forward(x)
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            for _ in range(spec.repeats):
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                forward(x)
                end.record()
                torch.cuda.synchronize()
                times.append(start.elapsed_time(end))
            peak = torch.cuda.max_memory_allocated() / 2 ** 20
        else:
            for _ in range(spec.repeats):
                t0 = time.perf_counter()
                forward(x)
                times.append((time.perf_counter() - t0) * 1e3)
            peak = None
    return times, peak


def summarize_times(times: list[float]) -> dict:
    s = sorted(times)
    p90 = s[min(len(s) - 1, math.ceil(0.9 * len(s)) - 1)]
    return {"latency_ms": statistics.median(s), "p90_ms": p90, "mean_ms": statistics.fmean(s),
            "std_ms": statistics.stdev(s) if len(s) > 1 else 0.0, "min_ms": s[0]}


def _floor(model: nn.Module, spec: LatencySpec, shape: tuple, device: str) -> dict:
    """The traffic columns of a row; counted only where a bandwidth is known (a GPU of the table, or given)."""
    from .traffic import bandwidth_gbs, forward_traffic
    gbs = spec.bandwidth_gbs or bandwidth_gbs(device)
    if not gbs:
        return {"traffic_mb": math.nan, "bandwidth_gbs": math.nan, "floor_ms": math.nan}
    if spec.deploy:
        from .deploy import reparameterize
        model = reparameterize(model)
    t = forward_traffic(model, shape, spec.channels_last)
    return {"traffic_mb": t.bytes(spec.precision) / 1e6, "bandwidth_gbs": gbs,
            "floor_ms": t.floor_ms(gbs, spec.precision)}


def measure(model: nn.Module, scale: int, spec: LatencySpec) -> tuple[dict, list[float]]:
    """One (model, spec) measurement: a summary row and the raw per-repeat times."""
    old_threads = torch.get_num_threads()
    if spec.threads:
        torch.set_num_threads(spec.threads)
    try:
        net = prepare(model, spec)
        h, w = lr_shape(spec, scale)
        x = torch.rand(spec.batch, 3, h, w, device=spec.device)
        if spec.channels_last:
            x = x.to(memory_format=torch.channels_last)
        times, peak = time_forward(net, x, spec)
        env = environment(spec.device, spec.precision)
    finally:
        torch.set_num_threads(old_threads)
    summary = summarize_times(times)
    floor = _floor(model, spec, tuple(x.shape), env["device"])
    floor["x_floor"] = summary["latency_ms"] / floor["floor_ms"] if floor["floor_ms"] == floor["floor_ms"] else math.nan
    row = {"scale": scale, "device": env["device"], "preset": spec.preset, "lr_h": h, "lr_w": w,
           "batch": spec.batch, "precision": spec.precision, "channels_last": spec.channels_last,
           "compile": spec.compile, "deploy": spec.deploy, "graph": spec.graph, **summary,
           "peak_mem_mib": peak, **floor,
           "repeats": spec.repeats, "warmup": spec.warmup, "threads": env["threads"],
           "torch_version": env["torch_version"], "code_version": env["code_version"]}
    return row, times


def latency_table(pattern: str | None, scales=(2, 3, 4), spec: LatencySpec = LatencySpec(),
                  store: str | ResultStore | None = None) -> pd.DataFrame:
    """Latency of every registry variant matching ``pattern`` at each scale; raw repeats go to the store."""
    from .complexity import DEFAULT_VARIANTS
    from .registry import create_model, get_variant, list_variants

    names = list(DEFAULT_VARIANTS) if pattern is None else [n for n in list_variants(pattern) if n != "bicubic"]
    if not names:
        raise ValueError(f"no variant matches {pattern!r}")
    if isinstance(store, str):
        store = ResultStore(store)
    rows = []
    for name in names:
        for s in (s for s in scales if s in get_variant(name).scales):   # a peer runs at its own scales
            torch.manual_seed(0)
            row, times = measure(create_model(name, scale=s), s, spec)
            row = {"model": name, **row}
            rows.append(row)
            if store is not None:
                raw = pd.DataFrame({"repeat": range(len(times)), "ms": times})
                for k, v in row.items():
                    if not k.endswith("_ms"):
                        raw[k] = v
                key = {"model": name, "scale": s, "device": row["device"], "preset": spec.preset,
                       "precision": spec.precision, "cl": int(spec.channels_last), "compile": int(spec.compile),
                       "deploy": int(spec.deploy), "batch": spec.batch, "threads": row["threads"]}
                store.write_run("latency", key, raw, asdict(spec))
    return pd.DataFrame(rows)


SIDE_BY_SIDE_CASES = (("awsrn-s", 2), ("awsrn-l", 4))


def side_by_side(cases=SIDE_BY_SIDE_CASES, spec: LatencySpec = LatencySpec()) -> pd.DataFrame:
    """Our training form, our deploy form and super-image's ``AwsrnModel`` of the same configuration,
    timed in one run on the same input. The forms are timed round-robin (one forward of each per repeat)
    so that any load on the machine falls on all of them alike. super-image's column is left empty (with
    the reason in ``note``) when it cannot be imported."""
    from dataclasses import replace

    from . import superimage
    from .registry import create_model

    rows = []
    old_threads = torch.get_num_threads()
    if spec.threads:
        torch.set_num_threads(spec.threads)
    try:
        for name, s in cases:
            torch.manual_seed(0)
            model = create_model(name, scale=s)
            nets = {"train": prepare(model, replace(spec, deploy=False)),
                    "deploy": prepare(model, replace(spec, deploy=True))}
            note = ""
            try:
                nets["super_image"] = prepare(superimage.build(model.cfg), replace(spec, deploy=False))
            except superimage.SuperImageUnavailable as exc:
                note = str(exc)
            h, w = lr_shape(spec, s)
            x = torch.rand(spec.batch, 3, h, w, device=spec.device)
            one = replace(spec, warmup=0, repeats=1)
            times = {k: [] for k in nets}
            with torch.inference_mode():
                for net in nets.values():
                    for _ in range(spec.warmup):
                        net(x)
            for _ in range(spec.repeats):
                for k, net in nets.items():
                    times[k] += time_forward(net, x, one)[0]
            med = {k: summarize_times(v)["latency_ms"] for k, v in times.items()}
            env = environment(spec.device)
            si = med.get("super_image")
            rows.append({"model": name, "scale": s, "device": env["device"], "preset": spec.preset,
                         "threads": env["threads"], "repeats": spec.repeats,
                         "latency_ms_train": med["train"], "latency_ms_deploy": med["deploy"], "latency_ms_super_image": si,
                         "deploy_vs_train": med["train"] / med["deploy"],
                         "deploy_vs_super_image": si / med["deploy"] if si else None,
                         "train_vs_super_image": si / med["train"] if si else None,
                         "torch_version": env["torch_version"], "note": note})
    finally:
        torch.set_num_threads(old_threads)
    return pd.DataFrame(rows)
