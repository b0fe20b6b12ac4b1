"""Exceptions raised where bad input enters: config, datasets, images, weights.

Every message names the file, field or argument that is wrong. The CLI prints
``MaskRCNNError`` messages without a traceback (``--debug`` shows it).
"""

from __future__ import annotations


class MaskRCNNError(Exception):
    """Base class of every error this package raises on purpose."""


class ConfigError(MaskRCNNError, ValueError):
    """A Config attribute has a wrong name, type or value."""


class DatasetError(MaskRCNNError, ValueError):
    """An annotation file, a region or a dataset folder is broken."""


class ImageError(MaskRCNNError, ValueError):
    """An image file is missing or unreadable, or an image array is unusable."""


class WeightsError(MaskRCNNError, ValueError):
    """A checkpoint is missing, unsafe, or made for another model."""


class DownloadError(MaskRCNNError):
    """A download failed (offline: the message says where to place the file) or its checksum differs."""
