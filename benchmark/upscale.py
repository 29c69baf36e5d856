"""``awsrn-bench upscale``: super-resolve one's own images with a registered model and its weights (this project's
trained checkpoint by ``pretrained``, or any ``weights`` file), through the same ``Runner`` that ``evaluate``
grades (tiling of large images, optional self-ensemble, the deploy form), with no HR to grade against.

Each input ``<stem>.<ext>`` becomes ``<out>/<stem>_x<scale>.png``, written atomically; an unreadable input is
reported and the others go on. A gray input is fed to the network replicated to RGB (as ``evaluate`` does) and
written back as gray (ITU-R 601 luma of the output, PIL's ``convert("L")``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .atomic import atomic_write
from .data import IMAGE_EXTS, ImageReadError, decode_image, model_input
from .inference import Runner


@dataclass(frozen=True)
class UpscaleResult:
    written: list[Path] = field(default_factory=list)      # one per readable input, in input order
    failed: list[tuple[str, str]] = field(default_factory=list)   # (input, why)


def collect_inputs(paths) -> list[Path]:
    """Files as given, folders expanded to their images (sorted); two inputs that would write the same output
    name, a missing path or a folder without images is one clear error before anything runs."""
    files = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(q for q in p.iterdir() if q.is_file() and q.suffix.lower() in IMAGE_EXTS)
            if not found:
                raise FileNotFoundError(f"{p}: no image in the folder (expected {', '.join(sorted(IMAGE_EXTS))})")
            files += found
        elif p.is_file():
            files.append(p)
        else:
            raise FileNotFoundError(f"{p}: no such image or folder")
    seen: dict[str, Path] = {}
    for f in files:
        if f.stem in seen and seen[f.stem] != f:
            raise ValueError(f"{seen[f.stem]} and {f}: both would be written as {f.stem}_x<scale>.png; "
                             "upscale them into different --out folders")
        seen[f.stem] = f
    return list(dict.fromkeys(files))


def to_uint8(sr: torch.Tensor, gray: bool) -> np.ndarray:
    """A (3, H, W) float output in [0, 1] as the uint8 image to write: rounded as ``evaluate`` saves it; a gray
    input's output as its luma."""
    rgb = (sr.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    return np.array(Image.fromarray(rgb).convert("L")) if gray else rgb


def upscale(model: torch.nn.Module, scale: int, inputs, out: str | Path, device: str = "cpu",
            self_ensemble: bool = False, tile: int | None = None, progress=None) -> UpscaleResult:
    """Super-resolve each input with ``model`` (already built with its weights) into ``out``.
    ``progress(path, result_or_error)`` is called after each input."""
    files = collect_inputs(inputs)
    runner = Runner(model.to(device).eval(), self_ensemble=self_ensemble, tile=tile)
    result = UpscaleResult()
    for path in files:
        try:
            img = decode_image(path)
        except ImageReadError as exc:
            result.failed.append((str(path), str(exc)))
            if progress:
                progress(path, exc)
            continue
        sr, _ = runner(model_input(img, device))
        arr = to_uint8(sr[0], gray=img.ndim == 2)
        target = Path(out) / f"{path.stem}_x{scale}.png"
        atomic_write(target, lambda tmp: Image.fromarray(arr).save(tmp, format="PNG"))
        result.written.append(target)
        if progress:
            progress(path, target)
    return result
