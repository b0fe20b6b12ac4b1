"""From a :class:`Dataset` to training batches: ``TrainingSamples``, ``collate``, ``make_loader``.

An item of :class:`TrainingSamples` is ``(image, target)``:

- ``image``: uint8 ``[3, H, W]`` at the image's original (augmented) size: the model resizes;
- ``target``: ``boxes`` float32 ``[N, 4]`` xyxy pixels computed from the masks (x2, y2
  exclusive, like matterport's boxes), ``labels`` int64 ``[N]`` in ``1..num_classes-1``,
  ``iscrowd`` bool ``[N]``, ``image_id`` int (the dataset's internal id), and either
  ``masks`` bool ``[N, H, W]`` or, with ``use_mini_mask``, ``mini_masks`` bool ``[N, mh, mw]``
  (each mask cropped to its box and resized to ``mini_mask_shape``).

Images without instances give ``N = 0`` tensors of those shapes. Instances whose mask is
empty (a polygon covering no pixel center, or cropped away by augmentation) are dropped.
When an image has more than ``max_gt_instances`` instances, a random subset is kept (numpy's
global RNG, seeded per worker by :func:`worker_init_fn`), like matterport's data generator.
"""

from __future__ import annotations

import random
from typing import Any, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler

from ..errors import DatasetError
from .augment import Augmentation, augment_sample
from .dataset import Dataset
from .transforms import minimize_masks_xyxy


class TrainingSamples(torch.utils.data.Dataset):
    """A ``torch.utils.data.Dataset`` view of a prepared :class:`Dataset` for training.

    Args:
        dataset: a prepared Dataset.
        use_mini_mask: return ``mini_masks`` instead of full-size ``masks`` (USE_MINI_MASK).
        mini_mask_shape: ``(mh, mw)`` (MINI_MASK_SHAPE).
        max_gt_instances: keep at most this many instances per image (MAX_GT_INSTANCES).
        augmentation: ``aug(image, target) -> (image, target)``, see :mod:`maskrcnn.data.augment`.
        image_ids: the dataset's image ids to use (default: all), e.g. a split.
    """

    def __init__(
        self,
        dataset: Dataset,
        *,
        use_mini_mask: bool = True,
        mini_mask_shape: Sequence[int] = (56, 56),
        max_gt_instances: int = 100,
        augmentation: Augmentation | None = None,
        image_ids: Sequence[int] | None = None,
    ) -> None:
        if not getattr(dataset, "_prepared", False) and not hasattr(dataset, "class_names"):
            raise DatasetError(f"{type(dataset).__name__}: call dataset.prepare() before TrainingSamples")
        if len(mini_mask_shape) != 2 or min(int(v) for v in mini_mask_shape) < 1:
            raise DatasetError(f"mini_mask_shape={mini_mask_shape!r}: give (height, width), e.g. (56, 56)")
        if int(max_gt_instances) < 1:
            raise DatasetError(f"max_gt_instances={max_gt_instances!r}: must be >= 1")
        self.dataset = dataset
        self.use_mini_mask = bool(use_mini_mask)
        self.mini_mask_shape = (int(mini_mask_shape[0]), int(mini_mask_shape[1]))
        self.max_gt_instances = int(max_gt_instances)
        self.augmentation = augmentation
        ids = list(dataset.image_ids) if image_ids is None else [int(i) for i in image_ids]
        bad = [i for i in ids if not 0 <= i < dataset.num_images]
        if bad:
            raise DatasetError(f"image_ids {bad[:5]} are not ids of this dataset (0..{dataset.num_images - 1})")
        self.image_ids = ids

    @classmethod
    def from_config(cls, dataset: Dataset, config: Any, *, augmentation: Augmentation | None = None,
                    image_ids: Sequence[int] | None = None) -> "TrainingSamples":
        """Samples with USE_MINI_MASK, MINI_MASK_SHAPE and MAX_GT_INSTANCES from a Config."""
        return cls(dataset, use_mini_mask=config.USE_MINI_MASK, mini_mask_shape=config.MINI_MASK_SHAPE,
                   max_gt_instances=config.MAX_GT_INSTANCES, augmentation=augmentation, image_ids=image_ids)

    def __len__(self) -> int:
        return len(self.image_ids)

    def load(self, image_id: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Image uint8 ``[3, H, W]``, masks bool ``[N, H, W]`` and signed labels ``[N]`` of one image, checked."""
        ds = self.dataset
        ref = ds.image_reference(image_id)
        image = np.asarray(ds.load_image(image_id))
        if image.ndim != 3 or image.shape[-1] != 3 or image.dtype != np.uint8:
            raise DatasetError(f"{ref}: load_image must return an H x W x 3 uint8 array, "
                               f"got {image.dtype} {image.shape}")
        mask, class_ids = ds.load_mask(image_id)
        mask, class_ids = np.asarray(mask), np.asarray(class_ids).reshape(-1)
        h, w = image.shape[:2]
        if mask.size == 0 and len(class_ids) == 0:
            mask = np.zeros((h, w, 0), dtype=bool)
        if mask.ndim != 3 or mask.shape[:2] != (h, w) or mask.shape[2] != len(class_ids):
            raise DatasetError(f"{ref}: load_mask returned masks of shape {mask.shape} and {len(class_ids)} "
                               f"class ids for an image of {h}x{w}; expected [{h}, {w}, N] and N ids")
        bad = [int(c) for c in class_ids if not 1 <= abs(int(c)) < ds.num_classes]
        if bad:
            raise DatasetError(f"{ref}: class ids {bad[:5]} are outside 1..{ds.num_classes - 1}")
        image_t = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).contiguous()
        masks_n = np.moveaxis(mask, -1, 0)
        masks_n = masks_n if masks_n.dtype == bool else masks_n != 0
        masks_t = torch.from_numpy(np.ascontiguousarray(masks_n))
        labels_t = torch.from_numpy(class_ids.astype(np.int64))
        return image_t, masks_t, labels_t

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, Any]]:
        image_id = self.image_ids[index]
        image, masks, labels = self.load(image_id)
        image, masks, labels, boxes = augment_sample(self.augmentation, image, masks, labels,
                                                     where=self.dataset.image_reference(image_id))
        if len(labels) > self.max_gt_instances:
            keep = np.sort(np.random.choice(len(labels), self.max_gt_instances, replace=False))
            keep_t = torch.from_numpy(keep)
            masks, labels, boxes = masks[keep_t], labels[keep_t], boxes[keep_t]
        target: dict[str, Any] = {
            "boxes": boxes,
            "labels": labels.abs(),
            "iscrowd": labels < 0,
            "image_id": int(image_id),
        }
        if self.use_mini_mask:
            target["mini_masks"] = minimize_masks_xyxy(masks, boxes, self.mini_mask_shape)
        else:
            target["masks"] = masks
        return image, target


def collate(batch: Sequence[tuple[torch.Tensor, dict]]) -> tuple[list[torch.Tensor], list[dict]]:
    """``[(image, target), ...]`` -> ``(images, targets)`` lists (images keep their own sizes)."""
    images = [item[0] for item in batch]
    targets = [item[1] for item in batch]
    return images, targets


def worker_init_fn(worker_id: int) -> None:
    """Seed numpy and ``random`` in each worker from torch's per-worker seed (itself from the loader's seed)."""
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def make_loader(
    samples: torch.utils.data.Dataset,
    *,
    batch_size: int,
    shuffle: bool,
    num_workers: int = 0,
    seed: int = 0,
    drop_last: bool = False,
    sampler: Sampler | None = None,
) -> DataLoader:
    """A ``DataLoader`` with :func:`collate`, per-worker seeding and a seeded shuffle order.

    With ``sampler`` (e.g. a ``DistributedSampler``), ``shuffle`` is left to the sampler.
    With ``num_workers=0``, augmentation draws from the main process' global torch RNG.
    """
    if batch_size < 1:
        raise DatasetError(f"batch_size={batch_size!r}: must be >= 1")
    generator = torch.Generator()
    generator.manual_seed(int(seed))
    return DataLoader(
        samples,
        batch_size=int(batch_size),
        shuffle=bool(shuffle) if sampler is None else False,
        sampler=sampler,
        num_workers=int(num_workers),
        collate_fn=collate,
        worker_init_fn=worker_init_fn if num_workers > 0 else None,
        generator=generator,
        drop_last=bool(drop_last),
        persistent_workers=num_workers > 0,
    )
