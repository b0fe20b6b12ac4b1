"""Run ``model.detect`` over a dataset's images in batches (shared by the COCO and VOC metrics)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from ..errors import MaskRCNNError

__all__ = ["select_image_ids", "iter_detections"]


def select_image_ids(dataset, image_ids: Sequence[int] | None = None, limit: int | None = None) -> list[int]:
    """The internal ids to evaluate: ``image_ids`` (default all of ``dataset.image_ids``),
    cut to the first ``limit`` when given."""
    ids = [int(i) for i in (dataset.image_ids if image_ids is None else image_ids)]
    if limit is not None:
        if int(limit) < 0:
            raise MaskRCNNError(f"limit must be >= 0, got {limit}")
        ids = ids[: int(limit)]
    n_images = len(dataset.image_info)
    bad = [i for i in ids if not 0 <= i < n_images]
    if bad:
        raise MaskRCNNError(f"image id {bad[0]} is not in the dataset (it has {n_images} images)")
    return ids


def iter_detections(
    model, dataset, image_ids: Sequence[int], *, batch_size: int = 1, progress: bool = True, desc: str = "detect"
) -> Iterator[tuple[int, np.ndarray, dict]]:
    """Yield ``(image_id, image H×W×3 uint8, result dict)`` for each id, in order.

    Images go to ``model.detect(images, verbose=0)`` ``batch_size`` at a time; a short
    last batch is padded by repeating its last image (and the extra results dropped), so
    models that insist on a fixed batch size, like matterport's, work too.
    """
    if int(batch_size) < 1:
        raise MaskRCNNError(f"batch_size must be >= 1, got {batch_size}")
    from tqdm import tqdm

    batch_size = int(batch_size)
    bar = tqdm(total=len(image_ids), desc=desc, unit="img", disable=not progress)
    try:
        for start in range(0, len(image_ids), batch_size):
            ids = list(image_ids[start:start + batch_size])
            images = [np.asarray(dataset.load_image(i)) for i in ids]
            padded = images + [images[-1]] * (batch_size - len(images))
            results = model.detect(padded, verbose=0)
            if len(results) != len(padded):
                raise MaskRCNNError(
                    f"model.detect returned {len(results)} results for a batch of {len(padded)} images"
                )
            for image_id, image, result in zip(ids, images, results):
                yield image_id, image, result
            bar.update(len(ids))
    finally:
        bar.close()
