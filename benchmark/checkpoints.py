"""Reading and writing AWSRN weights.

Formats (recognised from the keys, never from the file name):

* ``official``   the EDSR-style ``model_latest.pt`` of github.com/ChaofWang/AWSRN: a plain state dict with
                 ``body.{i}.b{j}...`` keys; inputs on [0, 255] with the DIV2K mean shift.
* ``super-image`` ``pytorch_model_{s}x.pt`` of eugenesiow/super-image (awsrnv2 layout, ``body.{i}.lfl.{j}...``,
                 ``attention.ca/sa...``); inputs on [0, 1], mean shift only without BAM.
* ``native``     safetensors with the :class:`AWSRNConfig` (or a peer's :class:`PeerConfig`) as JSON in its
                 metadata and beside it (``<stem>.json``); keys are the official ones.
* ``imdn``       the official IMDN_x{s}.pth of Zheng222/IMDN (``module.IMDB1.c1.weight`` ...); one scale each.
* ``carn-m``     the official carn_m.pth of nmhkahn/CARN-pytorch (``b1.b1.body.0.weight``, ``upsample.up2``
                 ... ``up4``): one multi-scale model, so the file names no scale (``config.scale`` is None).

Torch files are read with ``weights_only=True``: no pickled code is ever executed.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from .atomic import atomic_write
from .config import MULTI_SCALE_PEERS, AWSRNConfig, PeerConfig, config_from_dict
from .models.awsrn import AWMS

NATIVE_FORMAT = "awsrn-bench/1"


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or does not fit the model; the message names file and keys."""


@dataclass(frozen=True)
class Checkpoint:
    state_dict: dict[str, torch.Tensor]   # native (official) key names
    config: AWSRNConfig | PeerConfig      # structure inferred from the tensors (+ input convention)
    source_format: str
    path: Path


@dataclass(frozen=True)
class Provenance:
    """Where a built model's weights come from: its identity in the results store. Attached to every model
    ``create_model``, ``model_from_checkpoint`` and ``load_weights`` return, as ``model.provenance``."""
    model: str                    # registry name ('awsrn-s'), 'checkpoint' for a file loaded without one, or a
                                  # derived identity such as 'awsrn-s[awms=35]'
    path: str | None = None       # the weights file (None: initialised, not loaded)
    sha256: str | None = None     # of the file's bytes
    format: str | None = None     # native, official, super-image, ...

    @classmethod
    def of(cls, model: str, ck: "Checkpoint | None") -> "Provenance":
        if ck is None:
            return cls(model)
        return cls(model, str(ck.path), file_sha256(ck.path), ck.source_format)


def with_input_convention(cfg, ck: "Checkpoint"):
    """``cfg`` with the input convention (range, mean shift) of the checkpoint's weights: a property of the
    weights, so a model is built with it rather than changed after loading."""
    if isinstance(cfg, AWSRNConfig) and isinstance(ck.config, AWSRNConfig):
        return dataclasses.replace(cfg, input_range=ck.config.input_range, mean_shift=ck.config.mean_shift)
    return cfg


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# --------------------------------------------------------------------------------------- reading
def safe_torch_load(path: Path):
    """``torch.load(weights_only=True)`` with one clear error: a file holding executable pickle content
    is refused (the global it asked for is named), anything else unreadable is named as such."""
    import pickle
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        text = str(exc)
        found = re.search(r"(?:unsupported GLOBAL|Unsupported global: GLOBAL) ([\w.]+)", text)
        what = f" (it asks for {found.group(1)})" if found else ""
        raise CheckpointError(f"{path}: holds executable pickle content{what}; refused: only tensors are "
                              f"loaded from torch files (weights_only=True)") from exc
    except Exception as exc:
        raise CheckpointError(f"{path}: not a readable torch checkpoint ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0][:200] if str(exc) else 'no detail'})") from exc


def _read_tensors(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    with open(path, "rb") as fh:
        magic = fh.read(8)
    if path.suffix == ".safetensors" or (len(magic) == 8 and magic[:2] != b"PK" and magic[:1] != b"\x80"):
        try:
            with safe_open(str(path), framework="pt") as f:
                return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata() or {})
        except Exception as exc:
            if path.suffix == ".safetensors":
                raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from exc
    obj = safe_torch_load(path)
    # unwrap the usual containers ({'state_dict': ...}, {'model': ...}, {'params': ...})
    for key in ("state_dict", "model", "params", "params_ema"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path}: expected a state dict of tensors, got {type(obj).__name__}")
    return dict(obj), {}


def _strip_prefixes(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {}
    for k, v in sd.items():
        for prefix in ("module.", "_orig_mod.", "model."):
            if k.startswith(prefix):
                k = k[len(prefix):]
        out[k] = v
    return out


def detect_format(keys, metadata: dict | None = None) -> str:
    if metadata and metadata.get("format") == NATIVE_FORMAT:
        return "native"
    keys = list(keys)
    bare = {re.sub(r"^(module\.|_orig_mod\.|model\.)+", "", k) for k in keys}
    if {"fea_conv.weight", "IMDB1.c1.weight", "upsampler.0.weight"} <= bare:
        return "imdn"
    if {"entry.weight", "b1.b1.body.0.weight", "upsample.up2.body.0.weight"} <= bare:
        return "carn-m"
    if any(re.match(r"body\.\d+\.lfl\.\d+\.", k) for k in keys):
        return "super-image"
    if any(re.match(r"body\.\d+\.b\d+\.", k) for k in keys):
        return "official"
    sample = ", ".join(sorted(keys)[:4])
    raise CheckpointError(
        "not an AWSRN, IMDN or CARN-M checkpoint: expected keys like 'body.0.b0.body.0.weight_v' (official), "
        f"'body.0.lfl.0.body.0.weight_v' (super-image), 'IMDB1.c1.weight' (IMDN) or 'b1.b1.body.0.weight' "
        f"(CARN-M); found e.g. {sample}")


def checkpoint_filter_fn(state_dict: dict[str, torch.Tensor], source_format: str) -> dict[str, torch.Tensor]:
    """Rename a source state dict to the native (official) key names."""
    sd = _strip_prefixes(state_dict)
    if source_format == "super-image":
        sd = {re.sub(r"^body\.(\d+)\.lfl\.(\d+)\.", r"body.\1.b\2.", k): v for k, v in sd.items()}
    return sd


def infer_config(sd: dict[str, torch.Tensor], source_format: str, where: str = "checkpoint") -> AWSRNConfig:
    """The structure (scale, #LFB, #AWRU, widths, AWMS kernels, BAM) a native state dict encodes."""
    def need(key: str) -> torch.Tensor:
        if key not in sd:
            raise CheckpointError(f"{where}: missing key {key!r} needed to infer the model structure")
        return sd[key]

    out_skip = need("skip.0.weight_v").shape[0]
    scale = int(round((out_skip / 3) ** 0.5))
    if 3 * scale * scale != out_skip:
        raise CheckpointError(f"{where}: skip.0.weight_v has {out_skip} output channels, not 3*s^2")
    n_feats = need("head.0.weight_v").shape[0]
    block_feats = need("body.0.b0.body.0.weight_v").shape[0]
    n_lfb = len({int(m.group(1)) for k in sd if (m := re.match(r"body\.(\d+)\.", k))})
    n_awru = len({int(m.group(1)) for k in sd if (m := re.match(r"body\.0\.b(\d+)\.", k))})
    kernels = AWMS.kernels_in(sd)
    bam = "attention.ca.fc1.weight" in sd
    reduction = n_feats // sd["attention.ca.fc1.weight"].shape[0] if bam else 8
    if source_format == "official":
        convention = dict(input_range=255.0, mean_shift=True)
    else:  # super-image: [0, 1] inputs; its BAM path skips the mean shift, the plain path keeps it
        convention = dict(input_range=1.0, mean_shift=not bam)
    try:
        return AWSRNConfig(scale=scale, n_lfb=n_lfb, n_awru=n_awru, n_feats=n_feats, block_feats=block_feats,
                           awms_kernels=kernels, bam=bam, bam_reduction=reduction, **convention)
    except ValueError as exc:
        raise CheckpointError(f"{where}: {exc}") from exc


def read_checkpoint(path: str | Path) -> Checkpoint:
    path = Path(path)
    tensors, meta = _read_tensors(path)
    fmt = detect_format(tensors.keys(), meta)
    if fmt == "native":
        cfg_json = meta.get("config")
        side = path.with_suffix(".json")
        if cfg_json is None and side.is_file():
            cfg_json = side.read_text()
        if cfg_json is None:
            raise CheckpointError(f"{path}: native checkpoint without a config (metadata or {side.name})")
        try:
            config = config_from_dict(json.loads(cfg_json))
        except (ValueError, TypeError) as exc:
            raise CheckpointError(f"{path}: bad config: {exc}") from exc
        _check_config_fits_tensors(config, tensors, path)     # before anything is built from the config
        return Checkpoint(tensors, config, fmt, path)
    sd = checkpoint_filter_fn(tensors, fmt)
    if fmt in ("imdn", "carn-m"):
        return Checkpoint(sd, _peer_config(sd, fmt, path), fmt, path)
    return Checkpoint(sd, infer_config(sd, fmt, str(path)), fmt, path)


def _check_config_fits_tensors(config, tensors: dict[str, torch.Tensor], path: Path) -> None:
    """A native checkpoint's stored config must describe the tensors beside it (a config asking for 400
    LFBs over a 1-LFB state dict is refused here, not after building a 1 GB model)."""
    if isinstance(config, PeerConfig):
        arch = detect_format(tensors.keys())
        found = _peer_config(tensors, arch, path) if arch in ("imdn", "carn-m") else None
        if found is None or found.arch != config.arch or (found.scale is not None and found.scale != config.scale):
            raise CheckpointError(f"{path}: its config ({config.to_dict()}) does not describe its tensors")
        return
    found = infer_config(tensors, "official", str(path))
    diffs = [f"{k} {getattr(config, k)!r} (tensors: {getattr(found, k)!r})" for k in _STRUCTURE
             if k not in ("unit", "lrfu") and getattr(config, k) != getattr(found, k)]
    if diffs:
        raise CheckpointError(f"{path}: its config does not describe its tensors: " + "; ".join(diffs))


def _peer_config(sd: dict[str, torch.Tensor], arch: str, path: Path) -> PeerConfig:
    if arch in MULTI_SCALE_PEERS:       # one model for every scale: the scale is chosen when it is built
        return PeerConfig(arch, None)
    out = sd["upsampler.0.weight"].shape[0]
    scale = int(round((out / 3) ** 0.5))
    try:
        return PeerConfig(arch, scale)
    except ValueError as exc:
        raise CheckpointError(f"{path}: {exc}") from exc


_STRUCTURE = ("scale", "n_lfb", "n_awru", "n_feats", "block_feats", "awms_kernels", "unit", "lrfu", "bam",
              "bam_reduction")


def _structure_diffs(ck_cfg, cfg) -> list[str]:
    """Where a checkpoint's structure differs from a model's (architecture first, then its fields)."""
    kind = lambda c: c.arch if isinstance(c, PeerConfig) else "awsrn"  # noqa: E731
    if kind(ck_cfg) != kind(cfg):
        return [f"architecture: checkpoint {kind(ck_cfg)} vs model {kind(cfg)}"]
    if isinstance(cfg, PeerConfig):
        return [] if ck_cfg.scale in (None, cfg.scale) else [f"scale: checkpoint {ck_cfg.scale} vs model {cfg.scale}"]
    return [f"{k}: checkpoint {getattr(ck_cfg, k)!r} vs model {getattr(cfg, k)!r}"
            for k in _STRUCTURE if getattr(ck_cfg, k) != getattr(cfg, k)]


def load_weights(model: nn.Module, path: str | Path, checkpoint: Checkpoint | None = None) -> Checkpoint:
    """Load ``path`` (or the already read ``checkpoint``) into ``model`` strictly and attach its
    :class:`Provenance`. Raises :class:`CheckpointError` naming the file, the structural differences (the
    input convention included: build the model with :func:`with_input_convention`), and the missing /
    unexpected / mis-shaped keys."""
    ck = checkpoint or read_checkpoint(path)
    cfg = model.cfg
    diffs = _structure_diffs(ck.config, cfg)
    if not diffs and isinstance(cfg, AWSRNConfig):
        diffs = [f"{k}: checkpoint {getattr(ck.config, k)!r} vs model {getattr(cfg, k)!r}"
                 for k in ("input_range", "mean_shift") if getattr(ck.config, k) != getattr(cfg, k)]
    own = model.state_dict()
    missing = sorted(set(own) - set(ck.state_dict))
    unexpected = sorted(set(ck.state_dict) - set(own))
    shapes = [f"{k}: checkpoint {tuple(ck.state_dict[k].shape)} vs model {tuple(own[k].shape)}"
              for k in sorted(set(own) & set(ck.state_dict)) if own[k].shape != ck.state_dict[k].shape]
    if diffs or missing or unexpected or shapes:
        lines = [f"{path} ({ck.source_format} format) does not fit this model"]
        if diffs:
            lines.append("  structure: " + "; ".join(diffs))
        for title, items in (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatch", shapes)):
            if items:
                more = f" ... (+{len(items) - 8} more)" if len(items) > 8 else ""
                lines.append(f"  {title} ({len(items)}): " + ", ".join(items[:8]) + more)
        raise CheckpointError("\n".join(lines))
    model.load_state_dict(ck.state_dict, strict=True)
    prior = getattr(model, "provenance", None)
    model.provenance = Provenance.of(prior.model if prior else "checkpoint", ck)
    return ck


def model_from_checkpoint(path: str | Path, scale: int | None = None) -> nn.Module:
    """Build the model a checkpoint describes and load it. A multi-scale checkpoint (CARN-M) needs
    ``scale``; for any other, ``scale`` must match the checkpoint's if given."""
    from .models import AWSRN, build_peer
    ck = read_checkpoint(path)
    cfg = ck.config
    if isinstance(cfg, PeerConfig):
        if cfg.scale is None and scale is None:
            raise CheckpointError(f"{path}: a multi-scale {cfg.arch} checkpoint (x2, x3, x4); name the scale "
                                  f"(e.g. --model {cfg.arch} --scale 4)")
        model = build_peer(PeerConfig(cfg.arch, scale or cfg.scale))
    else:
        model = AWSRN(cfg if scale is None else dataclasses.replace(cfg, scale=scale))
    load_weights(model, path, ck)
    return model


# --------------------------------------------------------------------------------------- writing
def save_native(model: nn.Module, path: str | Path, extra_metadata: dict | None = None,
                dtype: torch.dtype | None = None) -> Path:
    """Write ``model`` as ``path`` (safetensors, config in its metadata) plus ``<stem>.json``; atomic.
    ``dtype=torch.float16`` stores the tensors compactly (loading casts them to the model's dtype)."""
    path = Path(path)
    if path.suffix != ".safetensors":
        raise ValueError(f"{path}: the native format is a .safetensors file")
    cfg = model.cfg.to_dict()
    if cfg.get("arch") in MULTI_SCALE_PEERS:    # the file holds every scale's upsampler
        cfg["scale"] = None
    cfg_json = json.dumps(cfg, sort_keys=True)
    meta = {"format": NATIVE_FORMAT, "config": cfg_json, **(extra_metadata or {})}
    tensors = {k: v.detach().cpu().to(dtype or v.dtype).contiguous() for k, v in model.state_dict().items()}
    if dtype is not None:
        meta["storage_dtype"] = str(dtype).replace("torch.", "")
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=meta))
    side = path.with_suffix(".json")
    atomic_write(side, lambda tmp: Path(tmp).write_text(json.dumps(json.loads(cfg_json), indent=2) + "\n"))
    return path


def convert(src: str | Path, dst: str | Path) -> Checkpoint:
    """Any readable checkpoint -> the native format (a multi-scale one stays multi-scale)."""
    ck = read_checkpoint(src)
    multi = isinstance(ck.config, PeerConfig) and ck.config.scale is None
    model = model_from_checkpoint(src, scale=2 if multi else None)
    save_native(model, dst, {"converted_from": Path(src).name, "source_sha256": file_sha256(src)})
    return read_checkpoint(dst)


def without_branches(state_dict: dict, drop) -> dict:
    """A state dict with the AWMS branches ``drop`` (kernel sizes) removed: the filter that initialises a
    pruned AWMS from a checkpoint with more branches."""
    prefixes = tuple(p for k in drop for p in AWMS.branch_keys(k))
    return {k: v for k, v in state_dict.items() if not k.startswith(prefixes)} if prefixes else dict(state_dict)


def load_pruned(model, path) -> None:
    """Initialise a (pruned-AWMS) model from a checkpoint of the same structure with more AWMS branches:
    the dropped branches' keys are filtered out (``without_branches``), everything else must match exactly."""
    ck = read_checkpoint(path)
    keep = set(model.cfg.awms_kernels)
    if not keep <= set(ck.config.awms_kernels):
        raise CheckpointError(f"{path}: has AWMS kernels {ck.config.awms_kernels}, cannot initialise {sorted(keep)}")
    sd = without_branches(ck.state_dict, [k for k in ck.config.awms_kernels if k not in keep])
    own = model.state_dict()
    missing, unexpected = sorted(set(own) - set(sd)), sorted(set(sd) - set(own))
    bad = [k for k in set(own) & set(sd) if own[k].shape != sd[k].shape]
    if missing or unexpected or bad:
        raise CheckpointError(f"{path}: does not fit {model.cfg}: missing {missing[:5]}, unexpected "
                              f"{unexpected[:5]}, shape mismatch {bad[:5]}")
    model.load_state_dict(sd)
    prior = getattr(model, "provenance", None)
    model.provenance = Provenance.of(prior.model if prior else "checkpoint", ck)
