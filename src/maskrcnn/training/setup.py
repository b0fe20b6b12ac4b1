"""From command-line values to a Config, datasets and weights (used by ``maskrcnn train``).

Kept apart from argparse so each step is testable: ``--set KEY=VALUE`` parsing (values
are YAML scalars or lists), the config (YAML file + ``--set``, NUM_CLASSES from the
dataset) and the train/val datasets (``train/`` + ``val/`` sub-folders, or a seeded split).
Which weights to start from is the detector's rule (:mod:`maskrcnn.detector.weights_rule`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..config import Config, read_config_file
from ..errors import ConfigError, DatasetError
from .options import EXTRA_ATTRIBUTES


def parse_set_values(items: Sequence[str] | None, config_class: type = Config) -> dict[str, Any]:
    """``["IMAGES_PER_GPU=4", "RPN_ANCHOR_SCALES=[8, 16, 32, 64, 128]"]`` → dict, values parsed as YAML.

    A value of the wrong type for an attribute of ``config_class`` is a :class:`ConfigError` naming the
    ``--set`` item and the type expected (names the class does not know are left to the caller).
    """
    import yaml

    values: dict[str, Any] = {}
    for item in items or ():
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. --set IMAGES_PER_GPU=4")
        try:
            values[key] = _number(yaml.safe_load(text)) if text.strip() else None
        except yaml.YAMLError as exc:
            raise ConfigError(f"--set {item!r}: the value is not a YAML scalar or list: {exc}") from None
        problem = config_class.type_problem(key, values[key])
        if problem:
            raise ConfigError(f"--set {item}: {problem}")
    return values


def _number(value: Any) -> Any:
    """YAML 1.1 reads ``1e-3`` as a string: numbers that Python reads are numbers."""
    if isinstance(value, str):
        try:
            return float(value) if any(c in value for c in ".eE") or "inf" in value.lower() else int(value)
        except ValueError:
            return value
    if isinstance(value, list):
        return [_number(v) for v in value]
    return value


def split_training_attributes(values: dict[str, Any], config_class: type = Config) -> tuple[dict, dict]:
    """Split into (Config attributes, training attributes the Config class does not declare)."""
    known = set(config_class.attribute_names())
    training = {k: v for k, v in values.items() if k in EXTRA_ATTRIBUTES and k not in known}
    return {k: v for k, v in values.items() if k not in training}, training


def build_config(*, config_file: str | Path | None = None, sets: Sequence[str] | None = None,
                 num_classes: int | None = None, name: str | None = None,
                 config_class: type = Config, preset: dict[str, Any] | None = None) -> tuple[Config, dict[str, Any]]:
    """The Config of a run and its training attributes (see :mod:`.options`).

    Order: class defaults < ``preset`` < ``config_file`` < ``--set``. NUM_CLASSES is taken from the
    dataset (``num_classes``) unless given, in which case it must agree. ``name`` sets NAME
    when the file and ``--set`` don't.
    """
    values: dict[str, Any] = dict(preset or {})  # a preset's values (maskrcnn.presets) come first
    source = "--set"
    if config_file is not None:
        values.update(read_config_file(config_file))
        source = str(config_file)
    values.update(parse_set_values(sets, config_class))
    values, training = split_training_attributes(values, config_class)
    if num_classes is not None:
        given = values.get("NUM_CLASSES")
        if given is not None and int(given) != int(num_classes):
            raise ConfigError(f"NUM_CLASSES={given} (from {source}) but the dataset has {num_classes - 1} "
                              f"class(es) + background = {num_classes}; drop NUM_CLASSES or fix the dataset")
        values["NUM_CLASSES"] = int(num_classes)
    if name is not None:
        values["NAME"] = name
    elif values.get("NAME") is None:
        values["NAME"] = "model"
    config = config_class.from_dict(values, source=source)
    return config.validate(), training


@dataclass
class TrainValData:
    """The datasets of a run: ``val`` may be the same object as ``train`` with disjoint id lists."""

    train: Any
    val: Any | None
    train_ids: list[int] | None = None  # None: all images
    val_ids: list[int] | None = None

    def describe(self) -> str:
        n_train = len(self.train_ids) if self.train_ids is not None else len(self.train.image_ids)
        if self.val is None:
            return f"{n_train} training images, no validation"
        n_val = len(self.val_ids) if self.val_ids is not None else len(self.val.image_ids)
        how = " (split off the training set)" if self.val_ids is not None else ""
        return f"{n_train} training images, {n_val} validation images{how}"


def split_ids(ids: Sequence[int], fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """A seeded split of ``ids`` into (train, val) with ``ceil(fraction * n)`` validation ids (≥ 1, < n)."""
    ids = [int(i) for i in ids]
    if not 0.0 < fraction < 1.0:
        raise ConfigError(f"--val-fraction {fraction}: must be between 0 and 1 (exclusive)")
    if len(ids) < 2:
        raise DatasetError(f"cannot split {len(ids)} image(s) into training and validation sets")
    n_val = min(max(1, math.ceil(fraction * len(ids))), len(ids) - 1)
    order = np.random.default_rng(seed).permutation(len(ids))
    val = sorted(ids[i] for i in order[:n_val])
    train = sorted(ids[i] for i in order[n_val:])
    return train, val


def load_train_val(path: str | Path, *, format: str = "auto", class_attribute: str | None = None,
                   annotations: str | None = None, val_fraction: float | None = 0.1,
                   split_seed: int = 0) -> TrainValData:
    """``train`` and ``val`` sub-folders (or shapes specs) when present; else the dataset at ``path``
    split by ``val_fraction`` (None or 0: no validation)."""
    from ..data.loading import find_subsets, is_shapes_spec, load_dataset, resolve_dataset

    kwargs = {"format": format, "class_attribute": class_attribute, "annotations": annotations}
    if is_shapes_spec(path, format):
        train = load_dataset(path, format="shapes", subset="train")
        val = load_dataset(path, format="shapes", subset="val")
        return TrainValData(train, val)
    folder = Path(path)
    subsets = find_subsets(folder, format=format, annotations=annotations) if folder.is_dir() else {}
    if "train" in subsets:
        try:
            resolve_dataset(folder, format=format, annotations=annotations)
            own = True
        except DatasetError:
            own = False
        if not own:
            train = load_dataset(folder, subset="train", **kwargs)
            val = None
            if "val" in subsets:
                names = list(train.class_names[1:])
                val = load_dataset(folder, subset="val", classes=names, **kwargs)
                if list(val.class_names) != list(train.class_names):
                    raise DatasetError(f"{folder}: val classes {val.class_names[1:]} differ from train classes "
                                       f"{train.class_names[1:]}")
                return TrainValData(train, val)
            return _split(train, val_fraction, split_seed)
    return _split(load_dataset(folder, **kwargs), val_fraction, split_seed)


def _split(dataset: Any, fraction: float | None, seed: int) -> TrainValData:
    if not fraction:
        return TrainValData(dataset, None)
    train_ids, val_ids = split_ids(dataset.image_ids, fraction, seed)
    return TrainValData(dataset, dataset, train_ids, val_ids)
