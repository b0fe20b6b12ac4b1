"""matterport's user-facing ``MaskRCNN`` (detect, load_weights, train, …) around the network.

- :class:`MaskRCNN` — :mod:`.maskrcnn`
- the one "which weights" rule (coco, imagenet, last, none, a file) — :mod:`.weights_rule`
- the run a detector continues, and what a resumed run may change — :mod:`.run`
"""

from __future__ import annotations

from .maskrcnn import MaskRCNN
from .run import RunState
from .weights_rule import Weights, resolve_weights

__all__ = ["MaskRCNN", "RunState", "Weights", "resolve_weights"]
