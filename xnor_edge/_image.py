"""Image loading and preprocessing helpers (OpenCV + Pillow) for Model.classify."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np


def read_rgb(path: str | Path) -> np.ndarray:
    """Reads an image file as uint8 RGB (H, W, 3), upright per its EXIF orientation;
    ValueError if it cannot be read or is larger than Pillow's decompression-bomb limit."""
    import warnings

    from PIL import Image, UnidentifiedImageError

    p = Path(path)
    if not p.is_file():
        raise ValueError(f"{p}: no such image file")
    try:
        with warnings.catch_warnings():
            # Over MAX_IMAGE_PIXELS Pillow only warns (over twice that it raises):
            # both are the same refusal here, one line and no warning text.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(p) as im:
                return pil_to_rgb(im)
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as e:
        raise ValueError(f"{p}: {_too_large(str(e))}") from None
    except (UnidentifiedImageError, OSError) as e:
        raise ValueError(f"{p}: cannot read image ({e})") from None


def _too_large(pillow_message: str) -> str:
    from PIL import Image

    m = re.search(r"\((\d+) pixels\)", pillow_message)
    size = f"{int(m.group(1)):,} pixels" if m else "too many pixels"
    return (
        f"image too large ({size}; Pillow refuses more than {Image.MAX_IMAGE_PIXELS:,} as a "
        "possible decompression bomb): scale it down first"
    )


def pil_to_rgb(im: Any) -> np.ndarray:
    """A PIL image -> uint8 RGB (H, W, 3): EXIF orientation applied, 16-bit and
    32-bit integer greyscale scaled to 8 bits (Pillow's convert would clip them)."""
    from PIL import ImageOps

    im = ImageOps.exif_transpose(im)
    if im.mode.startswith("I;16") or im.mode == "I":
        a = np.asarray(im)
        if a.dtype.kind == "i" and a.size and int(a.min()) >= 0 and int(a.max()) <= 0xFFFF:
            a = a.astype(np.uint16)
        return np.repeat(to_uint8(a)[:, :, None], 3, axis=2)
    return np.asarray(im.convert("RGB"))


def to_uint8(a: np.ndarray) -> np.ndarray:
    """Pixel values -> uint8: uint16 scaled by 255/65535, floats in 0..1 scaled by 255,
    other numbers clipped to 0..255."""
    if a.dtype == np.uint8:
        return a
    if a.dtype == np.uint16:
        return ((a.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    if a.dtype.kind == "f" and a.size and 0.0 <= float(a.min()) and float(a.max()) <= 1.0:
        a = np.round(a * 255.0)
    if a.dtype.kind not in "fiu":
        raise TypeError(f"image dtype must be uint8, uint16 (or float in 0..1), got {a.dtype}")
    return np.clip(a, 0, 255).astype(np.uint8)


def to_rgb(frame: Any, color_order: str = "BGR") -> np.ndarray:
    """A uint8 BGR/RGB/grey array, a PIL image or a file path -> uint8 RGB (H, W, 3)."""
    if isinstance(frame, (str, Path)):
        return read_rgb(frame)
    try:
        from PIL import Image

        if isinstance(frame, Image.Image):
            return pil_to_rgb(frame)
    except ImportError:  # pragma: no cover - pillow is a dependency
        pass
    if not isinstance(frame, np.ndarray):
        raise TypeError(f"expected an image array, PIL image or path, got {type(frame).__name__}")
    if color_order not in ("BGR", "RGB"):
        raise ValueError(f"color_order must be 'BGR' or 'RGB', got {color_order!r}")
    a = to_uint8(frame)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim == 2:
        return np.repeat(a[:, :, None], 3, axis=2)
    if a.ndim != 3 or a.shape[2] not in (3, 4) or a.shape[0] < 1 or a.shape[1] < 1:
        raise ValueError(f"image must be (H, W), (H, W, 3) or (H, W, 4), got shape {frame.shape}")
    a = a[:, :, :3]
    return np.ascontiguousarray(a[:, :, ::-1] if color_order == "BGR" else a)


def check_size(img: np.ndarray, size_hw: tuple[int, int], max_upscale: int = 4) -> None:
    """Refuses an image so far below the model's input that upscaling leaves nothing to see."""
    h, w = img.shape[:2]
    if h * max_upscale < size_hw[0] or w * max_upscale < size_hw[1]:
        raise ValueError(
            f"image is {w}x{h} pixels, far below the model's {size_hw[1]}x{size_hw[0]} input "
            f"(more than {max_upscale}x upscaling): use a larger image"
        )


def _resize(img: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    h, w = size_hw
    if img.shape[:2] == (h, w):
        return img
    shrink = h < img.shape[0] or w < img.shape[1]
    import cv2  # only when a resize is needed: frames of the right size need no OpenCV

    return cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def resize_to(img: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    return _resize(img, size_hw)


def resize_shorter_and_crop(img: np.ndarray, shorter: int, crop_hw: tuple[int, int]) -> np.ndarray:
    """Resizes so the shorter side is ``shorter``, then takes the centre crop."""
    h, w = img.shape[:2]
    scale = shorter / min(h, w)
    nh, nw = max(crop_hw[0], round(h * scale)), max(crop_hw[1], round(w * scale))
    img = _resize(img, (nh, nw))
    top, left = (nh - crop_hw[0]) // 2, (nw - crop_hw[1]) // 2
    return img[top : top + crop_hw[0], left : left + crop_hw[1]]


def convert_order(rgb: np.ndarray, order: str) -> np.ndarray:
    if order == "RGB":
        return rgb
    if order == "BGR":
        return np.ascontiguousarray(rgb[:, :, ::-1])
    import cv2

    return cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)[:, :, None]
