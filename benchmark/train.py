"""The trainer: the paper's recipe (paper_notes.md 5.4) on any registry variant, resumable and DDP-ready.

Recipe: random 48x48 LR patches with flips and transposes, L1 loss, Adam (0.9, 0.999, 1e-8), lr 1e-3
halved every 200k iterations (the official 200 epochs x 1000 iterations; ``step_every`` shortens it) or
cosine, batch 16. LR made with the same MATLAB bicubic as evaluation and cached. Images live in memory
(on the training device), so sampling never starves a GPU. Validation runs on images held out of the
training folders, never on the test sets.

Multi-GPU / multi-node: launch with ``torchrun``; every rank draws the same global batch from the same
generator and trains on its own slice, so a 2-process run follows the 1-process run step for step.
"""
from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
import torch.nn.functional as F
from tqdm.auto import tqdm

from .checkpoints import CheckpointError, read_checkpoint, save_native
from .data import IMAGE_EXTS, ImageReadError, LRCache, LR_CACHE_VERSION, decode_image
from .imresize import bicubic_downscale, modcrop
from .metrics import psnr, rgb_to_y, shave
from .atomic import atomic_write_text
from .results import environment, write_table


@dataclass(frozen=True)
class TrainConfig:
    model: str = "awsrn-s"
    scale: int = 4
    data: tuple[str, ...] = ()
    out: str = "runs/awsrn-s-x4"
    iters: int = 1000
    batch: int = 16
    patch: int = 48                    # LR patch side
    lr: float = 1e-3
    schedule: str = "step"             # 'step' (halve every step_every) or 'cosine'
    step_every: int = 200_000
    seed: int = 1
    val_images: int = 10               # held out of the training folders (every k-th image)
    val_every: int = 500
    log_every: int = 50
    ckpt_every: int = 500
    device: str = "cpu"
    amp: str = "none"                  # none, bf16, fp16
    channels_last: bool = False
    compile: bool = False
    init_from: str | None = None       # e.g. a full-AWMS checkpoint for a pruned variant
    time_budget_s: float | None = None  # stop early: at iteration 60 the run sets its length
                                        # (and the cosine horizon) to what fits the budget
    overrides: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.schedule not in ("step", "cosine"):
            raise ValueError(f"schedule must be 'step' or 'cosine', got {self.schedule!r}")
        if self.amp not in ("none", "bf16", "fp16"):
            raise ValueError(f"amp must be none, bf16 or fp16, got {self.amp!r}")
        if not self.data:
            raise ValueError("train needs at least one data folder")


# ------------------------------------------------------------------------------------------ data
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


def load_pairs(paths, scale: int, cache: LRCache, min_hr: int = 0):
    """(HR uint8 (3,H,W), LR uint8 (3,h,w)) tensors; gray images become 3 channels; too-small and
    unreadable images are reported and skipped."""
    import hashlib
    pairs, skipped = [], []
    for p in paths:
        try:
            data = p.read_bytes()
            hr = decode_image(p, data)
        except (OSError, ImageReadError) as exc:
            skipped.append((str(p), str(exc)))
            continue
        if hr.ndim == 2:
            hr = np.repeat(hr[..., None], 3, axis=2)
        hr = modcrop(hr, scale)
        if min(hr.shape[:2]) < max(min_hr, scale):
            skipped.append((str(p), f"smaller than the {min_hr}px HR patch"))
            continue
        key = hashlib.sha256(data).hexdigest()
        method = f"matlab-{LR_CACHE_VERSION}"
        lr = cache.get(key, scale, method)
        hr_t = torch.from_numpy(hr).permute(2, 0, 1).contiguous()
        if lr is None or lr.ndim != 3:
            lr_t = bicubic_downscale(hr_t, scale)
            cache.put(key, scale, method, lr_t.permute(1, 2, 0).numpy())
        else:
            lr_t = torch.from_numpy(lr).permute(2, 0, 1).contiguous()
        pairs.append((hr_t, lr_t))
    return pairs, skipped


class PatchSampler:
    """Random aligned LR/HR patches with flips and transposes, drawn from images in memory."""

    def __init__(self, pairs, scale: int, patch: int, device, seed: int):
        self.pairs = [(h.to(device), l.to(device)) for h, l in pairs]
        self.scale, self.patch = scale, patch
        self.gen = torch.Generator().manual_seed(seed)

    def sample(self, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
        s, p, g = self.scale, self.patch, self.gen
        idx = torch.randint(len(self.pairs), (batch,), generator=g).tolist()
        flips = torch.randint(2, (batch, 3), generator=g).tolist()
        lrs, hrs = [], []
        for i, (hf, vf, tr) in zip(idx, flips):
            hr, lr = self.pairs[i]
            h, w = lr.shape[-2:]
            y = int(torch.randint(h - p + 1, (1,), generator=g))
            x = int(torch.randint(w - p + 1, (1,), generator=g))
            a, b = lr[:, y:y + p, x:x + p], hr[:, y * s:(y + p) * s, x * s:(x + p) * s]
            if hf:
                a, b = a.flip(-1), b.flip(-1)
            if vf:
                a, b = a.flip(-2), b.flip(-2)
            if tr:
                a, b = a.transpose(-2, -1), b.transpose(-2, -1)
            lrs.append(a)
            hrs.append(b)
        return torch.stack(lrs).float() / 255.0, torch.stack(hrs).float() / 255.0

    def state(self) -> torch.Tensor:
        return self.gen.get_state()

    def load_state(self, state: torch.Tensor) -> None:
        self.gen.set_state(state)


# ------------------------------------------------------------------------------------- training
def lr_lambda(cfg: TrainConfig, horizon: dict):
    """``horizon['iters']`` is the run's length (it can shrink once under a time budget)."""
    if cfg.schedule == "cosine":
        return lambda it: 0.5 * (1 + math.cos(math.pi * min(it, horizon["iters"]) / max(1, horizon["iters"])))
    return lambda it: 0.5 ** (it // cfg.step_every)


def load_pruned(model, path) -> None:
    """Initialise a (pruned-AWMS) model from a checkpoint of the same structure with more AWMS branches:
    the dropped branches' keys are removed, everything else must match exactly."""
    ck = read_checkpoint(path)
    keep = set(model.cfg.awms_kernels)
    if not keep <= set(ck.config.awms_kernels):
        raise CheckpointError(f"{path}: has AWMS kernels {ck.config.awms_kernels}, cannot initialise {sorted(keep)}")
    sd = {k: v for k, v in ck.state_dict.items()
          if not any(k.startswith((f"tail.tail_k{kk}.", f"tail.scale_k{kk}.")) for kk in ck.config.awms_kernels
                     if kk not in keep)}
    own = model.state_dict()
    missing, unexpected = sorted(set(own) - set(sd)), sorted(set(sd) - set(own))
    bad = [k for k in set(own) & set(sd) if own[k].shape != sd[k].shape]
    if missing or unexpected or bad:
        raise CheckpointError(f"{path}: does not fit {model.cfg}: missing {missing[:5]}, unexpected "
                              f"{unexpected[:5]}, shape mismatch {bad[:5]}")
    model.load_state_dict(sd)


@torch.no_grad()
def validate(model, pairs, scale: int, device) -> float:
    """Mean Y-PSNR (shave = scale) of the held-out images."""
    was = model.training
    model.eval()
    vals = []
    for hr, lr in pairs:
        sr = model(lr.to(device).unsqueeze(0).float() / 255.0)[0]
        sr = (sr.clamp(0, 1) * 255).round().double()
        vals.append(psnr(shave(rgb_to_y(sr), scale), shave(rgb_to_y(hr.to(device).double()), scale)))
    model.train(was)
    return float(np.mean(vals)) if vals else float("nan")


def _dist_info():
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return world, int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))


def _finished(cfg: TrainConfig) -> dict | None:
    """The summary of a run in ``cfg.out`` that already reached its last iteration, else None."""
    out = Path(cfg.out)
    if not ((out / "checkpoint.pt").is_file() and (out / "model.safetensors").is_file()):
        return None
    state = torch.load(out / "checkpoint.pt", map_location="cpu", weights_only=True)
    target = int(state.get("horizon", cfg.iters)) if cfg.time_budget_s else cfg.iters
    if int(state["iter"]) < target:
        return None
    summary = {"iters": int(state["iter"]), "out": str(out), "seconds": 0.0}
    log_path = out / "train_log.csv"
    if log_path.is_file():
        last = pd.read_csv(log_path).iloc[-1]
        summary.update(loss=float(last["loss"]), val_psnr=float(last["val_psnr"]))
    return summary


def train(cfg: TrainConfig, resume: bool = False, progress: bool = True) -> dict:
    """Train, writing ``<out>/checkpoint.pt`` (resumable state), ``<out>/model.safetensors`` (+ .json),
    ``<out>/train_log.csv`` and ``<out>/recipe.json``. Returns a summary dict."""
    from .registry import create_model

    world, rank, local_rank = _dist_info()
    if resume and (done := _finished(cfg)) is not None:
        return done     # a finished run is left as it is (its files are not rewritten)
    device = torch.device(cfg.device)
    if device.type == "cuda" and world > 1:
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if cfg.batch % world:
        raise ValueError(f"batch {cfg.batch} is not divisible by the {world} processes")
    out = Path(cfg.out)
    main = rank == 0
    if main:
        out.mkdir(parents=True, exist_ok=True)

    torch.manual_seed(cfg.seed)
    model = create_model(cfg.model, scale=cfg.scale, **cfg.overrides).to(device)
    ckpt_path = Path(cfg.out) / "checkpoint.pt"
    if cfg.init_from and not (resume and ckpt_path.is_file()):   # a resumed run restores its own state below
        load_pruned(model, cfg.init_from)
    model.train()
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=(0.9, 0.999), eps=1e-8)
    horizon = {"iters": cfg.iters}
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(cfg, horizon))

    paths = list_training_images(cfg.data)
    train_paths, val_paths = split_train_val(paths, cfg.val_images)
    cache = LRCache()
    pairs, skipped = load_pairs(train_paths, cfg.scale, cache, min_hr=cfg.patch * cfg.scale)
    val_pairs, _ = load_pairs(val_paths, cfg.scale, cache)
    if not pairs:
        raise ValueError(f"no training image is at least {cfg.patch * cfg.scale}px on each side")
    sampler = PatchSampler(pairs, cfg.scale, cfg.patch, device, cfg.seed)

    start, log_rows = 0, []
    if resume and ckpt_path.is_file():
        state = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        sampler.load_state(state["sampler"])
        start = int(state["iter"])
        if cfg.time_budget_s:  # keep the length the budgeted run settled on
            horizon["iters"] = int(state.get("horizon", cfg.iters))
        log_path = out / "train_log.csv"
        if log_path.is_file():
            log_rows = pd.read_csv(log_path).query("iter <= @start").to_dict("records")
    net = model
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)
    if cfg.compile:
        net = torch.compile(net)
    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(cfg.amp)
    scaler = torch.amp.GradScaler(device.type, enabled=cfg.amp == "fp16")
    per_rank = cfg.batch // world

    def save_state(it: int) -> None:
        if not main:
            return
        state = {"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                 "sampler": sampler.state(), "iter": it, "horizon": horizon["iters"]}
        tmp = ckpt_path.with_suffix(".pt.tmp")
        torch.save(state, tmp)
        os.replace(tmp, ckpt_path)
        write_table(pd.DataFrame(log_rows), out / "train_log.csv")

    if main:
        recipe = {**asdict(cfg), "world_size": world, "train_images": len(pairs), "val_images": len(val_pairs),
                  "skipped": skipped, **environment(device, cfg.amp if cfg.amp != "none" else "fp32")}
        atomic_write_text(out / "recipe.json", json.dumps(recipe, indent=2, default=str) + "\n")
    bar = tqdm(total=cfg.iters, initial=start, disable=not (progress and main), desc=f"train {cfg.model} x{cfg.scale}",
               unit="it")
    t_last, losses = time.perf_counter(), []
    t_begin = t_last
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    it = start
    while it < horizon["iters"]:
        it += 1
        if cfg.time_budget_s and it == start + 10:
            sync()
            t_warm = time.perf_counter()   # the first iterations include cuDNN / allocator warm-up
        if cfg.time_budget_s and it == start + 60 and horizon["iters"] == cfg.iters:
            sync()
            rate = 50 / (time.perf_counter() - t_warm)
            fit = it + int(rate * 0.97 * (cfg.time_budget_s - (time.perf_counter() - t_begin)))
            fit = max(it, fit - fit % cfg.log_every)
            horizon["iters"] = min(cfg.iters, fit)
            if world > 1:  # every rank must stop at the same iteration
                t = torch.tensor([horizon["iters"]], device=device)
                dist.broadcast(t, 0)
                horizon["iters"] = int(t)
            bar.total = horizon["iters"]
        lr_b, hr_b = sampler.sample(cfg.batch)
        lr_b, hr_b = lr_b[rank * per_rank:(rank + 1) * per_rank], hr_b[rank * per_rank:(rank + 1) * per_rank]
        if cfg.channels_last:
            lr_b = lr_b.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            loss = F.l1_loss(net(lr_b).float(), hr_b)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        sched.step()
        losses.append(loss.detach())
        bar.update(1)
        last = it == horizon["iters"]
        if it % cfg.log_every == 0 or last:
            mean_loss = torch.stack(losses).mean()
            if world > 1:
                dist.all_reduce(mean_loss)
                mean_loss = mean_loss / world
            sync()
            now = time.perf_counter()
            n = len(losses)
            row = {"iter": it, "loss": float(mean_loss), "lr": opt.param_groups[0]["lr"],
                   "it_per_s": n / (now - t_last), "patches_per_s": n * cfg.batch / (now - t_last),
                   "val_psnr": float("nan")}
            if main and (it % cfg.val_every == 0 or last):
                row["val_psnr"] = validate(model, val_pairs, cfg.scale, device)
            log_rows.append(row)
            bar.set_postfix(loss=f"{row['loss']:.4f}", val=f"{row['val_psnr']:.2f}")
            losses, t_last = [], time.perf_counter()
        if it % cfg.ckpt_every == 0 or last:
            save_state(it)
    bar.close()
    summary = {"iters": horizon["iters"], "out": str(out), "seconds": time.perf_counter() - t_begin}
    if main:
        final = model.to(memory_format=torch.contiguous_format).cpu().eval()
        save_native(final, out / "model.safetensors", {"trained_iters": str(horizon["iters"]), "recipe": "recipe.json"})
        recipe["iters_reached"] = horizon["iters"]
        atomic_write_text(out / "recipe.json", json.dumps(recipe, indent=2, default=str) + "\n")
        if log_rows:
            summary.update({k: log_rows[-1][k] for k in ("loss", "val_psnr")})
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()
    return summary
