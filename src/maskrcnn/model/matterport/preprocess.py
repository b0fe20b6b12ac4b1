"""matterport's ``mold_inputs``: ``resize_image`` (none/square/pad64/crop), padding, ``mold_image``.

``MatterportPreprocessor(mean=MEAN_PIXEL, resize_mode="square", min_dim=800, max_dim=1024)`` maps
images ``[3, H, W]`` (uint8 or float, RGB 0-255) to a :class:`MoldedBatch` as matterport's
``mold_inputs`` builds its network input:

* scale ``max(1, min_dim / short side)`` (raised to ``min_scale``); in ``"square"`` mode lowered so
  that ``round(long side * scale) <= max_dim``; resized to ``(round(h * scale), round(w * scale))``
  with skimage's linear ``resize`` (:func:`.geometry.resize_linear`), a uint8 image truncated back
  to uint8 as ``resize_image``'s ``astype`` does;
* padded with black **centred**: ``"square"`` to ``max_dim × max_dim``, ``"pad64"`` to multiples of 64
  (``"none"`` is not padded: its sides must be multiples of 32); ``"crop"`` in training takes a random
  ``min_dim × min_dim`` crop (torch RNG), at inference it behaves as ``"square"``;
* ``mold_image``: minus ``MEAN_PIXEL`` (no division), float32; padding thus becomes ``-MEAN_PIXEL``.

Images of different molded sizes in one batch are placed top-left on a common canvas. Targets
(``boxes [N,4]`` xyxy pixels, ``masks [N,H,W]`` or box-relative ``mini_masks``) follow the image:
boxes scaled and shifted by the padding, masks resized (nearest) and padded.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ..preprocess import ImageBatch, ImagePreprocessor
from .geometry import resize_linear


@dataclass
class MoldedBatch(ImageBatch):
    """An :class:`~maskrcnn.model.preprocess.ImageBatch` with matterport's windows.

    Attributes:
        windows: per image ``(y1, x1, y2, x2)`` pixels of the image inside the padded tensor
            (``image_sizes[i] == (y2 - y1, x2 - x1)``).
    """

    windows: list[tuple[int, int, int, int]] | None = None

    def to(self, device: torch.device | str) -> MoldedBatch:
        return MoldedBatch(self.tensor.to(device), self.image_sizes, self.original_sizes, self.scales, self.windows)


def resize_scale(h: int, w: int, *, mode: str, min_dim: int, max_dim: int, min_scale: float) -> float:
    """``resize_image``'s scale for an ``h × w`` image (1.0 in mode ``"none"``)."""
    if mode == "none":
        return 1.0
    scale = max(1.0, min_dim / min(h, w)) if min_dim else 1.0
    if min_scale and scale < min_scale:
        scale = float(min_scale)
    if mode == "square" and max_dim and round(max(h, w) * scale) > max_dim:
        scale = max_dim / max(h, w)
    return scale


def _centred(size: int, to: int) -> tuple[int, int]:
    before = (to - size) // 2
    return before, to - size - before


class MatterportPreprocessor(ImagePreprocessor):
    """matterport's image molding (see the module docstring).

    Args:
        mean: MEAN_PIXEL, RGB 0-255.
        resize_mode: ``none | square | pad64 | crop``.
        min_dim, max_dim, min_scale: IMAGE_MIN_DIM, IMAGE_MAX_DIM, IMAGE_MIN_SCALE.
    """

    def __init__(self, *, mean: Sequence[float], resize_mode: str = "square", min_dim: int = 800,
                 max_dim: int = 1024, min_scale: float = 0.0) -> None:
        if resize_mode not in ("none", "square", "pad64", "crop"):
            raise ValueError(f"resize_mode={resize_mode!r}: matterport's modes are none, square, pad64, crop")
        super().__init__(mean=mean, std=[1.0, 1.0, 1.0], resize_mode=resize_mode, min_dim=min_dim, max_dim=max_dim,
                         min_scale=min_scale, pad_divisor=64)

    def __call__(self, images: Sequence[Tensor], targets: list[dict[str, Tensor]] | None = None, *,
                 training: bool = False, dtype: torch.dtype = torch.float32
                 ) -> tuple[MoldedBatch, list[dict[str, Tensor]] | None]:
        if len(images) == 0:
            raise ValueError("images: got an empty list")
        placed, sizes, originals, scales, windows = [], [], [], [], []
        out_targets = [] if targets is not None else None
        for i, image in enumerate(images):
            if image.dim() != 3 or image.shape[0] != 3:
                raise ValueError(f"images[{i}]: expected a [3,H,W] tensor, got shape {tuple(image.shape)}")
            target = dict(targets[i]) if targets is not None else None
            padded, target, scale, window = self.mold_one(image, target, training=training)
            originals.append((int(image.shape[-2]), int(image.shape[-1])))
            placed.append(padded)
            sizes.append((window[2] - window[0], window[3] - window[1]))
            scales.append(scale)
            windows.append(window)
            if out_targets is not None:
                out_targets.append(target)
        height = max(p.shape[-2] for p in placed)
        width = max(p.shape[-1] for p in placed)
        canvas = placed[0].new_zeros((len(placed), 3, height, width))
        for i, p in enumerate(placed):
            canvas[i, :, : p.shape[-2], : p.shape[-1]] = p
        mean = torch.as_tensor(self.mean, dtype=torch.float64, device=canvas.device)
        tensor = (canvas.double() - mean[:, None, None]).to(dtype)
        if out_targets is not None:
            out_targets = [_pad_masks(t, (height, width)) for t in out_targets]
        return MoldedBatch(tensor, sizes, originals, scales, windows), out_targets

    def molded_size(self, height: int, width: int) -> tuple[int, int]:
        """The ``(Hm, Wm)`` an ``height × width`` image molds to at inference (``"crop"`` molds as ``"square"``)."""
        mode = "square" if self.resize_mode == "crop" else self.resize_mode
        scale = resize_scale(height, width, mode=mode, min_dim=self.min_dim, max_dim=self.max_dim,
                             min_scale=self.min_scale)
        size = (round(height * scale), round(width * scale)) if scale != 1.0 else (height, width)
        return self._padded(size, mode)

    def _padded(self, size: tuple[int, int], mode: str) -> tuple[int, int]:
        """The padded size of a resized ``(h, w)`` image: ``max_dim²`` (square), multiples of 64 (pad64), as is (none)."""
        if mode == "square":
            return self.max_dim, self.max_dim
        if mode == "pad64":
            return 64 * math.ceil(size[0] / 64), 64 * math.ceil(size[1] / 64)
        return size

    def mold_one(self, image: Tensor, target: dict[str, Tensor] | None, *, training: bool
                 ) -> tuple[Tensor, dict[str, Tensor] | None, float, tuple[int, int, int, int]]:
        """One image ``[3,H,W]`` → (resized and padded image in 0-255 float64, target, scale, window)."""
        is_uint8 = image.dtype == torch.uint8
        h, w = int(image.shape[-2]), int(image.shape[-1])
        mode = "square" if self.resize_mode == "crop" and not training else self.resize_mode
        scale = resize_scale(h, w, mode=mode, min_dim=self.min_dim, max_dim=self.max_dim, min_scale=self.min_scale)
        x = image.double()
        if scale != 1.0:
            size = (round(h * scale), round(w * scale))
            x = resize_linear(x, size)
            if is_uint8:  # resize_image returns image.astype(uint8): truncation
                x = torch.trunc(x).clamp_(0, 255)
            target = self._resize_target(target, (h, w), size)
        nh, nw = int(x.shape[-2]), int(x.shape[-1])
        if mode == "crop":
            side = self.min_dim
            y0 = int(torch.randint(0, nh - side + 1, ()).item())
            x0 = int(torch.randint(0, nw - side + 1, ()).item())
            x = x[:, y0:y0 + side, x0:x0 + side]
            target = self._crop_target(target, x0, y0, side)
            return x, target, scale, (0, 0, side, side)
        if mode == "none" and (nh % 32 or nw % 32):  # matterport's FPN adds P5 upsampled x2 to C4
            raise ValueError(f"IMAGE_RESIZE_MODE='none' needs image sides that are multiples of 32 (matterport's "
                             f"FPN), got {nh}x{nw}; use 'square' or 'pad64' for other sizes")
        (top, bottom), (left, right) = (_centred(n, to) for n, to in zip((nh, nw), self._padded((nh, nw), mode)))
        if top or bottom or left or right:
            x = F.pad(x, (left, right, top, bottom))
            target = _shift_target(target, left, top)
        return x, target, scale, (top, left, top + nh, left + nw)


def _shift_target(target: dict[str, Tensor] | None, dx: int, dy: int) -> dict[str, Tensor] | None:
    """Boxes moved by the padding; full-size masks padded at the top/left."""
    if target is None:
        return None
    target = dict(target)
    if target.get("boxes") is not None:
        target["boxes"] = target["boxes"].float() + torch.tensor([dx, dy, dx, dy], dtype=torch.float32,
                                                                 device=target["boxes"].device)
    if target.get("masks") is not None:
        target["masks"] = F.pad(target["masks"], (dx, 0, dy, 0))
    return target


def _pad_masks(target: dict[str, Tensor] | None, size: tuple[int, int]) -> dict[str, Tensor] | None:
    """Full-size masks padded at the bottom/right to the batch size."""
    if target is None or target.get("masks") is None:
        return target
    masks = target["masks"]
    target = dict(target)
    target["masks"] = F.pad(masks, (0, size[1] - masks.shape[-1], 0, size[0] - masks.shape[-2]))
    return target
