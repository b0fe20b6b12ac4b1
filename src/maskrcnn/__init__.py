"""maskrcnn: Mask R-CNN instance segmentation in modern PyTorch, with matterport's API.

    from maskrcnn import Config, MaskRCNN
"""

from __future__ import annotations

from .config import Config, MatterportConfig, TorchvisionConfig
from .errors import ConfigError, DatasetError, ImageError, MaskRCNNError, WeightsError

__version__ = "0.1.0"

__all__ = [
    "Config",
    "TorchvisionConfig",
    "MatterportConfig",
    "MaskRCNN",
    "Dataset",
    "MaskRCNNError",
    "ConfigError",
    "DatasetError",
    "ImageError",
    "WeightsError",
]


def __getattr__(name: str):
    # Heavy modules load on first use, so `import maskrcnn` stays fast for the CLI.
    if name == "MaskRCNN":
        from .detector import MaskRCNN

        return MaskRCNN
    if name == "Dataset":
        from .data.dataset import Dataset

        return Dataset
    raise AttributeError(f"module 'maskrcnn' has no attribute {name!r}")
