"""Datasets: the matterport ``Dataset`` API, annotation formats, image I/O, mask utilities,
augmentation, training batches and dataset checks (images keep their size: the model resizes).

    from maskrcnn.data import load_dataset, TrainingSamples, make_loader
    train = load_dataset("datasets/balloon", subset="train")
    loader = make_loader(TrainingSamples(train, augmentation=default_augmentation()),
                         batch_size=2, shuffle=True, seed=0)

Names are imported lazily (torch is only loaded by the modules that need it).
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "Dataset": "dataset",
    "ShapesDataset": "formats.shapes",
    "load_dataset": "loading",
    "resolve_dataset": "loading",
    "find_subsets": "loading",
    "read_image": "image_io",
    "image_size": "image_io",
    "minimize_mask": "transforms",
    "expand_mask": "transforms",
    "extract_bboxes": "transforms",
    "masks_to_boxes": "transforms",
    "default_augmentation": "augment",
    "strong_augmentation": "augment",
    "get_augmentation": "augment",
    "augment_sample": "augment",
    "TrainingSamples": "loader",
    "collate": "loader",
    "worker_init_fn": "loader",
    "make_loader": "loader",
    "check_dataset": "checks",
    "Problems": "problems",
    "DatasetWarning": "problems",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        module = importlib.import_module(f"{__name__}.{_EXPORTS[name]}")
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
