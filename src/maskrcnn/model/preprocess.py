"""Image preprocessing: normalize, resize per IMAGE_RESIZE_MODE, pad into one batch tensor.

This is the package's one resize/pad geometry: training, inference, ``show-dataset`` pictures and
the inspect report all see images through it (nothing under :mod:`maskrcnn.data` resizes).

Input: ``images: list[Tensor[3,H,W]]`` RGB, uint8 or float in **0-255**. Each image is
normalized ``(x - mean) / std`` (0-255 units) first, then resized:

* ``"shortest_edge"``: torchvision's ``GeneralizedRCNNTransform`` exactly — scale
  ``min(min_dim / short side, max_dim / long side)``, ``F.interpolate(scale_factor=scale,
  mode="bilinear", recompute_scale_factor=True, align_corners=False)``;
* ``"square"``: matterport's rule — ``scale = max(1, min_dim / short side)`` (raised to
  ``min_scale``), lowered so that ``round(long side * scale) <= max_dim``; resized to
  ``(round(h * scale), round(w * scale))`` bilinearly, then padded to ``max_dim x max_dim``;
* ``"pad64"``: matterport's up-scaling rule (``max(1, min_dim / short side)``, ``min_scale``;
  no cap), then padded to multiples of 64;
* ``"crop"``: in training, the up-scaling rule then a random ``min_dim x min_dim`` crop
  (``torch`` RNG); at inference it behaves as ``"square"``;
* ``"none"``: no resize.

Images are padded at the bottom/right with 0 (after normalization, i.e. the mean
colour) into ``[B,3,Hp,Wp]``, ``Hp, Wp`` multiples of ``pad_divisor``.

Targets (per image dict, optional): ``boxes [N,4]`` xyxy are scaled per axis by
``new_size / old_size`` (torchvision's ``resize_boxes``); full-size ``masks [N,H,W]``
are resized with nearest-neighbour interpolation (torchvision's rule) to the resized
image; ``mini_masks`` are relative to their box and are left alone (except in
``"crop"`` mode, where the part of each mini-mask inside the crop is resampled).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.ops import roi_align

from ..config import RESIZE_MODES


@dataclass
class ImageBatch:
    """A padded batch and where each image lies in it.

    Attributes:
        tensor: ``[B,3,Hp,Wp]`` normalized float images, padded bottom/right with 0.
        image_sizes: ``(h, w)`` of each image after resizing (its valid area is ``[:h, :w]``).
        original_sizes: ``(H, W)`` of each input image.
        scales: the resize factor applied to each image.
    """

    tensor: Tensor
    image_sizes: list[tuple[int, int]]
    original_sizes: list[tuple[int, int]]
    scales: list[float]

    def to(self, device: torch.device | str) -> ImageBatch:
        return ImageBatch(self.tensor.to(device), self.image_sizes, self.original_sizes, self.scales)

    def __len__(self) -> int:
        return len(self.image_sizes)


def resize_boxes(boxes: Tensor, original_size: Sequence[int], new_size: Sequence[int]) -> Tensor:
    """Scale ``xyxy`` boxes ``[N,4]`` from an image of ``original_size (h, w)`` to ``new_size (h, w)``.

    Same arithmetic as torchvision's ``resize_boxes`` (float32 ratios ``new / old`` per axis).
    """
    ratio_h = torch.tensor(new_size[0], dtype=torch.float32, device=boxes.device) / torch.tensor(
        original_size[0], dtype=torch.float32, device=boxes.device)
    ratio_w = torch.tensor(new_size[1], dtype=torch.float32, device=boxes.device) / torch.tensor(
        original_size[1], dtype=torch.float32, device=boxes.device)
    x1, y1, x2, y2 = boxes.unbind(1)
    return torch.stack((x1 * ratio_w, y1 * ratio_h, x2 * ratio_w, y2 * ratio_h), dim=1)


class ImagePreprocessor:
    """Normalize, resize and batch images (see the module docstring for the modes).

    Args:
        mean, std: per-channel RGB values in 0-255 units (MEAN_PIXEL, PIXEL_STD).
        resize_mode: one of ``none | square | pad64 | crop | shortest_edge``.
        min_dim, max_dim, min_scale: IMAGE_MIN_DIM, IMAGE_MAX_DIM, IMAGE_MIN_SCALE.
        pad_divisor: the batch is padded to multiples of this (IMAGE_PAD_DIVISOR).
    """

    def __init__(
        self,
        *,
        mean: Sequence[float],
        std: Sequence[float],
        resize_mode: str = "square",
        min_dim: int = 800,
        max_dim: int = 1024,
        min_scale: float = 0.0,
        pad_divisor: int = 32,
    ) -> None:
        if resize_mode not in RESIZE_MODES:
            raise ValueError(f"resize_mode={resize_mode!r}: choose one of {', '.join(RESIZE_MODES)}")
        self.mean = [float(m) for m in mean]
        self.std = [float(s) for s in std]
        self.resize_mode = resize_mode
        self.min_dim = int(min_dim) if min_dim else 0
        self.max_dim = int(max_dim) if max_dim else 0
        self.min_scale = float(min_scale or 0.0)
        self.pad_divisor = int(pad_divisor)

    # ------------------------------------------------------------------ public
    def __call__(
        self,
        images: Sequence[Tensor],
        targets: list[dict[str, Tensor]] | None = None,
        *,
        training: bool = False,
        dtype: torch.dtype = torch.float32,
    ) -> tuple[ImageBatch, list[dict[str, Tensor]] | None]:
        """``images`` (list of ``[3,H,W]``, 0-255) and optional targets → ``(ImageBatch, resized targets)``."""
        if len(images) == 0:
            raise ValueError("images: got an empty list")
        out_images, sizes, originals, scales, pads = [], [], [], [], []
        out_targets = [] if targets is not None else None
        for i, image in enumerate(images):
            if image.dim() != 3 or image.shape[0] != 3:
                raise ValueError(f"images[{i}]: expected a [3,H,W] tensor, got shape {tuple(image.shape)}")
            target = dict(targets[i]) if targets is not None else None
            originals.append((int(image.shape[-2]), int(image.shape[-1])))
            image = self.normalize(image.to(dtype))
            image, target, scale, pad_to = self.resize(image, target, training=training)
            out_images.append(image)
            sizes.append((int(image.shape[-2]), int(image.shape[-1])))
            scales.append(scale)
            pads.append(pad_to)
            if out_targets is not None:
                out_targets.append(target)
        tensor = self.batch(out_images, pads)
        return ImageBatch(tensor, sizes, originals, scales), out_targets

    def normalize(self, image: Tensor) -> Tensor:
        """``(image - mean) / std`` per channel; ``image [3,H,W]`` float 0-255.

        Computed as ``(image / 255 - mean / 255) / (std / 255)``: the same value, but with
        torchvision's arithmetic (it normalizes 0-1 images), so that TorchvisionConfig's input
        is bit-identical to torchvision's and the parity test can compare exactly.
        """
        mean = torch.as_tensor([m / 255.0 for m in self.mean], dtype=image.dtype, device=image.device)
        std = torch.as_tensor([s / 255.0 for s in self.std], dtype=image.dtype, device=image.device)
        return (image / 255.0 - mean[:, None, None]) / std[:, None, None]

    def denormalize(self, image: Tensor) -> Tensor:
        """The inverse of :meth:`normalize`: ``image * std + mean``, float 0-255, ``image [3,H,W]``."""
        mean = torch.as_tensor(self.mean, dtype=image.dtype, device=image.device)
        std = torch.as_tensor(self.std, dtype=image.dtype, device=image.device)
        return image * std[:, None, None] + mean[:, None, None]

    def resize(
        self, image: Tensor, target: dict[str, Tensor] | None, *, training: bool
    ) -> tuple[Tensor, dict[str, Tensor] | None, float, tuple[int, int] | None]:
        """Resize one normalized image ``[3,H,W]`` (and its target) → (image, target, scale, pad size or None)."""
        h, w = int(image.shape[-2]), int(image.shape[-1])
        mode = self.resize_mode
        if mode == "crop" and not training:
            mode = "square"
        if mode == "none":
            return image, target, 1.0, None
        if mode == "shortest_edge":
            scale = min(self.min_dim / min(h, w), self.max_dim / max(h, w))
            image = F.interpolate(image[None], scale_factor=scale, mode="bilinear", recompute_scale_factor=True,
                                  align_corners=False)[0]
            target = self._resize_target(target, (h, w), image.shape[-2:], scale_factor=scale)
            return image, target, scale, None

        scale = max(1.0, self.min_dim / min(h, w)) if self.min_dim else 1.0
        if self.min_scale and scale < self.min_scale:
            scale = self.min_scale
        if mode == "square" and self.max_dim and round(max(h, w) * scale) > self.max_dim:
            scale = self.max_dim / max(h, w)
        if scale != 1.0:
            size = (round(h * scale), round(w * scale))
            image = F.interpolate(image[None], size=size, mode="bilinear", align_corners=False)[0]
            target = self._resize_target(target, (h, w), size)
        nh, nw = int(image.shape[-2]), int(image.shape[-1])
        if mode == "square":
            return image, target, scale, (self.max_dim, self.max_dim)
        if mode == "pad64":
            return image, target, scale, (64 * math.ceil(nh / 64), 64 * math.ceil(nw / 64))
        # crop (training)
        side = self.min_dim
        y = int(torch.randint(0, nh - side + 1, ()).item())
        x = int(torch.randint(0, nw - side + 1, ()).item())
        image = image[:, y:y + side, x:x + side]
        target = self._crop_target(target, x, y, side)
        return image, target, scale, None

    def batch(self, images: list[Tensor], pad_sizes: list[tuple[int, int] | None]) -> Tensor:
        """Pad images bottom/right with 0 to a common size, multiple of ``pad_divisor``."""
        heights = [max(img.shape[-2], p[0] if p else 0) for img, p in zip(images, pad_sizes)]
        widths = [max(img.shape[-1], p[1] if p else 0) for img, p in zip(images, pad_sizes)]
        d = float(self.pad_divisor)
        height = int(math.ceil(max(heights) / d) * d)
        width = int(math.ceil(max(widths) / d) * d)
        out = images[0].new_zeros((len(images), 3, height, width))
        for i, img in enumerate(images):
            out[i, :, : img.shape[-2], : img.shape[-1]].copy_(img)
        return out

    # ------------------------------------------------------------------ targets
    @staticmethod
    def _resize_target(
        target: dict[str, Tensor] | None, old: Sequence[int], new: Sequence[int], scale_factor: float | None = None
    ) -> dict[str, Tensor] | None:
        if target is None:
            return None
        target = dict(target)
        if "boxes" in target:
            target["boxes"] = resize_boxes(target["boxes"].float(), old, new)
        masks = target.get("masks")
        if masks is not None:
            dtype = masks.dtype
            if masks.shape[0] == 0:
                target["masks"] = masks.new_zeros((0, int(new[0]), int(new[1])))
            elif scale_factor is not None:  # torchvision's exact call
                target["masks"] = F.interpolate(masks[:, None].float(), scale_factor=scale_factor,
                                                recompute_scale_factor=True)[:, 0].to(dtype)
            else:
                target["masks"] = F.interpolate(masks[:, None].float(), size=(int(new[0]), int(new[1])),
                                                mode="nearest")[:, 0].to(dtype)
        return target

    @staticmethod
    def _crop_target(target: dict[str, Tensor] | None, x: int, y: int, side: int) -> dict[str, Tensor] | None:
        """Shift boxes by the crop origin, clip them, drop instances left with no area."""
        if target is None:
            return None
        target = dict(target)
        boxes = target["boxes"].float()
        shifted = boxes - torch.tensor([x, y, x, y], dtype=boxes.dtype, device=boxes.device)
        clipped = shifted.clone()
        clipped[:, 0::2] = clipped[:, 0::2].clamp(0, side)
        clipped[:, 1::2] = clipped[:, 1::2].clamp(0, side)
        keep = (clipped[:, 2] > clipped[:, 0]) & (clipped[:, 3] > clipped[:, 1])
        if target.get("mini_masks") is not None and len(boxes):
            target["mini_masks"] = _crop_mini_masks(target["mini_masks"], shifted, clipped)
        if target.get("masks") is not None:
            target["masks"] = target["masks"][:, y:y + side, x:x + side]
        for key in ("boxes", "labels", "iscrowd", "masks", "mini_masks"):
            if target.get(key) is not None:
                target[key] = target[key][keep]
        target["boxes"] = clipped[keep]
        return target


def _crop_mini_masks(mini_masks: Tensor, boxes: Tensor, clipped: Tensor) -> Tensor:
    """Resample the part of each mini-mask ``[N,mh,mw]`` (covering ``boxes``) that lies inside ``clipped``."""
    n, mh, mw = mini_masks.shape
    w = (boxes[:, 2] - boxes[:, 0]).clamp(min=1e-6)
    h = (boxes[:, 3] - boxes[:, 1]).clamp(min=1e-6)
    rois = torch.stack([
        torch.arange(n, dtype=boxes.dtype, device=boxes.device),
        (clipped[:, 0] - boxes[:, 0]) / w * mw, (clipped[:, 1] - boxes[:, 1]) / h * mh,
        (clipped[:, 2] - boxes[:, 0]) / w * mw, (clipped[:, 3] - boxes[:, 1]) / h * mh,
    ], dim=1)
    out = roi_align(mini_masks[:, None].float(), rois, output_size=(mh, mw), spatial_scale=1.0,
                    sampling_ratio=2, aligned=True)[:, 0]
    return (out >= 0.5).to(mini_masks.dtype)
