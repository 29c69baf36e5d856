"""The evaluation runner: model x scales x datasets under a protocol -> per-image rows and means.

Data flows one way: image refs -> HR (+ cached LR) -> model -> protocol.grade -> results store.
A bad image is reported by path and skipped; every graded image is in the store at once, so an
interrupted run resumes where it stopped (losing at most the images in flight: one forwarding, one grading).
"""
from __future__ import annotations

import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd
import torch
from PIL import Image
from torch import nn
from tqdm.auto import tqdm

from .checkpoints import model_from_checkpoint
from .data import (ImageReadError, ImageRef, LRCache, LR_CACHE_VERSION, image_sha256, list_images, model_input,
                   prepare_pair, to_chw)
from .inference import Runner
from .protocols import Protocol, get_protocol
from .results import ResultStore, environment

ID_COLS = ["model", "weights_sha256", "scale", "dataset", "protocol", "self_ensemble", "deploy"]


@dataclass
class EvalResult:
    images: pd.DataFrame                 # one row per image
    summary: pd.DataFrame                # one row per (model, scale, dataset, ...): mean psnr/ssim
    skipped: list[tuple[str, str]] = field(default_factory=list)   # (path, reason)
    wall_s: float = 0.0
    reused: int = 0                      # images whose rows came from the store (not graded again)


RANDOM_INIT_SEED = 0


def model_for(model, scale: int, weights, deploy: bool, pretrained: bool = False,
              data_root=None) -> tuple[nn.Module, str, str]:
    """(module, model name, weights id) for one scale; ``pretrained``: the registry name's trained weights at
    this scale (``registry.pretrained_weights``: a peer's official weights beside ``data_root``)."""
    from .registry import create_model, get_variant, pretrained_weights
    if pretrained:
        if not isinstance(model, str):
            raise ValueError("pretrained needs a registry name as the model (e.g. awsrn-s)")
        if weights is not None:
            raise ValueError(f"{model}: give weights ({weights}) or pretrained, not both")
        weights = pretrained_weights(model, scale, data_root)
    if isinstance(model, nn.Module):
        prov = getattr(model, "provenance", None)
        name = prov.model if prov is not None else type(model).__name__.lower()
        wid = prov.sha256 if prov is not None and prov.sha256 else "random-init"
        m = model
    else:
        if model is None:
            if weights is None:
                raise ValueError("evaluate needs a model name or weights")
            m, name = model_from_checkpoint(weights, scale), "checkpoint"
        else:
            name = get_variant(model).name
            with torch.random.fork_rng():      # a model without weights is seeded, so its rows have an identity
                torch.manual_seed(RANDOM_INIT_SEED)
                m = create_model(model, scale=scale, weights=weights)
        wid = m.provenance.sha256 or ("none" if name == "bicubic" else f"random-init-seed{RANDOM_INIT_SEED}")
    if getattr(m, "scale", scale) != scale:
        raise ValueError(f"model {name} is x{m.scale} but x{scale} was asked for")
    if deploy:
        from .deploy import reparameterize
        m = reparameterize(m)
    return m, name, wid


def _save_sr(sr: torch.Tensor, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = (sr.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    Image.fromarray(arr).save(path)


def summarize(images: pd.DataFrame) -> pd.DataFrame:
    if images.empty:
        return pd.DataFrame(columns=ID_COLS + ["psnr", "ssim", "n_images", "forward_s"])
    # a non-finite PSNR (SR identical to HR) would make the mean inf: it is left out and counted
    finite = images.assign(psnr=images["psnr"].where(np.isfinite(images["psnr"])),
                           ssim=images["ssim"].where(np.isfinite(images["ssim"])))
    g = finite.groupby(ID_COLS, sort=False, dropna=False)
    out = g.agg(psnr=("psnr", "mean"), ssim=("ssim", "mean"), n_images=("image", "size"),
                forward_s=("forward_s", "sum")).reset_index()
    out["n_nonfinite"] = g["psnr"].apply(lambda v: int(v.isna().sum())).values
    return out


@dataclass(frozen=True)
class RunKey:
    """One (model, weights, scale, test set, protocol, options) run: the key of its rows in the store."""
    model: str
    weights_sha256: str
    scale: int
    dataset: str
    protocol: Protocol
    self_ensemble: bool
    deploy: bool

    def store_key(self) -> dict:
        return {"model": self.model, "weights": self.weights_sha256[:12], "scale": self.scale,
                "dataset": self.dataset, "protocol": self.protocol.name, "se": int(self.self_ensemble),
                "deploy": int(self.deploy),
                "lr": f"{self.protocol.lr_method}-{LR_CACHE_VERSION}"}   # a new resize never reuses old rows

    def row(self, graded: "Graded", image_sha256: str | None, env: dict) -> dict:
        return {"model": self.model, "weights_sha256": self.weights_sha256, "scale": self.scale,
                "dataset": self.dataset, "protocol": self.protocol.name, "self_ensemble": bool(self.self_ensemble),
                "deploy": bool(self.deploy), "image": graded.ref.name, "image_sha256": image_sha256,
                "psnr": graded.psnr, "ssim": graded.ssim, "forward_s": graded.forward_s,
                "hr_h": graded.hr_shape[0], "hr_w": graded.hr_shape[1], **env}


@dataclass(frozen=True)
class Graded:
    ref: ImageRef
    psnr: float
    ssim: float
    forward_s: float
    sr: torch.Tensor
    hr_shape: tuple


@dataclass(frozen=True)
class Failed:
    ref: ImageRef
    reason: str


# ------------------------------------------------------------------------------------------ stages
def stored_rows(store: ResultStore | None, key: RunKey, shas: dict[str, str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(rows to reuse, rows to keep untouched) of a run. Rows are keyed by image content: a stored row is
    reused only for the same bytes; rows of images not in this run stay in the store but are not reported."""
    done = store.read_run("eval", key.store_key()) if store else pd.DataFrame()
    if done.empty or "image_sha256" not in done:
        return pd.DataFrame(), pd.DataFrame()
    done["image"] = done["image"].astype(str)
    same = done["image_sha256"] == done["image"].map(shas)
    return done[same], done[~done["image"].isin(list(shas))]


def graded_images(runner: Runner, refs: list[ImageRef], scale: int, proto: Protocol, cache: LRCache,
                  dev: torch.device) -> Iterator[Graded | Failed]:
    """Each image forwarded and graded, in order. A small pipeline: while the model runs on image i, a
    worker decodes image i+1 and grades image i-1, so the suite's own work hides behind the forward passes."""
    def collect(ref, grading, secs, sr, hr_shape) -> Graded | Failed:
        try:
            psnr, ssim = grading.result()
        except (ImageReadError, ValueError) as exc:
            return Failed(ref, str(exc))
        return Graded(ref, psnr, ssim, secs, sr, hr_shape)

    with ThreadPoolExecutor(max_workers=2) as pool:
        prepare = lambda r: prepare_pair(r, scale, proto, cache)  # noqa: E731
        upcoming = pool.submit(prepare, refs[0]) if refs else None
        pending = None
        for i, ref in enumerate(refs):
            try:
                hr, lr = upcoming.result()
            except (ImageReadError, ValueError) as exc:
                hr = exc
            upcoming = pool.submit(prepare, refs[i + 1]) if i + 1 < len(refs) else None
            if isinstance(hr, Exception):
                yield Failed(ref, str(hr))
                continue
            sr, secs = runner(model_input(lr, dev))
            job = (ref, pool.submit(proto.grade, sr[0], to_chw(hr).to(dev), scale), secs, sr[0], hr.shape)
            if pending is not None:
                yield collect(*pending)
            pending = job
        if pending is not None:
            yield collect(*pending)


def evaluate_set(runner: Runner, key: RunKey, refs: list[ImageRef], store: ResultStore | None, cache: LRCache,
                 dev: torch.device, env: dict, skipped: list, save_dir: Path | None = None,
                 progress: bool = True) -> tuple[pd.DataFrame, int]:
    """One test set: reuse the stored rows, grade the rest, store each new row at once. -> (rows, reused)."""
    shas = {r.name: image_sha256(r) for r in refs}
    kept, others = stored_rows(store, key, shas)
    rows = kept.to_dict("records")
    have = set(kept["image"]) if not kept.empty else set()
    todo = [r for r in refs if r.name not in have]
    bar = tqdm(total=len(todo), desc=f"{key.model} x{key.scale} {key.dataset}", disable=not progress or not todo,
               leave=False)
    for out in graded_images(runner, todo, key.scale, key.protocol, cache, dev):
        bar.update(1)
        if isinstance(out, Failed):
            skipped.append((str(out.ref.hr_path or out.ref.name), out.reason))
            tqdm.write(f"skipped {out.ref.hr_path or out.ref.name}: {out.reason}", file=sys.stderr)  # stdout: table
            continue
        if save_dir:
            _save_sr(out.sr, save_dir / key.model / key.dataset / f"x{key.scale}" / f"{out.ref.name}.png")
        rows.append(key.row(out, shas.get(out.ref.name), env))
        if store:
            store.write_run("eval", key.store_key(), pd.concat([others, pd.DataFrame(rows)], ignore_index=True), env)
    bar.close()
    return pd.DataFrame(rows), len(kept)


def stored_result(name: str, weights_sha256: str, datasets, scale: int, store: str | Path | ResultStore,
                  protocol: str | Protocol = "matlab", data_root=None) -> EvalResult:
    """The rows ``evaluate`` stored for a model whose weights file is gone (known by its name and the sha256
    of those weights): every image of each test set must be stored for the same bytes, else ValueError
    naming the set and the images missing. Nothing is forwarded."""
    proto = get_protocol(protocol)
    store = ResultStore(store) if isinstance(store, (str, Path)) else store
    frames = []
    for ds in ([d for d in datasets.split(",") if d] if isinstance(datasets, str) else datasets):
        refs = list_images(ds, data_root)
        key = RunKey(name, weights_sha256, scale, refs[0].dataset, proto, False, False)
        shas = {r.name: image_sha256(r) for r in refs}
        kept, _ = stored_rows(store, key, shas)
        missing = sorted(set(shas) - set(kept.get("image", [])))
        if missing:
            raise ValueError(f"{store.run_path('eval', key.store_key())}: {name} (weights {weights_sha256[:12]}) "
                             f"lacks {len(missing)} of the {len(shas)} images of {ds}, e.g. {missing[0]}")
        frames.append(kept.assign(image=kept["image"].astype(str)))
    images = pd.concat(frames, ignore_index=True)
    images["self_ensemble"] = images["self_ensemble"].astype(bool)
    images["deploy"] = images["deploy"].astype(bool)
    return EvalResult(images, summarize(images), [], 0.0, len(images))


def evaluate(model: str | nn.Module | None, datasets=("Set5",), scales=None, protocol: str | Protocol = "matlab",
             weights: str | Path | None = None, self_ensemble: bool = False, data_root=None,
             store: str | Path | ResultStore | None = None, device: str = "cpu", tile: int | None = None,
             save_dir: str | Path | None = None, deploy: bool = False, cache_dir=None,
             progress: bool = True, graph: bool = False, pretrained: bool = False) -> EvalResult:
    """Evaluate a registry name (``'awsrn-s'``, ``'bicubic'``), a module, or a checkpoint (model=None).

    Returns per-image rows and per-dataset means. With ``store``, rows already stored for the same
    model, weights, scale, dataset, protocol and options are reused, and each new image is saved as
    soon as it is graded. Stages: build the model per scale (``model_for``), then per test set
    ``evaluate_set`` (``stored_rows`` -> ``graded_images`` -> a store write per image), then ``summarize``.
    ``graph`` (CUDA) replays each forward from a CUDA graph captured per input shape (``inference.CUDAGraphs``):
    the same output, fewer launches where shapes repeat (tiles); rows are keyed as without it.
    ``pretrained`` grades the checkpoint this project trained for the registry name at each scale
    (``checkpoints/<model>-x<scale>``), keyed by that file's sha256 as with ``weights``.
    """
    t_start = time.perf_counter()
    if graph and not str(device).startswith("cuda"):
        raise ValueError(f"graph: a CUDA graph needs device cuda, got {device!r}")
    proto = get_protocol(protocol)
    if isinstance(datasets, str):
        datasets = [d for d in datasets.split(",") if d]
    if scales is None:
        scales = [model.scale] if isinstance(model, nn.Module) else [2]
    if isinstance(store, (str, Path)):
        store = ResultStore(store)
    cache = LRCache(Path(cache_dir) / "lr" if cache_dir else None)
    dev = torch.device(device)
    env = environment(dev)
    skipped: list[tuple[str, str]] = []
    frames, reused = [], 0
    for scale in scales:
        net, name, wid = model_for(model, scale, weights, deploy, pretrained, data_root)
        run_store = store
        if store is not None and wid == "random-init":
            # a module handed in without a weights file has no identity to key its rows by
            print(f"note: {name} has no weights file; its rows are not stored", file=sys.stderr)
            run_store = None
        runner = Runner(net.to(dev).eval(), self_ensemble=self_ensemble, tile=tile, graph=graph)
        for ds in datasets:
            refs = list_images(ds, data_root)
            key = RunKey(name, wid, scale, refs[0].dataset, proto, bool(self_ensemble), bool(deploy))
            frame, n = evaluate_set(runner, key, refs, run_store, cache, dev, env, skipped,
                                    Path(save_dir) if save_dir else None, progress)
            frames.append(frame)
            reused += n
    images = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    if not images.empty:
        images["self_ensemble"] = images["self_ensemble"].astype(bool)
        images["deploy"] = images["deploy"].astype(bool)
    return EvalResult(images, summarize(images), skipped, time.perf_counter() - t_start, reused)
