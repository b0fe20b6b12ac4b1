"""RoIAlign over a feature pyramid: each box is pooled from the level that suits its size.

The level of a box follows Eq. 1 of the FPN paper, exactly as torchvision's
``MultiScaleRoIAlign`` / ``LevelMapper`` compute it::

    k = floor(canonical_level + log2(sqrt(area) / canonical_scale) + 1e-6), clamped to [k_min, k_max]

where ``k_min`` / ``k_max`` are the levels of the first / last feature map. Each
level's scale (feature pixels per image pixel) is inferred from its height against
the largest image height of the batch as ``2 ** round(log2(feature_h / image_h))``.
Boxes are ``xyxy`` in pixels of the resized (unpadded) image.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Mapping, Sequence

import torch
from torch import Tensor, nn
from torchvision.ops import roi_align

from .roi_align_dense import dense_is_cheap, roi_align_dense

#: At inference on CPU, a level with at least this many boxes is pooled in ``torch.get_num_threads()``
#: chunks on a thread pool: torchvision's CPU ``roi_align`` kernel runs on one core and releases the
#: GIL, and each box is pooled independently, so the result is bit-identical.
PARALLEL_MIN_ROIS = 64
#: In training on CPU (grad enabled, features that require grad), small maps are pooled by
#: :func:`~maskrcnn.model.roi_align_dense.roi_align_dense` (matrix products, equal up to float rounding):
#: torchvision's CPU backward is a scalar loop. Inference always uses torchvision's kernel (bit-identical
#: detections).
DENSE_TRAINING = True
_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def _executor(workers: int) -> ThreadPoolExecutor:
    global _POOL
    with _POOL_LOCK:
        if _POOL is None or _POOL._max_workers < workers:
            _POOL = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="roi_align")
        return _POOL


def infer_scale(feature_size: int, image_size: int) -> float:
    """``2 ** round(log2(feature_size / image_size))`` computed in float32 like torchvision."""
    approx = float(feature_size) / float(image_size)
    return 2.0 ** float(torch.tensor(approx).log2().round())


def assign_levels(
    boxes: Tensor, *, k_min: int, k_max: int, canonical_scale: float = 224, canonical_level: int = 4
) -> Tensor:
    """Pyramid level index (0 = ``k_min``) of each box ``[K,4]`` xyxy → int64 ``[K]``."""
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    sqrt_area = torch.sqrt(area)
    eps = torch.tensor(1e-6, dtype=sqrt_area.dtype, device=sqrt_area.device)
    levels = torch.floor(canonical_level + torch.log2(sqrt_area / canonical_scale) + eps)
    levels = torch.clamp(levels, min=k_min, max=k_max)
    return levels.to(torch.int64) - k_min


def boxes_to_rois(boxes: Sequence[Tensor]) -> Tensor:
    """Per-image boxes ``list[[K_i,4]]`` → ``[sumK, 5]`` rows ``(image_index, x1, y1, x2, y2)``."""
    concat = torch.cat(list(boxes), dim=0)
    # full_like, not full((len(b), 1)): len() is a constant in a traced (ONNX) graph, and a graph traced
    # with 0 boxes would then drop the index column (0 or N boxes must give the same graph).
    ids = torch.cat([torch.full_like(b[:, :1], i, dtype=concat.dtype) for i, b in enumerate(boxes)], dim=0)
    return torch.cat([ids, concat], dim=1)


class PyramidRoIAlign(nn.Module):
    """Pool each box from its pyramid level with ``torchvision.ops.roi_align`` (no parameters).

    Args:
        featmap_names: the feature maps to pool from, finest first (strides 4, 8, 16, 32).
        output_size: side of the pooled square (7 for the box head, 14 for the mask head).
        sampling_ratio: sampling points per bin side (torchvision: 2; 0 = adaptive).
        aligned: shift box coordinates by -0.5 pixel (Detectron2's ``aligned=True``);
            torchvision's Mask R-CNN uses ``False``.
        canonical_scale, canonical_level: the FPN level heuristic (a 224² box pools from P4).
    """

    def __init__(
        self,
        *,
        featmap_names: Sequence[str] = ("p2", "p3", "p4", "p5"),
        output_size: int,
        sampling_ratio: int,
        aligned: bool,
        canonical_scale: int = 224,
        canonical_level: int = 4,
    ) -> None:
        super().__init__()
        self.featmap_names = tuple(featmap_names)
        self.output_size = (int(output_size), int(output_size))
        self.sampling_ratio = int(sampling_ratio)
        self.aligned = bool(aligned)
        self.canonical_scale = canonical_scale
        self.canonical_level = canonical_level

    def scales(self, features: Sequence[Tensor], image_sizes: Sequence[tuple[int, int]]) -> list[float]:
        """Scale of each feature map, from its height against the largest image height."""
        if not image_sizes:
            raise ValueError("PyramidRoIAlign: image_sizes is empty")
        max_h = max(int(size[0]) for size in image_sizes)
        return [infer_scale(f.shape[-2], max_h) for f in features]

    def forward(
        self, features: Mapping[str, Tensor], boxes: Sequence[Tensor], image_sizes: Sequence[tuple[int, int]]
    ) -> Tensor:
        """Pool boxes from the pyramid.

        Args:
            features: name → ``[B, C, H_l, W_l]`` (must contain every name of ``featmap_names``).
            boxes: per image ``[K_i, 4]`` xyxy in resized-image pixels.
            image_sizes: per image ``(h, w)`` after resizing (before batch padding).

        Returns:
            ``[sum K_i, C, output_size, output_size]``, rows in the order of ``boxes``.
        """
        missing = [name for name in self.featmap_names if name not in features]
        if missing:
            raise KeyError(f"PyramidRoIAlign: feature maps {missing} missing (have {list(features)})")
        maps = [features[name] for name in self.featmap_names]
        scales = self.scales(maps, image_sizes)
        rois = boxes_to_rois(boxes)
        if len(maps) == 1:
            return self._pool(maps[0], rois, scales[0])

        # Levels as integers k (stride 2**k) of the first and last maps.
        k_min = int(-torch.log2(torch.tensor(scales[0], dtype=torch.float32)).item())
        k_max = int(-torch.log2(torch.tensor(scales[-1], dtype=torch.float32)).item())
        levels = assign_levels(
            rois[:, 1:], k_min=k_min, k_max=k_max,
            canonical_scale=self.canonical_scale, canonical_level=self.canonical_level,
        )
        first = maps[0]
        result = torch.zeros(
            (rois.shape[0], first.shape[1]) + self.output_size, dtype=first.dtype, device=first.device
        )
        for level, (feature, scale) in enumerate(zip(maps, scales)):
            index = torch.where(levels == level)[0]
            if index.numel() == 0 and not torch.jit.is_tracing():  # a traced graph (ONNX) keeps every level
                continue
            # Under autocast levels may come back in different dtypes: match the result's. index_copy_, not
            # result[index] = ...: a traced setitem bakes the example's count in (1 box at export, 0 or 5 later).
            result.index_copy_(0, index, self._pool(feature, rois[index], scale).to(result.dtype))
        return result

    def _pool(self, feature: Tensor, rois: Tensor, scale: float) -> Tensor:
        def pool(part: Tensor) -> Tensor:
            return roi_align(
                feature, part, output_size=self.output_size, spatial_scale=scale,
                sampling_ratio=self.sampling_ratio, aligned=self.aligned,
            )

        if (DENSE_TRAINING and feature.device.type == "cpu" and feature.requires_grad and torch.is_grad_enabled()
                and not torch.jit.is_tracing() and not torch.compiler.is_compiling()
                and dense_is_cheap(feature, rois, self.sampling_ratio)):
            return roi_align_dense(feature, rois, self.output_size, scale, self.sampling_ratio, self.aligned)
        threads = torch.get_num_threads()
        if (threads < 2 or rois.shape[0] < PARALLEL_MIN_ROIS or feature.device.type != "cpu"
                or torch.is_grad_enabled() or torch.jit.is_tracing() or torch.compiler.is_compiling()):
            return pool(rois)
        feature = feature.contiguous()  # once, not once per chunk
        parts = rois.chunk(threads)
        futures = [_executor(threads).submit(pool, part) for part in parts[1:]]
        first = pool(parts[0])  # this thread works too
        return torch.cat([first] + [f.result() for f in futures])

    def extra_repr(self) -> str:
        return (f"featmap_names={list(self.featmap_names)}, output_size={self.output_size[0]}, "
                f"sampling_ratio={self.sampling_ratio}, aligned={self.aligned}")
