"""Benchmark test sets: locating images, decoding them, and making (cached) LR inputs.

Layouts under a data root (first match wins):
  EDSR     <root>/benchmark/<Name>/HR/*        LR, when present: <Name>/LR_bicubic/X{s}/<stem>x{s}.png
  BasicSR  <root>/<Name>/GTmod12/*             LR, when present: <Name>/LRbicx{s}/<stem>.png
  plain    <root>/<Name>/HR/*
The embedded set ``skimage`` needs no data root: five photographs shipped with scikit-image.
"""
from __future__ import annotations

import hashlib
import io
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .atomic import atomic_write

DATASETS = ("Set5", "Set14", "B100", "Urban100", "Manga109")
ALIASES = {"bsd100": "B100", "bsds100": "B100", "set5": "Set5", "set14": "Set14", "b100": "B100",
           "urban100": "Urban100", "manga109": "Manga109", "skimage": "skimage"}
SKIMAGE_IMAGES = ("astronaut", "camera", "chelsea", "coffee", "rocket")  # camera is grayscale
IMAGE_EXTS = {".png", ".bmp", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".ppm"}
LR_CACHE_VERSION = "lr-v2"  # v2: MATLAB rounding (halves away from zero)


class ImageReadError(ValueError):
    """An image that cannot be decoded; the message names the file."""


@dataclass(frozen=True)
class ImageRef:
    dataset: str
    name: str                      # file stem, e.g. 'baby'
    hr_path: Path | None           # None for embedded skimage images
    lr_paths: tuple[tuple[int, Path], ...] = ()   # provided LR files by scale

    def provided_lr(self, scale: int) -> Path | None:
        return dict(self.lr_paths).get(scale)


def canonical_name(name: str) -> str:
    key = name.strip().lower()
    if key in ALIASES:
        return ALIASES[key]
    raise KeyError(f"unknown dataset {name!r}; expected one of {list(DATASETS) + ['skimage']}")


def resolve_data_root(data_root: str | Path | None = None) -> Path | None:
    """--data-root, else $AWSRN_DATA, else None (only the embedded ``skimage`` set is available)."""
    root = data_root if data_root is not None else os.environ.get("AWSRN_DATA") or None
    if root is None:
        return None
    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"data root {root} does not exist")
    return root


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTS)


def list_images(dataset: str, data_root: str | Path | None = None) -> list[ImageRef]:
    """The images of a test set, sorted by name."""
    name = canonical_name(dataset)
    if name == "skimage":
        return [ImageRef("skimage", n, None) for n in SKIMAGE_IMAGES]
    root = resolve_data_root(data_root)
    if root is None:
        raise FileNotFoundError(
            f"dataset {name} needs a data root (--data-root or AWSRN_DATA); without one only 'skimage' is available")
    candidates = [(root / "benchmark" / name / "HR", "edsr"), (root / name / "GTmod12", "basicsr"),
                  (root / name / "HR", "edsr")]
    for hr_dir, layout in candidates:
        if hr_dir.is_dir():
            break
    else:
        raise FileNotFoundError(f"dataset {name} not found under {root} (looked for "
                                + ", ".join(str(c[0]) for c in candidates) + ")")
    refs = []
    for p in _images_in(hr_dir):
        lrs = []
        for s in (2, 3, 4, 8):
            lr = (hr_dir.parent / "LR_bicubic" / f"X{s}" / f"{p.stem}x{s}.png" if layout == "edsr"
                  else hr_dir.parent / f"LRbicx{s}" / f"{p.stem}.png")
            if lr.is_file():
                lrs.append((s, lr))
        refs.append(ImageRef(name, p.stem, p, tuple(lrs)))
    if not refs:
        raise FileNotFoundError(f"dataset {name}: no images in {hr_dir}")
    return refs


# The largest standard benchmark images (DIV2K, Manga109) have under 3 MP; the cap leaves a wide margin
# and stops a small file that declares a huge size (a decompression bomb) before it is decoded.
MAX_PIXELS = int(os.environ.get("AWSRN_MAX_PIXELS", 40_000_000))
_SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I;16N")


def _to_uint8_gray(im) -> np.ndarray:
    """A 16-bit gray image to 8 bit as MATLAB's ``im2uint8`` does (round(x / 257))."""
    arr = np.asarray(im, dtype=np.float64)
    return np.floor(arr / 257.0 + 0.5).astype(np.uint8)


def decode_image(path: Path | None, data: bytes | None = None) -> np.ndarray:
    """uint8 array (H, W) for grayscale (modes L / 1 / LA, and 16-bit gray scaled like MATLAB's
    ``im2uint8``) or (H, W, 3) for colour images. Raises :class:`ImageReadError` naming the file for an
    unreadable image, one that declares more than ``MAX_PIXELS`` pixels, or a pixel format with no
    defined 8-bit reading (32-bit integer or float)."""
    where = path if path is not None else "<image bytes>"
    try:
        with Image.open(io.BytesIO(data) if data is not None else path) as im:
            w, h = im.size
            if w * h > MAX_PIXELS:
                raise ImageReadError(f"{where}: declares {w}x{h} = {w * h / 1e6:.1f} MP, over the {MAX_PIXELS / 1e6:.0f} MP "
                                     f"limit (AWSRN_MAX_PIXELS); not decoded")
            im.load()
            if im.mode in _SIXTEEN_BIT:
                arr = _to_uint8_gray(im)
            elif im.mode in ("I", "F"):
                raise ImageReadError(f"{where}: pixel mode {im.mode} (32-bit) has no defined 8-bit reading; "
                                     f"expected 8-bit or 16-bit images")
            elif im.mode in ("L", "1", "LA"):
                arr = np.array(im.convert("L"))
            else:
                arr = np.array(im.convert("RGB"))
    except ImageReadError:
        raise
    except Exception as exc:
        detail = re.sub(r"<_io\.BytesIO object at 0x[0-9a-f]+>", "the file", str(exc))
        raise ImageReadError(f"{where}: cannot read image ({type(exc).__name__}: {detail})") from exc
    if arr.ndim not in (2, 3) or min(arr.shape[:2]) < 1:
        raise ImageReadError(f"{where}: unexpected image shape {arr.shape}")
    return np.ascontiguousarray(arr)


@dataclass
class LoadedImage:
    ref: ImageRef
    hr: np.ndarray                 # uint8, modcropped; (H, W) gray or (H, W, 3)
    content_key: str               # sha256 of the source bytes (the LR cache key)

    @property
    def is_gray(self) -> bool:
        return self.hr.ndim == 2


def load_hr(ref: ImageRef) -> tuple[np.ndarray, str]:
    """Decoded HR (not cropped) and the sha256 of its source bytes."""
    if ref.hr_path is None:
        import skimage.data
        arr = np.ascontiguousarray(getattr(skimage.data, ref.name)())
        return arr, hashlib.sha256(arr.tobytes() + str(arr.shape).encode()).hexdigest()
    try:
        data = ref.hr_path.read_bytes()
    except OSError as exc:
        raise ImageReadError(f"{ref.hr_path}: cannot read file ({exc})") from exc
    key = hashlib.sha256(data).hexdigest()
    _SHA_BY_STAT[_stat_key(ref.hr_path)] = key
    return decode_image(ref.hr_path, data), key


# sha256 of a file by (path, mtime, size): a file rewritten in place gets a new stat, hence a new hash
_SHA_BY_STAT: dict[tuple, str] = {}


def _stat_key(path: Path) -> tuple:
    st = path.stat()
    return str(path), st.st_mtime_ns, st.st_size


def image_sha256(ref: ImageRef) -> str | None:
    """sha256 of an image's source bytes (the identity of its rows in the store), None if unreadable."""
    if ref.hr_path is None:
        return load_hr(ref)[1]
    try:
        stat = _stat_key(ref.hr_path)
        if stat not in _SHA_BY_STAT:
            _SHA_BY_STAT[stat] = hashlib.sha256(ref.hr_path.read_bytes()).hexdigest()
        return _SHA_BY_STAT[stat]
    except OSError:
        return None


class PairCache:
    """Decoded (HR, LR) pairs in memory, least recently used first out past ``max_bytes``, keyed by the HR's
    content, the scale and where the LR comes from: a process that grades several models (a sweep, the
    pruned subsets, a checkpoint per scale) decodes and resizes each image once. Entries are shared:
    callers copy before writing into them (every consumer here converts to float first)."""

    def __init__(self, max_bytes: int):
        import threading
        from collections import OrderedDict
        self.max_bytes, self.bytes, self.items = max_bytes, 0, OrderedDict()
        self.hits = self.misses = 0
        self._lock = threading.Lock()        # evaluate prepares images in worker threads

    def get(self, key):
        with self._lock:
            pair = self.items.get(key)
            if pair is None:
                self.misses += 1
                return None
            self.items.move_to_end(key)
            self.hits += 1
            return pair

    def put(self, key, hr: np.ndarray, lr: np.ndarray) -> None:
        size = hr.nbytes + lr.nbytes
        with self._lock:
            if size > self.max_bytes or key in self.items:
                return
            self.items[key] = (hr, lr)
            self.bytes += size
            while self.bytes > self.max_bytes:
                _, (h, l_) = self.items.popitem(last=False)
                self.bytes -= h.nbytes + l_.nbytes

    def clear(self) -> None:
        self.items.clear()
        self.bytes = self.hits = self.misses = 0


PAIRS = PairCache(int(os.environ.get("AWSRN_MEMORY_CACHE_MB", "1024")) * 2 ** 20)


def default_cache_dir() -> Path:
    return Path(os.environ.get("AWSRN_CACHE", Path.home() / ".cache" / "awsrn-bench"))


class LRCache:
    """LR images on disk keyed by the HR content, the scale and the downscaling method, so a second run
    reads the cache and an edited HR image is redone."""

    def __init__(self, root: Path | None = None):
        self.root = Path(root) if root is not None else default_cache_dir() / "lr"

    def path(self, content_key: str, scale: int, method: str) -> Path:
        return self.root / method / f"{content_key[:24]}_x{scale}.png"

    def get(self, content_key: str, scale: int, method: str) -> np.ndarray | None:
        p = self.path(content_key, scale, method)
        if not p.is_file():
            return None
        try:
            return decode_image(p)
        except ImageReadError:
            return None            # a damaged cache entry is recomputed

    def put(self, content_key: str, scale: int, method: str, lr: np.ndarray) -> None:
        atomic_write(self.path(content_key, scale, method),
                     lambda tmp: Image.fromarray(lr).save(tmp, format="PNG", compress_level=1))


# ------------------------------------------------------------------ the one image path (HR, LR -> tensors)
def prepare_pair(ref: ImageRef, scale: int, protocol, cache: LRCache) -> tuple[np.ndarray, np.ndarray]:
    """Modcropped uint8 HR and its uint8 LR (the set's provided LR file, the cache, or computed by the
    protocol's resize and cached). Every consumer (evaluate, training validation, the AWMS study, the
    visual crops) gets its images here."""
    from .imresize import modcrop
    provided = ref.provided_lr(scale) if protocol.lr_method == "matlab" else None
    sha = image_sha256(ref) if ref.hr_path is not None else None
    mkey = (sha, scale, str(provided) if provided is not None else f"{protocol.lr_method}-{LR_CACHE_VERSION}")
    if sha is not None and (pair := PAIRS.get(mkey)) is not None:
        return pair
    hr, key = load_hr(ref)
    mkey = (key,) + mkey[1:]
    size = hr.shape[:2]
    hr = modcrop(hr, scale)
    if min(hr.shape[:2]) < scale:
        raise ImageReadError(f"{ref.hr_path or ref.name}: image {size[1]}x{size[0]} is too small for x{scale}")
    if provided is not None:
        lr = decode_image(provided)
        if lr.ndim == 3 and hr.ndim == 2:
            lr = lr[..., 0]
        if lr.shape[:2] != (hr.shape[0] // scale, hr.shape[1] // scale):
            raise ImageReadError(f"{provided}: LR {lr.shape[:2]} does not match HR {hr.shape[:2]} / {scale}")
        PAIRS.put(mkey, hr, lr)
        return hr, lr
    method = f"{protocol.lr_method}-{LR_CACHE_VERSION}"
    lr = cache.get(key, scale, method)
    if lr is None or lr.shape[:2] != (hr.shape[0] // scale, hr.shape[1] // scale):
        lr = protocol.make_lr(hr, scale)
        cache.put(key, scale, method, lr)
    PAIRS.put(mkey, hr, lr)
    return hr, lr


def to_chw(img: np.ndarray) -> torch.Tensor:
    """uint8 (H, W) or (H, W, 3) -> uint8 tensor (1 or 3, H, W), sharing memory where it can."""
    t = torch.from_numpy(np.ascontiguousarray(img))
    return t.unsqueeze(0) if t.ndim == 2 else t.permute(2, 0, 1)


def to_chw3(img: np.ndarray) -> torch.Tensor:
    """As ``to_chw``, a gray image replicated to 3 channels (what the networks take)."""
    t = to_chw(img)
    return t.expand(3, -1, -1) if t.shape[0] == 1 else t


def model_input(lr: np.ndarray, device="cpu") -> torch.Tensor:
    """An LR image as the model's input: float (1, 3, h, w) in [0, 1] on ``device``, gray replicated."""
    return to_chw3(lr).to(device).unsqueeze(0).float() / 255.0
