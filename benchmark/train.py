"""The trainer: the paper's recipe (paper_notes.md 5.4) on any registry variant, resumable and DDP-ready.

Recipe: random 48x48 LR patches with flips and transposes, L1 loss, Adam (0.9, 0.999, 1e-8), lr 1e-3
halved every 200k iterations (the official 200 epochs x 1000 iterations; ``step_every`` shortens it) or
cosine, batch 16. LR made with the same MATLAB bicubic as evaluation and cached. Images live in memory
(on the training device), so sampling never starves a GPU. Validation runs on images held out of the
training folders; ``monitor`` test sets (e.g. Set5) are only watched, never used to choose anything.

The fast step (``fast=True``, the default): the whole batch of patches is drawn on the device by one
gather per tensor (:class:`PatchSampler`), Adam is fused, and on CUDA the forward + backward + Adam step
is one CUDA graph (:class:`GraphStep`). ``fast=False`` is the plain eager step with a per-patch sampling
loop, kept for comparison. Several runs can share one GPU in one process (:func:`train_group`): each
replays its graph on its own CUDA stream, so their kernels overlap.

Runs continue across sessions: ``init_from`` a previous run's ``model.safetensors`` starts a new segment
(a new cosine cycle); ``recipe.json`` lists every segment (iterations, lr, batch, patch, device, wall and
GPU seconds) and ``train_log.csv`` keeps every segment's rows, so a checkpoint states its whole budget.

Multi-GPU / multi-node: launch with ``torchrun``; every rank draws the same global batch from the same
generator and trains on its own slice, so a 2-process run follows the 1-process run step for step.
"""
from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import signal
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
import torch.nn.functional as F
from tqdm.auto import tqdm

from .atomic import atomic_write_text
from .checkpoints import load_pruned, safe_torch_load, save_native
from .data import IMAGE_EXTS, ImageReadError, LRCache, LR_CACHE_VERSION, decode_image
from .imresize import bicubic_downscale, imresize, modcrop
from .results import device_name, environment, write_table


def _opt(default, help: str, flag: str | None = None, **kw):
    """A TrainConfig field with its CLI help (``benchmark.argtypes.add_config_flags`` makes the flags from them)."""
    make = {"default_factory": default} if callable(default) else {"default": default}
    return field(**make, metadata={"help": help, **({"flag": flag} if flag else {}), **kw})


# the pixel losses a run may train with (--loss); both are means over every pixel and channel
LOSSES = {"l1": F.l1_loss, "l2": F.mse_loss}


@dataclass(frozen=True)
class TrainConfig:
    """A training run's recipe. Its fields are the flags of ``train`` and ``train-group`` (``--field-name``;
    a bool that defaults to True is ``--no-field``) and the keys of a sweep's train jobs."""
    model: str = _opt("awsrn-s", "registry name")
    scale: int = _opt(4, "upscaling factor", kind="scale")
    data: tuple[str, ...] = _opt((), "training folders of HR images, comma-separated (DIV2K layout or flat)")
    out: str = _opt("runs/awsrn-s-x4", "run folder")
    iters: int = _opt(1000, "iterations (the schedule's horizon)", minimum=1)
    batch: int = _opt(16, "patches per iteration", minimum=1)
    patch: int = _opt(48, "LR patch side", minimum=1)
    lr: float = _opt(1e-3, "Adam learning rate")
    schedule: str = _opt("step", "step: halve the lr every --step-every iterations; cosine: one cosine cycle",
                         choices=("step", "cosine"))
    step_every: int = _opt(200_000, "iterations between lr halvings (schedule step)", minimum=1)
    seed: int = _opt(1, "seed of the initialisation and the patch sampler")
    val_images: int = _opt(10, "images held out of the training folders for validation (every k-th image)",
                         minimum=0)
    train_subset: int = _opt(0, "train on only this many of the training images, evenly spaced in the sorted list "
                                "after the held-out split (0: all): for PSNR-against-data-size curves", minimum=0)
    hr_rescale: int = _opt(0, "add n copies of each training image downscaled by 0.9, 0.8, ... (MATLAB bicubic; "
                              "VDSR's augmentation of the 291 set), at most 5", minimum=0)
    min_hr_side: int = _opt(0, "leave out the training images (and copies) whose HR side is under this, as a larger "
                               "patch would (0: the HR patch side): to tell a smaller patch from the images it admits",
                            minimum=0)
    val_every: int = _opt(500, "iterations between validations", minimum=1)
    log_every: int = _opt(50, "iterations between train_log.csv rows", minimum=1)
    ckpt_every: int = _opt(500, "iterations between resumable checkpoints", minimum=1)
    device: str = _opt("cpu", "cpu, cuda or cuda:N", kind="device")
    amp: str = _opt("none", "mixed precision (autocast) of the training step", choices=("none", "bf16", "fp16"))
    channels_last: bool = _opt(False, "NHWC activations")
    compile: bool = _opt(False, "torch.compile the model (with the fast step on CUDA: captured inside its CUDA graph, "
                                "unless --compile-mode makes graphs of its own)")
    compile_mode: str = _opt("default", "the torch.compile mode with --compile (reduce-overhead: its own CUDA graphs)",
                             choices=("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"))
    fast: bool = _opt(True, "the fast step: batched patch sampler + fused Adam (+ CUDA graph on CUDA); without it "
                            "the eager step (per-patch sampling loop, unfused Adam), for comparison")
    graph: bool = _opt(True, "with the fast step on CUDA, capture forward + backward + Adam as a CUDA graph")
    awms_one_conv: bool = _opt(False, "train the AWMS tail as one conv of its largest kernel, built at every step "
                                      "from the branches' weights and lambdas (the deploy form's fusion, kept "
                                      "differentiable): the same function and gradients up to rounding, 81 instead "
                                      "of 164 taps per pixel; the saved weights are the branches' as always")
    init_from: str | None = _opt(None, "checkpoint to start from: a new segment of that run, or the full-AWMS "
                                       "model a pruned variant is fine-tuned from")
    time_budget_s: float | None = _opt(None, "seconds: after a short probe the run sets its length (and the "
                                             "cosine horizon) to what fits", flag="--time-budget")
    monitor: tuple[str, ...] = _opt((), "test sets graded (matlab protocol) at each validation, only watched")
    data_root: str | None = _opt(None, "where the test sets live (default $AWSRN_DATA)")
    loss: str = _opt("l1", "pixel loss: l1 (the paper's) or l2 (mean squared error, what PSNR measures: for a last "
                           "fine-tune of an L1-trained checkpoint)", choices=("l1", "l2"))
    ema: float = _opt(0.0, "decay of an exponential moving average of the weights (e.g. 0.999, BasicSR's ema_decay): "
                           "validation, --monitor, the checkpoint and model.safetensors use the average; 0: off")
    save_dtype: str = _opt("float32", "storage of model.safetensors (float16: half the size)",
                           choices=("float32", "float16"))
    overrides: dict = _opt(dict, "a config field of the variant, e.g. n_lfb=2 (repeatable)", flag="--set",
                          kind="key_values")

    def __post_init__(self):
        if self.schedule not in ("step", "cosine"):
            raise ValueError(f"schedule must be 'step' or 'cosine', got {self.schedule!r}")
        if self.amp not in ("none", "bf16", "fp16"):
            raise ValueError(f"amp must be none, bf16 or fp16, got {self.amp!r}")
        if self.save_dtype not in ("float32", "float16"):
            raise ValueError(f"save_dtype must be float32 or float16, got {self.save_dtype!r}")
        if not self.data:
            raise ValueError("data (--data): at least one folder of training images is needed")
        if self.train_subset < 0:
            raise ValueError(f"train_subset must be >= 0 (0: every image), got {self.train_subset!r}")
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {', '.join(LOSSES)}, got {self.loss!r}")
        if not 0 <= self.ema < 1:
            raise ValueError(f"ema must be a decay in [0, 1) (0: off, e.g. 0.999), got {self.ema!r}")
        if not 0 <= self.hr_rescale <= 5:
            raise ValueError(f"hr_rescale must be 0 to 5 (copies at 0.9 down to 0.5), got {self.hr_rescale!r}")
        from .registry import REGISTRY
        net = REGISTRY.get(self.model).config_for(self.scale, **self.overrides)  # a bad name or --set before any file
        if self.awms_one_conv and not hasattr(net, "awms_kernels"):
            raise ValueError(f"awms_one_conv (--awms-one-conv): {self.model} has no AWMS tail to train as one conv; "
                             "it applies to the AWSRN variants")


# ------------------------------------------------------------------------------------------ data
# the recipe keys that change what a run learns: a study's or fine-tune's run folder names the ones that
# differ from TrainConfig's defaults, so a run made with other values never stands in for this one
RUN_KEYS = ("batch", "patch", "lr", "amp", "channels_last", "val_images", "train_subset", "hr_rescale", "min_hr_side",
            "ema", "loss", "awms_one_conv")


def run_tag(recipe: dict) -> str:
    """``''`` for the default recipe, else e.g. ``'-batch32-ampbf16-channels_last'``."""
    defaults = {f.name: f.default for f in TrainConfig.__dataclass_fields__.values()}
    parts = []
    for k in RUN_KEYS:
        if k in recipe and recipe[k] != defaults[k]:
            parts.append(k if recipe[k] is True else f"{k}{recipe[k]}")
    return "".join("-" + p for p in parts)


def list_training_images(folders) -> list[Path]:
    paths = []
    for folder in folders:
        folder = Path(folder)
        hr = folder / "HR" if (folder / "HR").is_dir() else folder
        if not hr.is_dir():
            raise FileNotFoundError(f"training folder {folder} does not exist")
        paths += sorted(p for p in hr.rglob("*") if p.suffix.lower() in IMAGE_EXTS)
    if not paths:
        raise FileNotFoundError(f"no training images in {list(folders)}")
    return paths


def split_train_val(paths: list[Path], n_val: int) -> tuple[list[Path], list[Path]]:
    """Every k-th image (deterministic) is held out for validation."""
    if n_val <= 0:
        return paths, []
    step = max(1, len(paths) // n_val)
    val = paths[::step][:n_val]
    held = set(val)
    return [p for p in paths if p not in held], val


def rescale_factors(n: int) -> tuple[float, ...]:
    """The HR sizes a training image is used at with ``hr_rescale=n``: 1, 0.9, ..., 1 - n/10."""
    return tuple(round(1 - i / 10, 1) for i in range(n + 1))


def load_pairs(paths, scale: int, cache: LRCache, min_hr: int = 0, hr_rescale: int = 0):
    """(HR uint8 (3,H,W), LR uint8 (3,h,w)) tensors; gray images become 3 channels; too-small and
    unreadable images are reported and skipped. ``hr_rescale`` adds copies of each image downscaled by
    0.9, 0.8, ... (uint8 MATLAB bicubic, then modcrop and the LR of that copy); a copy smaller than the
    patch is left out without a report (its image is in use)."""
    pairs, skipped = [], []
    for p in paths:
        try:
            data = p.read_bytes()
            full = decode_image(p, data)
        except (OSError, ImageReadError) as exc:
            skipped.append((str(p), str(exc)))
            continue
        if full.ndim == 2:
            full = np.repeat(full[..., None], 3, axis=2)
        key = hashlib.sha256(data).hexdigest()
        full_t = torch.from_numpy(full).permute(2, 0, 1).contiguous()
        for factor in rescale_factors(hr_rescale):
            hr_t = modcrop(full_t if factor == 1 else imresize(full_t, factor), scale)
            if min(hr_t.shape[-2:]) < max(min_hr, scale):
                if factor == 1:
                    skipped.append((str(p), f"smaller than the {min_hr}px HR patch"))
                break            # the smaller copies are smaller still
            hr_t = hr_t.contiguous()
            method = f"matlab-{LR_CACHE_VERSION}" + ("" if factor == 1 else f"-hr{factor}")
            lr = cache.get(key, scale, method)
            if lr is None or lr.ndim != 3:
                lr_t = bicubic_downscale(hr_t, scale)
                cache.put(key, scale, method, lr_t.permute(1, 2, 0).numpy())
            else:
                lr_t = torch.from_numpy(lr).permute(2, 0, 1).contiguous()
            pairs.append((hr_t, lr_t))
    return pairs, skipped


def evenly_spaced(paths: list, n: int) -> list:
    """``n`` of ``paths`` spread evenly over the list (all when ``n`` is 0 or not smaller)."""
    if n <= 0 or n >= len(paths):
        return paths
    return [paths[i] for i in np.linspace(0, len(paths) - 1, n).round().astype(int)]


_PAIRS: dict[tuple, tuple] = {}   # decoded training pairs, shared by the runs of one process (a group)


def training_pairs(folders, scale: int, min_hr: int, val_images: int, train_subset: int = 0, hr_rescale: int = 0):
    """(training pairs, skipped images, validation pairs, images trained on) of ``folders`` at ``scale``
    (with ``hr_rescale`` the pairs outnumber the images); decoded once per
    process, so a group of runs at one scale reads the images once. The held-out images are chosen before
    ``train_subset`` thins the rest, so runs on subsets validate on the same images."""
    key = (tuple(str(f) for f in folders), scale, min_hr, val_images, train_subset, hr_rescale)
    if key not in _PAIRS:
        train_paths, val_paths = split_train_val(list_training_images(folders), val_images)
        if not train_paths:
            raise ValueError(f"all {len(val_paths)} images of {list(folders)} are held out for validation "
                             f"(val_images {val_images}); give more images or a smaller val_images")
        cache = LRCache()
        used = evenly_spaced(train_paths, train_subset)
        pairs, skipped = load_pairs(used, scale, cache, min_hr=min_hr, hr_rescale=hr_rescale)
        val_pairs, _ = load_pairs(val_paths, scale, cache)
        _PAIRS[key] = (pairs, skipped, val_pairs, len(used) - len(skipped))
    return _PAIRS[key]


def _dihedral_tables(p: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Row and column source tables (8, p, p) for the 8 flip/transpose combinations k = hf + 2 vf + 4 tr,
    in the order the eager loop applies them (horizontal flip, vertical flip, then transpose)."""
    i = torch.arange(p, device=device).view(p, 1).expand(p, p)
    j = i.t()
    rows, cols = [], []
    for k in range(8):
        hf, vf, tr = k & 1, (k >> 1) & 1, (k >> 2) & 1
        u, v = (j, i) if tr else (i, j)
        rows.append(p - 1 - u if vf else u)
        cols.append(p - 1 - v if hf else v)
    return torch.stack(rows), torch.stack(cols)


class _FlatImages:
    """Images of different sizes in one flat uint8 buffer, so a batch of patches is one gather."""

    def __init__(self, images: list[torch.Tensor], device):
        self.flat = torch.cat([im.reshape(-1) for im in images]).to(device)
        sizes = [im.numel() for im in images]
        self.offset = torch.tensor([0] + sizes[:-1], device=device).cumsum(0)
        self.h = torch.tensor([im.shape[-2] for im in images], device=device)
        self.w = torch.tensor([im.shape[-1] for im in images], device=device)
        self.views = [self.flat[o:o + n].view(im.shape) for o, n, im in
                      zip(np.cumsum([0] + sizes[:-1]).tolist(), sizes, images)]

    def gather(self, idx, y, x, k, p: int, tables) -> torch.Tensor:
        """(B, 3, p, p) patches with top-left (y, x) of images ``idx``, transformed by dihedral ``k``."""
        rows, cols = tables
        w = self.w[idx].view(-1, 1, 1)
        plane = (self.h[idx] * self.w[idx]).view(-1, 1, 1, 1)
        base = (self.offset[idx] + y * self.w[idx] + x).view(-1, 1, 1, 1)
        pix = (rows[k] * w + cols[k]).unsqueeze(1)                      # (B, 1, p, p)
        chan = torch.arange(3, device=idx.device).view(1, 3, 1, 1) * plane
        return self.flat[base + chan + pix]


class PatchSampler:
    """Random aligned LR/HR patches with flips and transposes, drawn from images in memory.

    One draw is (image, y, x, flips) per patch from one generator on the training device. ``sample``
    gathers the whole batch at once; ``sample_loop`` slices patch by patch (the eager reference: the
    same draws give the same patches). ``chunk`` > 1 draws that many batches at a time (fewer kernel
    launches per step on a GPU); the state saved for resume is the generator state at the start of
    the current chunk and the position in it, so a resumed run replays the same patches."""

    def __init__(self, pairs, scale: int, patch: int, batch: int, device, seed: int, chunk: int = 1):
        self.device = torch.device(device)
        self.batch = batch
        self.hr = _FlatImages([h for h, _ in pairs], self.device)
        self.lr = _FlatImages([l for _, l in pairs], self.device)
        self.n = len(pairs)
        self.scale, self.patch, self.chunk = scale, patch, max(1, chunk)
        self.gen = torch.Generator(device=self.device).manual_seed(seed)
        self.lr_tables = _dihedral_tables(patch, self.device)
        self.hr_tables = _dihedral_tables(patch * scale, self.device)
        self._chunk_state, self._buf, self._pos = None, None, 0

    def draw(self, n: int) -> tuple[torch.Tensor, ...]:
        """n random (image index, LR y, LR x, dihedral k), on the device."""
        g, dev, p = self.gen, self.device, self.patch
        idx = torch.randint(self.n, (n,), generator=g, device=dev)
        u = torch.rand(n, 2, generator=g, device=dev, dtype=torch.float64)
        k = torch.randint(8, (n,), generator=g, device=dev)
        y = torch.minimum((u[:, 0] * (self.lr.h[idx] - p + 1)).long(), self.lr.h[idx] - p)
        x = torch.minimum((u[:, 1] * (self.lr.w[idx] - p + 1)).long(), self.lr.w[idx] - p)
        return idx, y, x, k

    def _gather(self, draws) -> tuple[torch.Tensor, torch.Tensor]:
        idx, y, x, k = draws
        s, p = self.scale, self.patch
        return (self.lr.gather(idx, y, x, k, p, self.lr_tables),
                self.hr.gather(idx, y * s, x * s, k, p * s, self.hr_tables))

    def sample_uint8(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The next batch as uint8 (B, 3, p, p) LR and (B, 3, sp, sp) HR."""
        batch = self.batch
        if self._buf is None or self._pos == self.chunk:
            self._chunk_state = self.gen.get_state()
            lr, hr = self._gather(self.draw(batch * self.chunk))
            self._buf = (lr.view(self.chunk, batch, *lr.shape[1:]), hr.view(self.chunk, batch, *hr.shape[1:]))
            self._pos = 0
        out = (self._buf[0][self._pos], self._buf[1][self._pos])
        self._pos += 1
        return out

    def sample(self) -> tuple[torch.Tensor, torch.Tensor]:
        lr, hr = self.sample_uint8()
        return lr.float() / 255.0, hr.float() / 255.0

    def sample_loop(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The eager reference: the same draws, sliced, flipped and transposed one patch at a time."""
        s, p = self.scale, self.patch
        lrs, hrs = [], []
        for i, y, x, k in zip(*(t.tolist() for t in self.draw(self.batch))):
            a = self.lr.views[i][:, y:y + p, x:x + p]
            b = self.hr.views[i][:, y * s:(y + p) * s, x * s:(x + p) * s]
            if k & 1:
                a, b = a.flip(-1), b.flip(-1)
            if k & 2:
                a, b = a.flip(-2), b.flip(-2)
            if k & 4:
                a, b = a.transpose(-2, -1), b.transpose(-2, -1)
            lrs.append(a)
            hrs.append(b)
        return torch.stack(lrs).float() / 255.0, torch.stack(hrs).float() / 255.0

    def state(self) -> dict:
        if self._buf is None or self._pos == self.chunk:     # between chunks
            return {"gen": self.gen.get_state(), "pos": self.chunk}
        return {"gen": self._chunk_state, "pos": self._pos}

    def load_state(self, state) -> None:
        if isinstance(state, torch.Tensor):       # a run saved before chunks existed
            state = {"gen": state, "pos": self.chunk}
        self.gen.set_state(state["gen"])
        self._buf, self._pos = None, self.chunk
        if int(state["pos"]) < self.chunk:        # redraw the chunk the run was in
            self.sample_uint8()
            self._pos = int(state["pos"])


# ------------------------------------------------------------------------------------ schedule
def lr_factor(cfg: TrainConfig, it: int, horizon: int) -> float:
    """The lr multiplier for iteration ``it`` (1-based) of a segment of length ``horizon``."""
    if cfg.schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * min(it, horizon) / max(1, horizon)))
    return 0.5 ** (it // cfg.step_every)


# ---------------------------------------------------------------------------------------- steps
def make_optimizer(model, cfg: TrainConfig, device: torch.device, graph: bool):
    """Adam (0.9, 0.999, 1e-8). Fast: fused (one kernel for all parameters); under a CUDA graph also
    capturable, with the lr a device tensor the graph reads, so the schedule needs no re-capture."""
    params = list(model.parameters())
    if graph:
        lr = torch.tensor(cfg.lr, device=device)
        return torch.optim.Adam(params, lr=lr, betas=(0.9, 0.999), eps=1e-8, fused=True, capturable=True)
    return torch.optim.Adam(params, lr=cfg.lr, betas=(0.9, 0.999), eps=1e-8, fused=cfg.fast or None)


def set_lr(opt, value: float) -> None:
    for group in opt.param_groups:
        if isinstance(group["lr"], torch.Tensor):
            group["lr"].fill_(value)
        else:
            group["lr"] = value


class WeightEMA:
    """An exponential moving average of the weights, updated after every optimizer step:
    ``avg <- decay * avg + (1 - decay) * w`` (one foreach kernel, torch's own ``get_ema_multi_avg_fn``).
    ``model`` is a copy of the trained model whose parameters are the averages (buffers are constants here).
    Not ``torch.optim.swa_utils.AveragedModel``: its update branches on a device counter (a host sync), which
    cannot be captured in the step's CUDA graph; this update can."""

    def __init__(self, model: torch.nn.Module, decay: float):
        from torch.optim.swa_utils import get_ema_multi_avg_fn
        self.decay = decay
        self.model = copy.deepcopy(model)
        self.model.requires_grad_(False)
        self.avg, self.src = list(self.model.parameters()), list(model.parameters())
        self._update = get_ema_multi_avg_fn(decay)

    def update(self) -> None:
        self._update(self.avg, self.src, None)

    def tensors(self) -> list[torch.Tensor]:
        return self.avg


class EagerStep:
    """forward, pixel loss (L1 unless ``loss='l2'``), backward, Adam step (and the weight average's update); the loss is summed on the device
    (no sync per step)."""

    def __init__(self, net, opt, device, amp: str = "none", channels_last: bool = False, ema: WeightEMA | None = None,
                 loss: str = "l1"):
        self.net, self.opt, self.ema, self.loss_fn = net, opt, ema, LOSSES[loss]
        self.amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp)
        self.scaler = torch.amp.GradScaler(device.type, enabled=amp == "fp16")
        self.device_type, self.channels_last = device.type, channels_last
        self.loss_sum = torch.zeros((), device=device)

    def __call__(self, lr_b: torch.Tensor, hr_b: torch.Tensor) -> None:
        if self.channels_last:
            lr_b = lr_b.contiguous(memory_format=torch.channels_last)
        with torch.autocast(self.device_type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None):
            loss = self.loss_fn(self.net(lr_b).float(), hr_b)
        self.opt.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.opt)
        self.scaler.update()
        if self.ema is not None:
            self.ema.update()
        self.loss_sum += loss.detach()


class GraphStep:
    """The same step captured once as a CUDA graph and replayed: one launch per iteration.

    Capture needs a few warm-up steps (cuDNN autotuning, Adam's state); the parameters and Adam's
    state are restored afterwards, so the graph starts from exactly where the eager run would. ``amp='bf16'``
    runs the forward under autocast inside the graph (no loss scaler needed, unlike fp16) and
    ``channels_last`` feeds NHWC batches, so both layouts can be measured with the graph."""

    WARMUP = 3

    def __init__(self, net, model, opt, lr_shape, hr_shape, device, amp: str = "none", channels_last: bool = False,
                 ema: WeightEMA | None = None, loss: str = "l1"):
        if amp not in ("none", "bf16"):
            raise ValueError(f"the CUDA-graph step takes amp none or bf16, not {amp!r} (fp16 needs a loss scaler)")
        amp_dtype = torch.bfloat16 if amp == "bf16" else None
        loss_fn = LOSSES[loss]
        self.opt = opt
        self.static_lr = torch.zeros(lr_shape, device=device, dtype=torch.uint8)
        self.static_hr = torch.zeros(hr_shape, device=device, dtype=torch.uint8)
        self.loss_sum = torch.zeros((), device=device)
        params = list(model.parameters())
        saved_params = [p.detach().clone() for p in params]
        saved_state = {p: {k: v.clone() for k, v in opt.state[p].items()} for p in params if p in opt.state}
        saved_ema = [t.clone() for t in ema.tensors()] if ema is not None else []
        saved_loss = self.loss_sum.clone()

        def body():
            lr_b = self.static_lr.float() / 255.0
            if channels_last:
                lr_b = lr_b.contiguous(memory_format=torch.channels_last)
            hr_b = self.static_hr.float() / 255.0
            # autocast's weight cache must be off under capture: cached casts would be freed between replays
            with torch.autocast("cuda", dtype=amp_dtype, enabled=amp_dtype is not None, cache_enabled=False):
                sr = net(lr_b)
            loss = loss_fn(sr.float(), hr_b)
            loss.backward()
            opt.step()
            if ema is not None:
                ema.update()
            self.loss_sum.add_(loss.detach())

        side = torch.cuda.Stream(device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side):
            for _ in range(self.WARMUP):
                opt.zero_grad(set_to_none=True)
                body()
        torch.cuda.current_stream(device).wait_stream(side)
        with torch.no_grad():                      # undo the warm-up steps
            for p, v in zip(params, saved_params):
                p.copy_(v)
            for p in params:
                for k, v in opt.state[p].items():
                    v.copy_(saved_state[p][k]) if p in saved_state else v.zero_()
            for t, v in zip(ema.tensors() if ema is not None else [], saved_ema):
                t.copy_(v)
            self.loss_sum.copy_(saved_loss)
        opt.zero_grad(set_to_none=True)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            body()

    def __call__(self, lr_u8: torch.Tensor, hr_u8: torch.Tensor) -> None:
        self.static_lr.copy_(lr_u8)
        self.static_hr.copy_(hr_u8)
        self.graph.replay()


# ----------------------------------------------------------------------------------- validation
@torch.no_grad()
def validate(model, pairs, scale: int, device) -> float:
    """Mean Y-PSNR of the held-out images, graded as the matlab protocol grades (uint8 SR, BT.601 Y,
    shave = scale)."""
    from .protocols import get_protocol
    proto = get_protocol("matlab")
    was = model.training
    model.eval()
    vals = []
    for hr, lr in pairs:
        sr = model(lr.to(device).unsqueeze(0).float() / 255.0)[0]
        vals.append(proto.grade(sr, hr.to(device), scale)[0])
    model.train(was)
    return float(np.mean(vals)) if vals else float("nan")


def load_monitor(datasets, scale: int, data_root) -> dict[str, list]:
    """The monitor test sets as (HR, LR) tensor pairs, prepared exactly as evaluation prepares them."""
    from .data import list_images, prepare_pair, resolve_data_root, to_chw, to_chw3
    from .protocols import get_protocol
    root = resolve_data_root(data_root)
    cache, proto, out = LRCache(), get_protocol("matlab"), {}
    for name in datasets:
        pairs = []
        for ref in list_images(name, root):
            hr, lr = prepare_pair(ref, scale, proto, cache)
            pairs.append((to_chw(hr), to_chw3(lr)))
        out[name] = pairs
    return out


# ------------------------------------------------------------------------------------- segments
def _log_wall_s(log: pd.DataFrame) -> float:
    """Wall seconds of an old log without a wall_s column, from its per-row throughput."""
    if log.empty or "it_per_s" not in log:
        return float("nan")
    steps = log["iter"].diff().fillna(log["iter"].iloc[0])
    return float((steps / log["it_per_s"]).sum())


def prior_segments(init_from: str | None) -> tuple[list[dict], pd.DataFrame]:
    """The segments and log rows of the run ``init_from`` came from (its folder's recipe.json and
    train_log.csv); a run recorded before segments existed counts as one segment."""
    if not init_from:
        return [], pd.DataFrame()
    folder = Path(init_from).parent
    recipe_path, log_path = folder / "recipe.json", folder / "train_log.csv"
    if not recipe_path.is_file():
        return [], pd.DataFrame()
    recipe = json.loads(recipe_path.read_text())
    log = pd.read_csv(log_path) if log_path.is_file() else pd.DataFrame()
    if "segments" in recipe:
        return recipe["segments"], log
    seg = {"segment": 1, "model": recipe.get("model"), "iters": recipe.get("iters_reached", recipe.get("iters")),
           "lr": recipe.get("lr"), "schedule": recipe.get("schedule"), "batch": recipe.get("batch"),
           "patch": recipe.get("patch"), "device": recipe.get("device"), "wall_s": _log_wall_s(log),
           "gpu_s": _log_wall_s(log) if "H100" in str(recipe.get("device")) or "H200" in str(recipe.get("device"))
           else 0.0, "concurrent": None, "init_from": recipe.get("init_from")}
    if not log.empty:
        log = log.assign(segment=1, total_iter=log["iter"])
    return [seg], log


# -------------------------------------------------------------------------------------- trainer
def _dist_info():
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return world, int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))


def _finished(cfg: TrainConfig) -> dict | None:
    """The summary of a run in ``cfg.out`` that already reached its last iteration, else None."""
    out = Path(cfg.out)
    if not ((out / "checkpoint.pt").is_file() and (out / "model.safetensors").is_file()):
        return None
    state = safe_torch_load(out / "checkpoint.pt")
    target = int(state.get("horizon", cfg.iters)) if cfg.time_budget_s else cfg.iters
    if int(state["iter"]) < target:
        return None
    summary = {"iters": int(state["iter"]), "out": str(out), "seconds": 0.0}
    log_path = out / "train_log.csv"
    if log_path.is_file():
        last = pd.read_csv(log_path).iloc[-1]
        summary.update(loss=float(last["loss"]), val_psnr=float(last["val_psnr"]))
    return summary


def native_bf16(device: str | torch.device = "cpu") -> bool:
    """Whether ``device`` runs bfloat16 arithmetic natively. A CPU without AVX512-BF16 or AMX emulates it, and
    bf16 autocast there makes the AWSRN training step many times slower than float32, while an AVX512-BF16 CPU
    runs it 1.7x faster (``results/train_throughput_cpu.csv``)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type != "cpu":
        return False
    return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


class Trainer:
    """One training run, in named stages: ``setup`` (devices, model, data, optimizer, resume),
    ``step`` (one iteration), ``log`` (loss, lr, throughput, validation), ``save`` (resumable state)
    and ``finish`` (the model file and the recipe). :func:`train` and :func:`train_group` drive it."""

    def __init__(self, cfg: TrainConfig, resume: bool = False, progress: bool = True):
        self.cfg, self.resume = cfg, resume
        self.world, self.rank, local_rank = _dist_info()
        self.main = self.rank == 0
        self.device = torch.device(cfg.device)
        if self.device.type == "cuda" and self.world > 1:
            self.device = torch.device("cuda", local_rank)
            torch.cuda.set_device(self.device)
        if self.world > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo")
        if cfg.batch % self.world:
            raise ValueError(f"batch {cfg.batch} is not divisible by the {self.world} processes")
        if cfg.amp == "bf16" and self.device.type == "cpu" and self.main and not native_bf16("cpu"):
            print(f"warning: amp bf16: this CPU ({torch.backends.cpu.get_cpu_capability()}) has no AVX512-BF16 or "
                  "AMX, so bfloat16 is emulated and the step runs far slower than with --amp none", file=sys.stderr)
        self.out = Path(cfg.out)
        if self.main:
            self.out.mkdir(parents=True, exist_ok=True)
        self.ckpt_path = self.out / "checkpoint.pt"
        self.progress = progress
        # a graph only where it is simple: one process, CUDA; fp16 needs a loss scaler that steps outside the
        # graph; bf16 and channels_last are captured with it. A compiled model (fused kernels) is captured too,
        # unless its mode makes CUDA graphs of its own (reduce-overhead, max-autotune)
        self.use_graph = (cfg.fast and cfg.graph and self.device.type == "cuda" and self.world == 1
                          and cfg.amp in ("none", "bf16")
                          and not (cfg.compile and cfg.compile_mode in ("reduce-overhead", "max-autotune")))
        self.stream = torch.cuda.Stream(self.device) if self.device.type == "cuda" else None
        with self._on_stream():
            self._setup()

    # ---- stages
    def _setup(self) -> None:
        cfg = self.cfg
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True       # fixed shapes: pick the fastest conv kernels once
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        self._build_model()
        # the average starts from the initial (or init_from) weights; a resumed run restores its own below
        self.ema = WeightEMA(self.model, cfg.ema) if cfg.ema else None
        self._load_data()
        self.opt = make_optimizer(self.model, cfg, self.device, self.use_graph)
        self.segments, self.log_rows = prior_segments(cfg.init_from) if not self._resuming() else ([], [])
        if isinstance(self.log_rows, pd.DataFrame):
            self.log_rows = self.log_rows.to_dict("records")
        self.prior_iters = sum(int(s.get("iters") or 0) for s in self.segments)
        self.start, self.horizon = 0, cfg.iters
        self.cut_short = False       # the time budget's hard stop ended the run before its horizon
        if self._resuming():
            self._restore()
        self._build_step()
        self.it = self.start
        self.wall_before = self._seg_wall_before
        self.t_begin = self.t_last = time.perf_counter()
        self.n_since_log = 0
        self.gpu_share = 1.0
        self.concurrent = 1
        self._write_recipe(final=False)
        self.bar = tqdm(total=self.horizon, initial=self.start, disable=not (self.progress and self.main),
                        desc=f"train {cfg.model} x{cfg.scale}", unit="it")

    def _resuming(self) -> bool:
        return self.resume and self.ckpt_path.is_file()

    def _build_model(self) -> None:
        from .registry import create_model
        cfg = self.cfg
        torch.manual_seed(cfg.seed)
        self.model = create_model(cfg.model, scale=cfg.scale, **cfg.overrides).to(self.device)
        if cfg.init_from and not self._resuming():     # a resumed run restores its own state
            load_pruned(self.model, cfg.init_from)
        if cfg.awms_one_conv:            # TrainConfig checked that the model has an AWMS tail
            self.model.tail.one_conv = True
        self.model.train()
        if cfg.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.net = self.model
        if self.world > 1:
            self.net = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device] if self.device.type == "cuda" else None)
        if cfg.compile:
            self.net = torch.compile(self.net, mode=cfg.compile_mode)

    def _load_data(self) -> None:
        cfg = self.cfg
        min_hr = max(cfg.patch * cfg.scale, cfg.min_hr_side)
        pairs, self.skipped, self.val_pairs, self.n_images = training_pairs(cfg.data, cfg.scale, min_hr,
                                                             cfg.val_images, cfg.train_subset, cfg.hr_rescale)
        if not pairs:
            unreadable = [p for p, why in self.skipped if "smaller than" not in why]
            small = len(self.skipped) - len(unreadable)
            raise ValueError(f"no usable training image in {list(cfg.data)}: {small} smaller than the "
                             f"{min_hr}px HR patch, {len(unreadable)} unreadable"
                             + (f" (e.g. {unreadable[0]})" if unreadable else ""))
        self.n_train = len(pairs)
        chunk = 16 if self.use_graph else 1   # batches drawn per sampler call on the GPU
        self.sampler = PatchSampler(pairs, cfg.scale, cfg.patch, cfg.batch, self.device, cfg.seed, chunk=chunk)
        self.monitor = load_monitor(cfg.monitor, cfg.scale, cfg.data_root) if cfg.monitor and self.main else {}

    def _restore(self) -> None:
        state = safe_torch_load(self.ckpt_path)
        self.model.load_state_dict(state["model"])
        if self.ema is not None:
            if "ema" not in state:
                raise ValueError(f"{self.ckpt_path}: has no weight average to resume --ema {self.cfg.ema} from "
                                 "(it was trained without --ema)")
            self.ema.model.load_state_dict(state["ema"])
        lr_tensor = self.opt.param_groups[0]["lr"]
        self.opt.load_state_dict(state["optimizer"])
        if isinstance(lr_tensor, torch.Tensor):          # keep the device tensor the graph reads
            for g in self.opt.param_groups:
                g["lr"] = lr_tensor
        self.sampler.load_state(state["sampler"])
        self.start = int(state["iter"])
        if self.cfg.time_budget_s:  # keep the length the budgeted run settled on
            self.horizon = int(state.get("horizon", self.cfg.iters))
        self.segments = state.get("segments_before", [])
        self.prior_iters = sum(int(s.get("iters") or 0) for s in self.segments)
        self._seg_wall_before = float(state.get("wall_s", 0.0))
        log_path = self.out / "train_log.csv"
        if log_path.is_file():
            log = pd.read_csv(log_path)
            seg_no = len(self.segments) + 1
            keep = (log["segment"] < seg_no) | (log["iter"] <= self.start) if "segment" in log else log["iter"] <= self.start
            self.log_rows = log[keep].to_dict("records")

    _seg_wall_before = 0.0

    def _build_step(self) -> None:
        cfg = self.cfg
        per_rank = cfg.batch // self.world
        if self.use_graph:
            p, s = cfg.patch, cfg.scale
            self.stepper = GraphStep(self.net, self.model, self.opt, (per_rank, 3, p, p),
                                     (per_rank, 3, p * s, p * s), self.device, cfg.amp, cfg.channels_last, self.ema,
                                     cfg.loss)
        else:
            self.stepper = EagerStep(self.net, self.opt, self.device, cfg.amp, cfg.channels_last, self.ema, cfg.loss)

    @property
    def eval_model(self) -> torch.nn.Module:
        """What validation grades and model.safetensors holds: the weight average with --ema, else the weights."""
        return self.ema.model if self.ema is not None else self.model

    def _on_stream(self):
        import contextlib
        return torch.cuda.stream(self.stream) if self.stream is not None else contextlib.nullcontext()

    def sync(self) -> None:
        if self.stream is not None:
            self.stream.synchronize()

    @property
    def done(self) -> bool:
        return self.it >= self.horizon

    def step(self) -> None:
        """One iteration: draw the batch, set the lr, run the step; then log and save when due."""
        cfg = self.cfg
        with self._on_stream():
            self.it += 1
            set_lr(self.opt, cfg.lr * lr_factor(cfg, self.it - 1, self.horizon))   # the lr of this step
            per_rank = cfg.batch // self.world
            sl = slice(self.rank * per_rank, (self.rank + 1) * per_rank)
            if self.use_graph:
                lr_u8, hr_u8 = self.sampler.sample_uint8()
                self.stepper(lr_u8[sl], hr_u8[sl])
            else:
                lr_b, hr_b = self.sampler.sample() if cfg.fast else self.sampler.sample_loop()
                self.stepper(lr_b[sl], hr_b[sl])
            self.n_since_log += 1
            self.bar.update(1)
            # a validation is due every val_every iterations whatever log_every is (it validates inside a log row)
            if self.it % cfg.log_every == 0 or self.it % cfg.val_every == 0 or self.done:
                self.log()
            if self.it % cfg.ckpt_every == 0 or self.done:
                self.save()

    def log(self, validate_now: bool = False) -> None:
        cfg = self.cfg
        mean_loss = self.stepper.loss_sum / max(1, self.n_since_log)
        if self.world > 1:
            dist.all_reduce(mean_loss)
            mean_loss = mean_loss / self.world
        self.sync()
        now = time.perf_counter()
        n = self.n_since_log
        row = {"segment": len(self.segments) + 1, "iter": self.it, "total_iter": self.prior_iters + self.it,
               "loss": float(mean_loss), "lr": cfg.lr * lr_factor(cfg, self.it, self.horizon),  # the next step's
               "it_per_s": n / (now - self.t_last), "patches_per_s": n * cfg.batch / (now - self.t_last),
               "wall_s": self.wall_s(now), "val_psnr": float("nan")}
        if self.main and (validate_now or self.it % cfg.val_every == 0 or self.done):
            row["val_psnr"] = validate(self.eval_model, self.val_pairs, cfg.scale, self.device)
            for name, pairs in self.monitor.items():
                row[f"psnr_{name}"] = validate(self.eval_model, pairs, cfg.scale, self.device)
        self.log_rows.append(row)
        self.bar.set_postfix(loss=f"{row['loss']:.4f}", val=f"{row['val_psnr']:.2f}")
        self.stepper.loss_sum.zero_()
        self.n_since_log, self.t_last = 0, time.perf_counter()

    def wall_s(self, now: float | None = None) -> float:
        return self.wall_before + ((now or time.perf_counter()) - self.t_begin)

    def save(self) -> None:
        if not self.main:
            return
        state = {"model": self.model.state_dict(), "optimizer": self.opt.state_dict(),
                 "sampler": self.sampler.state(), "iter": self.it, "horizon": self.horizon,
                 "segments_before": self.segments, "wall_s": self.wall_s()}
        if self.ema is not None:
            state["ema"] = self.ema.model.state_dict()
        tmp = self.ckpt_path.with_suffix(".pt.tmp")
        torch.save(state, tmp)
        os.replace(tmp, self.ckpt_path)
        write_table(pd.DataFrame(self.log_rows), self.out / "train_log.csv")

    def segment(self) -> dict:
        cfg = self.cfg
        wall = self.wall_s()
        return {"segment": len(self.segments) + 1, "model": cfg.model, "iters": self.it, "lr": cfg.lr,
                "schedule": cfg.schedule, "batch": cfg.batch, "patch": cfg.patch, "seed": cfg.seed,
                "device": device_name(self.device), "fast": cfg.fast, "graph": self.use_graph, "amp": cfg.amp,
                "channels_last": cfg.channels_last, "awms_one_conv": cfg.awms_one_conv,
                "wall_s": wall, "concurrent": self.concurrent,
                "gpu_s": wall * self.gpu_share if self.device.type == "cuda" else 0.0,
                "init_from": cfg.init_from, "date": time.strftime("%Y-%m-%d"),
                # the data of this segment (a fine-tune may add downscaled copies the earlier segments lacked)
                "train_subset": cfg.train_subset, "hr_rescale": cfg.hr_rescale, "min_hr_side": cfg.min_hr_side,
                "train_pairs": self.n_train,
                "ema": cfg.ema, "loss": cfg.loss}

    def _write_recipe(self, final: bool) -> None:
        if not self.main:
            return
        cfg = self.cfg
        segs = self.segments + [self.segment()]
        self.recipe = {**asdict(cfg), "world_size": self.world, "train_images": self.n_images, "train_pairs": self.n_train,
                       "val_images": len(self.val_pairs), "skipped": self.skipped,
                       **environment(self.device, cfg.amp if cfg.amp != "none" else "fp32"),
                       "segments": segs, "total_iters": sum(int(s["iters"] or 0) for s in segs),
                       "total_gpu_s": sum(float(s.get("gpu_s") or 0.0) for s in segs)}
        if final:
            # a time budget may end a run before cfg.iters yet at the horizon it fitted (its cosine schedule ran
            # to the end): that run is finished too (scripts/adopt_finetune.py takes either)
            self.recipe["iters_reached"] = self.it
            self.recipe["schedule_complete"] = self.it >= self.horizon and not self.cut_short
        atomic_write_text(self.out / "recipe.json", json.dumps(self.recipe, indent=2, default=str) + "\n")

    def close_segment(self) -> None:
        """The last row (validated) and the resumable state at the iteration the run ended on."""
        with self._on_stream():
            last = self.log_rows[-1] if self.log_rows else None
            seg = len(self.segments) + 1
            if self.n_since_log or last is None or last.get("segment", seg) != seg or last["iter"] != self.it:
                self.log(validate_now=True)
            elif self.main and np.isnan(last["val_psnr"]):
                last["val_psnr"] = validate(self.eval_model, self.val_pairs, self.cfg.scale, self.device)
                for name, pairs in self.monitor.items():
                    last[f"psnr_{name}"] = validate(self.eval_model, pairs, self.cfg.scale, self.device)
            self.save()

    def finish(self) -> dict:
        self.close_segment()
        self.sync()
        self.bar.close()
        summary = {"iters": self.it, "out": str(self.out), "seconds": time.perf_counter() - self.t_begin}
        if self.main:
            final = self.eval_model.to(memory_format=torch.contiguous_format)
            save_native(final, self.out / "model.safetensors",
                        {"trained_iters": str(self.prior_iters + self.it), "recipe": "recipe.json"},
                        dtype=getattr(torch, self.cfg.save_dtype))
            self._write_recipe(final=True)
            if self.log_rows:
                summary.update({k: self.log_rows[-1][k] for k in ("loss", "val_psnr")})
        if self.world > 1:
            dist.barrier()
            dist.destroy_process_group()
        return summary


# ---------------------------------------------------------------------------------- the budget
@dataclass(frozen=True)
class TimeBudget:
    """Sets a run's length from its measured speed, so that it ends inside ``seconds``.

    The first ``warmup`` rounds (cuDNN autotuning, allocator) are not timed; after ``probe`` more the
    horizon (and with it the cosine schedule) becomes what fits in the rest of the budget times ``safety``
    (the share kept for the final validation and save). In one process the horizon is re-fitted every
    ``refit_every`` rounds from the speed measured since the warm-up, validation included (it may grow or
    shrink, never past ``cfg.iters``), and a hard stop at the budget remains."""
    seconds: float
    warmup: int = 10
    probe: int = 50
    safety: float = 0.95
    refit_every: int = 100           # rounds between re-fits (each waits for the device once)


def _cut(t) -> None:
    """End a run at the iteration it reached; one stopped before its horizon did not finish its schedule (its
    lr had not decayed), which recipe.json records as ``schedule_complete`` false."""
    t.cut_short = t.cut_short or t.it < t.horizon
    t.horizon = t.it


class _BudgetClock:
    def __init__(self, budget: TimeBudget, trainers: list[Trainer]):
        self.budget, self.trainers = budget, trainers
        self.t0, self.t_warm, self.rounds = time.perf_counter(), None, 0
        self.distributed = trainers[0].world > 1

    def _fit(self) -> None:
        b = self.budget
        for t in self.trainers:
            t.sync()
        now = time.perf_counter()
        rate = (self.rounds - b.warmup) / (now - self.t_warm)
        left = b.seconds - (now - self.t0)
        for t in self.trainers:
            if left <= 0:                 # hard stop: every run ends here (finish() validates)
                _cut(t)
                continue
            # the horizon follows the measured speed both ways (capped by cfg.iters): a slow start (graph
            # capture, autotuning) must not shorten the whole run, as a shrink-only fit did (GPU runs of
            # 2026-11-27 ended 50-60 s inside their budgets)
            t.horizon = min(t.cfg.iters, max(t.it, t.it + int(rate * b.safety * left)))
            if self.distributed:          # every rank stops at the same iteration
                h = torch.tensor([t.horizon], device=t.device)
                dist.broadcast(h, 0)
                t.horizon = int(h)
            t.bar.total = t.horizon

    def after_round(self) -> None:
        self.rounds += 1
        b = self.budget
        # out of time, even before the first fit (slow steps); under DDP the fits' broadcast stops every rank together
        if not self.distributed and time.perf_counter() - self.t0 >= b.seconds:
            for t in self.trainers:
                _cut(t)
            return
        if self.rounds == b.warmup:
            for t in self.trainers:
                t.sync()
            self.t_warm = time.perf_counter()
        elif self.rounds == b.warmup + b.probe:
            self._fit()
        elif self.rounds > b.warmup + b.probe and not self.distributed and self.rounds % b.refit_every == 0:
            self._fit()


class TrainingInterrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM during training. Raised after every run has validated and saved at the iteration it
    reached (``checkpoint.pt``, ``model.safetensors``, ``train_log.csv``, ``recipe.json``), so ``--resume``
    continues exactly; a KeyboardInterrupt, so that a sweep stops rather than grading the unfinished runs."""

    def __init__(self, signum: int, summary):
        self.signum, self.summary = signum, summary
        super().__init__(f"interrupted by {signal.Signals(signum).name}: the runs saved where they stopped, "
                         "--resume continues them")


@contextmanager
def _stop_on_signals(enabled: bool):
    """Yields a list that a first SIGINT or SIGTERM appends its number to (the loop then ends after its
    round); a second signal acts as it would without this. Off under DDP (every rank must stop at the same
    iteration) and off the main thread (Python delivers signals there only)."""
    caught: list[int] = []
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield caught
        return
    previous = {}

    def handler(signum, frame):
        caught.append(signum)
        for s, h in previous.items():
            signal.signal(s, h)

    for s in (signal.SIGINT, signal.SIGTERM):
        previous[s] = signal.signal(s, handler)
    try:
        yield caught
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def _run(trainers: list[Trainer], budget: TimeBudget | None, stop: list[int]) -> None:
    """Round-robin: one iteration of each unfinished trainer per round (each on its own CUDA stream), until
    every one is done or ``stop`` (from :func:`_stop_on_signals`) holds a signal."""
    clock = _BudgetClock(budget, trainers) if budget is not None else None
    while not all(t.done for t in trainers) and not stop:
        for t in trainers:
            if not t.done:
                t.step()
        if clock is not None:
            clock.after_round()


def train(cfg: TrainConfig, resume: bool = False, progress: bool = True) -> dict:
    """Train, writing ``<out>/checkpoint.pt`` (resumable state), ``<out>/model.safetensors`` (+ .json),
    ``<out>/train_log.csv`` and ``<out>/recipe.json``. Returns a summary dict; a SIGINT or SIGTERM saves all of
    them where the run stopped and raises :class:`TrainingInterrupted` (its ``summary`` is that dict)."""
    if resume and (done := _finished(cfg)) is not None:
        return done     # a finished run is left as it is (its files are not rewritten)
    trainer = Trainer(cfg, resume=resume, progress=progress)
    with _stop_on_signals(trainer.world == 1) as stop:
        _run([trainer], TimeBudget(cfg.time_budget_s) if cfg.time_budget_s else None, stop)
    summary = trainer.finish()
    if stop:
        raise TrainingInterrupted(stop[0], summary)
    return summary


def measure_solo(trainers: list[Trainer], iters: int = 30, stop: list[int] | tuple = ()) -> list[float]:
    """Each trainer's step time alone on the device (seconds per iteration), from ``iters`` real
    training steps run one trainer at a time (fewer once ``stop`` holds a signal)."""
    out = []
    for t in trainers:
        t.sync()
        t0, steps = time.perf_counter(), 0
        while steps < iters and not t.done and not stop:
            t.step()
            steps += 1
        t.sync()
        out.append((time.perf_counter() - t0) / max(1, steps))
    return out


def train_group(cfgs: list[TrainConfig], time_budget_s: float | None = None, resume: bool = False,
                progress: bool = False) -> pd.DataFrame:
    """Train several runs together in one process, one CUDA stream each, so their kernels share the
    GPU. Every run gets the same number of iterations; with a time budget the length is set from the
    group's measured speed. Each run's GPU seconds are the wall time times its share of the work
    (its solo step time over the sum of all solo step times, measured first). Returns one row per run
    with the solo and group throughput, i.e. what the group saved against training one after another. A SIGINT
    or SIGTERM ends every run at its current iteration, saved, and raises :class:`TrainingInterrupted` (its
    ``summary`` is that table)."""
    t0 = time.perf_counter()          # the budget covers the set-up (data, graph capture) too
    trainers = [Trainer(c, resume=resume, progress=progress) for c in cfgs]
    for t in trainers:                # a run's wall time starts when the group starts training
        t.t_begin = t.t_last = time.perf_counter()
    with _stop_on_signals(trainers[0].world == 1) as stop:
        solo = measure_solo(trainers, stop=stop)
        total = sum(solo)
        for t, s in zip(trainers, solo):
            t.gpu_share, t.concurrent = s / total, len(trainers)
        left = None if time_budget_s is None else time_budget_s - (time.perf_counter() - t0)
        t1 = time.perf_counter()
        it1 = trainers[0].it
        _run(trainers, TimeBudget(left) if left is not None else None, stop)
    group_s = time.perf_counter() - t1
    rows = []
    for t, s in zip(trainers, solo):
        summary = t.finish()
        rows.append({"model": t.cfg.model, "scale": t.cfg.scale, "out": summary["out"], "batch": t.cfg.batch,
                     "patch": t.cfg.patch, "lr": t.cfg.lr, "iters": summary["iters"],
                     "solo_it_per_s": 1 / s, "group_it_per_s": (t.it - it1) / max(group_s, 1e-9),
                     "gpu_share": t.gpu_share, "gpu_s": t.segment()["gpu_s"],
                     "val_psnr": summary.get("val_psnr", float("nan"))})
    df = pd.DataFrame(rows)
    # one after another would take sum(solo) per round; the group took group_s / rounds
    df["group_speedup_vs_sequential"] = (total * (trainers[0].it - it1)) / max(group_s, 1e-9)
    if stop:
        raise TrainingInterrupted(stop[0], df)
    return df
