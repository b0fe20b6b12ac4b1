"""Augmentation that keeps image, masks and boxes consistent, on torchvision ``transforms.v2``.

An augmentation is any callable ``aug(image, target) -> (image, target)`` where ``image`` is a
``tv_tensors.Image`` uint8 ``[3, H, W]`` and ``target`` a dict with

- ``"masks"``: ``tv_tensors.Mask`` uint8 ``[N, H, W]`` (0/1),
- ``"boxes"``: ``tv_tensors.BoundingBoxes`` ``[N, 4]`` XYXY pixels (x2, y2 exclusive),
- ``"labels"``: int64 ``[N]`` class ids, **negative for crowd instances**.

Every ``torchvision.transforms.v2`` transform and ``v2.Compose`` of them is such a callable
(geometric ones move masks and boxes with the image; masks are resampled nearest), and so
is your own function. Pass it as ``TrainingSamples(..., augmentation=aug)``; e.g.::

    from torchvision.transforms import v2
    aug = v2.Compose([v2.RandomHorizontalFlip(0.5), v2.RandomPhotometricDistort(p=0.5)])

After the augmentation, :func:`augment_sample` recomputes the boxes from the masks (so boxes
always equal the masks' boxes, whatever a transform did to the box coordinates) and drops
instances whose mask became empty (e.g. cropped away), with their labels. Transforms that
drop instances themselves (``v2.SanitizeBoundingBoxes``) stay consistent because crowd flags
travel inside ``labels``.

Presets: :func:`default_augmentation` (horizontal flip, light color jitter) and
:func:`strong_augmentation` (flips, 90° rotations, scale jitter, crops, color jitter, blur);
:func:`get_augmentation` maps the names ``none | default | strong`` to them (for the CLI).
"""

from __future__ import annotations

import math
from typing import Any, Callable

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

from ..errors import DatasetError
from .transforms import masks_to_boxes, nonempty

Augmentation = Callable[[Any, dict], tuple[Any, dict]]
_SPATIAL = (tv_tensors.Image, tv_tensors.Mask, tv_tensors.Video)


class RandomRotate90(v2.Transform):
    """Rotate by ``k * 90°`` counter-clockwise, ``k`` drawn from ``ks``; exact (no resampling)."""

    def __init__(self, ks: tuple[int, ...] = (0, 1, 2, 3)) -> None:
        super().__init__()
        self.ks = tuple(int(k) % 4 for k in ks)

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        return {"k": self.ks[int(torch.randint(len(self.ks), ()).item())]}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        k = params["k"]
        if k == 0:
            return inpt
        if isinstance(inpt, tv_tensors.BoundingBoxes):
            boxes = TF.convert_bounding_box_format(inpt, new_format=tv_tensors.BoundingBoxFormat.XYXY)
            h, w = inpt.canvas_size
            data = boxes.as_subclass(torch.Tensor)
            for _ in range(k):  # (x, y) -> (y, w - x); the canvas becomes w x h
                x1, y1, x2, y2 = data.unbind(-1)
                data = torch.stack([y1, w - x2, y2, w - x1], dim=-1)
                h, w = w, h
            out = tv_tensors.BoundingBoxes(data, format="XYXY", canvas_size=(h, w))
            return TF.convert_bounding_box_format(out, new_format=inpt.format)
        if isinstance(inpt, _SPATIAL):
            return tv_tensors.wrap(torch.rot90(inpt.as_subclass(torch.Tensor), k, dims=(-2, -1)), like=inpt)
        return inpt


class RandomScale(v2.Transform):
    """Resize by a factor drawn uniformly (in log space) from ``scale_range``.

    Images use ``interpolation`` (bilinear by default); masks are always resampled nearest.
    """

    def __init__(self, scale_range: tuple[float, float] = (0.75, 1.25),
                 interpolation: v2.InterpolationMode = v2.InterpolationMode.BILINEAR) -> None:
        super().__init__()
        lo, hi = float(scale_range[0]), float(scale_range[1])
        if not 0 < lo <= hi:
            raise ValueError(f"RandomScale: scale_range={scale_range!r} must be 0 < low <= high")
        self.scale_range = (lo, hi)
        self.interpolation = interpolation

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        h, w = v2.query_size(flat_inputs)
        lo, hi = math.log(self.scale_range[0]), math.log(self.scale_range[1])
        s = math.exp(lo + (hi - lo) * float(torch.rand(())))
        return {"size": [max(1, round(h * s)), max(1, round(w * s))]}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        return self._call_kernel(TF.resize, inpt, size=params["size"], interpolation=self.interpolation,
                                 antialias=True)


class RandomCropFraction(v2.Transform):
    """Crop a random window whose sides are a fraction in ``[min_fraction, 1]`` of the image's."""

    def __init__(self, min_fraction: float = 0.6) -> None:
        super().__init__()
        if not 0 < min_fraction <= 1:
            raise ValueError(f"RandomCropFraction: min_fraction={min_fraction!r} must be in (0, 1]")
        self.min_fraction = float(min_fraction)

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        h, w = v2.query_size(flat_inputs)
        f = self.min_fraction + (1 - self.min_fraction) * float(torch.rand(()))
        ch, cw = max(1, round(h * f)), max(1, round(w * f))
        top = int(torch.randint(h - ch + 1, ()).item())
        left = int(torch.randint(w - cw + 1, ()).item())
        return {"top": top, "left": left, "height": ch, "width": cw}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        return self._call_kernel(TF.crop, inpt, **params)


def default_augmentation() -> v2.Compose:
    """Horizontal flip (p=0.5) and light color jitter (p=0.5): safe for most photos (matterport's balloon used Fliplr)."""
    return v2.Compose([
        v2.RandomHorizontalFlip(0.5),
        v2.RandomApply([v2.ColorJitter(brightness=0.15, contrast=0.15, saturation=0.15)], p=0.5),
    ])


def strong_augmentation(*, scale_range: tuple[float, float] = (0.75, 1.25), min_crop: float = 0.6,
                        crop_p: float = 0.5) -> v2.Compose:
    """Flips, 90° rotations, scale jitter, crops, color jitter and blur (matterport's nucleus sample)."""
    return v2.Compose([
        v2.RandomHorizontalFlip(0.5),
        v2.RandomVerticalFlip(0.5),
        RandomRotate90(),
        RandomScale(scale_range),
        v2.RandomApply([RandomCropFraction(min_crop)], p=crop_p),
        v2.RandomApply([v2.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2, hue=0.02)], p=0.5),
        v2.RandomApply([v2.GaussianBlur(kernel_size=5, sigma=(0.1, 1.5))], p=0.2),
    ])


AUGMENTATIONS: dict[str, Callable[[], Augmentation] | None] = {
    "none": None,
    "default": default_augmentation,
    "strong": strong_augmentation,
}


def get_augmentation(name: str | None) -> Augmentation | None:
    """The preset called ``name`` (``none``, ``default``, ``strong``); None for none."""
    key = "none" if name is None else str(name).lower()
    if key not in AUGMENTATIONS:
        raise DatasetError(f"augmentation {name!r}: choose one of {', '.join(AUGMENTATIONS)}")
    factory = AUGMENTATIONS[key]
    return factory() if factory is not None else None


def augment_sample(augmentation: Augmentation | None, image: torch.Tensor, masks: torch.Tensor,
                   labels: torch.Tensor, *, where: str = "sample"
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Apply ``augmentation`` to one sample and restore the invariants.

    Args:
        image: uint8 ``[3, H, W]``.
        masks: bool ``[N, H, W]``.
        labels: int64 ``[N]`` (negative = crowd).

    Returns:
        ``(image uint8 [3, H', W'], masks bool [M, H', W'], labels int64 [M], boxes float32 [M, 4])``
        with ``M <= N``: the instances whose masks are not empty, boxes (xyxy, exclusive ends)
        computed from the masks.
    """
    if augmentation is not None:
        h, w = image.shape[-2:]
        target = {
            "boxes": tv_tensors.BoundingBoxes(masks_to_boxes(masks), format="XYXY", canvas_size=(h, w)),
            "masks": tv_tensors.Mask(masks.to(torch.uint8)),
            "labels": labels,
        }
        try:
            out = augmentation(tv_tensors.Image(image), target)
        except DatasetError:
            raise
        except Exception as exc:
            raise DatasetError(f"{where}: the augmentation failed: {type(exc).__name__}: {exc}") from exc
        if not (isinstance(out, (tuple, list)) and len(out) == 2 and isinstance(out[1], dict)):
            raise DatasetError(f"{where}: an augmentation must return (image, target_dict), got {type(out).__name__}")
        image_out, target = out
        image = torch.as_tensor(image_out).as_subclass(torch.Tensor)
        masks = torch.as_tensor(target["masks"]).as_subclass(torch.Tensor) != 0
        labels = torch.as_tensor(target["labels"]).as_subclass(torch.Tensor).to(torch.int64)
        if image.dtype != torch.uint8:
            image = image.round().clamp(0, 255).to(torch.uint8) if image.is_floating_point() else image.to(torch.uint8)
        if image.ndim != 3 or image.shape[0] != 3:
            raise DatasetError(f"{where}: the augmentation returned an image of shape {tuple(image.shape)}, "
                               f"expected [3, H, W]")
        if masks.ndim != 3 or masks.shape[1:] != image.shape[1:] or masks.shape[0] != labels.shape[0]:
            raise DatasetError(f"{where}: the augmentation returned masks {tuple(masks.shape)} and labels "
                               f"{tuple(labels.shape)} for an image {tuple(image.shape)}; they must agree")
    keep = nonempty(masks)
    if not bool(keep.all()):
        masks, labels = masks[keep], labels[keep]
    return image.contiguous(), masks.contiguous(), labels, masks_to_boxes(masks)
