"""What the apps ask of a detector: the declared interface instead of probing for attributes.

:class:`Detector` is what the ``detect`` and ``splash`` apps (images and videos) use: matterport's
``config``, ``class_names`` and ``detect``, and ``detect_union`` (the union of the kept masks per
image, what a color splash needs). :class:`maskrcnn.MaskRCNN` is one, with the union taken
where the network runs. Anything else that only has ``detect`` (a wrapper, a stand-in in a test)
becomes one with :func:`maskrcnn.apps.splash.union_of_detections`, the same union computed from
``detect``'s results::

    from maskrcnn.apps.splash import union_of_detections

    class MyDetector:
        config = Config(...)
        class_names = ["BG", "balloon"]
        detect_union = union_of_detections  # the union of what detect returns

        def detect(self, images, verbose=0, batch_size=None): ...

:class:`InspectableDetector` adds the network and its recorded intermediates, for the inspect report
(``run_graph``, the RPN's anchors and box coder) and the ONNX export (the ``nn.Module``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from ..config import Config

__all__ = ["Detector", "InspectableDetector"]


@runtime_checkable
class Detector(Protocol):
    """matterport's detection API as the apps use it.

    ``detect`` returns one dict per image: ``rois`` ``[N, (y1, x1, y2, x2)]``, ``class_ids`` ``[N]``,
    ``scores`` ``[N]``, ``masks`` ``H×W×N`` bool; ``detect_union`` per image the ``H×W`` bool union of
    the masks ``detect`` returns, only of ``class_ids`` (None: all) and of scores ≥ ``min_confidence``
    (with ``return_counts``, also the number of masks in each union).
    ``batch_size``: images per forward pass (None: the detector's choice).
    """

    config: Config
    class_names: list[str]

    def detect(self, images: Sequence[np.ndarray], verbose: int = 0,
               batch_size: int | None = None) -> list[dict[str, np.ndarray]]: ...

    def detect_union(self, images: Sequence[np.ndarray], *, class_ids: Iterable[int] | None = None,
                     min_confidence: float | None = None, batch_size: int | None = None,
                     return_counts: bool = False) -> list[np.ndarray] | tuple[list[np.ndarray], list[int]]: ...


@runtime_checkable
class InspectableDetector(Detector, Protocol):
    """A detector whose network can be looked into: ``run_graph(images, names)`` returns the named
    intermediates of one inference forward; ``network`` is the ``nn.Module`` (the inspect report reads
    its ``rpn`` — anchor generator, box coder, NMS threshold — and parameters; the ONNX export traces it)."""

    network: Any

    def run_graph(self, images: Sequence[np.ndarray], names: Iterable[str] | None = None) -> dict[str, Any]: ...
