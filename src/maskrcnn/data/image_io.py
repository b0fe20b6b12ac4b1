"""Reading images: always ``H x W x 3`` uint8 RGB, EXIF orientation applied.

Conversions (documented, deterministic):

- grayscale (``L``, ``1``), palette (``P``, ``PA``), ``LA``, ``CMYK``, ``YCbCr``, ``LAB``, ``HSV``:
  PIL's conversion to RGB;
- RGBA / LA / palette with transparency: the alpha channel is dropped (matterport's
  ``image[..., :3]``), not composited;
- 16-bit (``I;16*``) and 32-bit integer (``I``) images: the high byte (``value >> 8``),
  so 0..65535 maps onto 0..255; ``I`` images whose values all fit in 0..255 are kept as is;
- float (``F``) images: values in [0, 1] are scaled by 255, others clipped to [0, 255].

A missing, empty, truncated or otherwise unreadable file raises :class:`ImageError`
naming the file.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from ..errors import ImageError

_ORIENTATION_TAG = 0x0112
_SWAPS_SIDES = (5, 6, 7, 8)  # EXIF orientations that transpose the image


def _open(path: str | os.PathLike):
    from PIL import Image, UnidentifiedImageError

    p = Path(path)
    if not p.exists():
        raise ImageError(f"{p}: image file not found")
    if p.is_dir():
        raise ImageError(f"{p}: is a folder, not an image file")
    try:
        if p.stat().st_size == 0:
            raise ImageError(f"{p}: image file is empty (0 bytes)")
        return Image.open(p)
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError(f"{p}: not an image (or an unsupported format)") from None
    except (OSError, ValueError) as exc:
        raise ImageError(f"{p}: cannot open image ({exc})") from None


def _orientation(img) -> int:
    try:
        return int(img.getexif().get(_ORIENTATION_TAG, 1) or 1)
    except Exception:  # a broken EXIF block must not make the image unreadable
        return 1


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """``(height, width)`` of the image as :func:`read_image` returns it, reading only the header."""
    img = _open(path)
    with img:
        width, height = img.size
        if _orientation(img) in _SWAPS_SIDES:
            width, height = height, width
    return int(height), int(width)


def to_rgb_array(img) -> np.ndarray:
    """A loaded PIL image as ``H x W x 3`` uint8 RGB (see the module docstring for the rules)."""
    mode = img.mode
    if mode == "RGB":
        return np.asarray(img, dtype=np.uint8).copy()
    if mode.startswith("I;16") or mode == "I":
        arr = np.asarray(img).astype(np.int64)
        if mode == "I" and arr.size and arr.min() >= 0 and arr.max() <= 255:
            gray = arr.astype(np.uint8)
        elif mode == "I" and arr.size and (arr.min() < 0 or arr.max() > 65535):
            lo, hi = arr.min(), arr.max()
            gray = ((arr - lo) * 255 // max(1, hi - lo)).astype(np.uint8)
        else:
            gray = (np.clip(arr, 0, 65535) >> 8).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=-1)
    if mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        if arr.size and np.nanmax(arr) <= 1.0 and np.nanmin(arr) >= 0.0:
            arr = arr * 255.0
        gray = np.clip(np.nan_to_num(arr), 0, 255).round().astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=-1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Palette images with Transparency expressed in bytes..."
        return np.asarray(img.convert("RGB"), dtype=np.uint8).copy()


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read ``path`` as ``H x W x 3`` uint8 RGB with its EXIF orientation applied.

    Raises:
        ImageError: the file is missing, empty, truncated, corrupt, or not an image.
    """
    from PIL import Image, ImageOps

    img = _open(path)
    try:
        with img:
            img.load()
            if _orientation(img) != 1:
                try:
                    img = ImageOps.exif_transpose(img)
                except Exception:  # keep the stored orientation if the EXIF block is unusable
                    pass
            return to_rgb_array(img)
    except ImageError:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageError(f"{path}: image too large ({exc})") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageError(f"{path}: cannot read image, truncated or corrupt ({exc})") from None


def verify_image(path: str | os.PathLike) -> tuple[int, int]:
    """Decode ``path`` fully (catching truncation) and return its oriented ``(height, width)``.

    Cheaper than :func:`read_image` (no color conversion); used by ``check-dataset``.
    """
    from PIL import Image

    img = _open(path)
    try:
        with img:
            width, height = img.size
            if img.format == "JPEG":  # decode every byte but skip most of the IDCT work
                img.draft(img.mode, (max(1, width // 8), max(1, height // 8)))
            img.load()
            if _orientation(img) in _SWAPS_SIDES:
                width, height = height, width
            return int(height), int(width)
    except Image.DecompressionBombError as exc:
        raise ImageError(f"{path}: image too large ({exc})") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageError(f"{path}: cannot read image, truncated or corrupt ({exc})") from None
