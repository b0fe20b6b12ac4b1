"""Mask folders in the Data Science Bowl 2018 layout (matterport's nucleus sample).

::

    <root>/<id>/images/<id>.png     the image (any readable format; RGBA loses its alpha)
    <root>/<id>/masks/*.png         one file per instance, non-zero pixels = the instance

One implicit class named ``class_name`` (default: the dataset folder's name, see
:func:`~maskrcnn.data.formats.common.default_class_name`; pass ``class_name="nucleus"``
for matterport's name). A sample without a ``masks/`` folder (or with an empty one) is a
negative. Masks are read when :meth:`Dataset.load_mask` is called; a mask whose size
differs from its image is a :class:`DatasetError` then (``check-dataset`` finds it first).
"""

from __future__ import annotations

from pathlib import Path

from ...errors import DatasetError
from ..dataset import Dataset
from ..problems import Problems, sink
from .common import default_class_name, oriented_size

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif", ".webp"}


def is_sample_folder(folder: Path) -> bool:
    """True when ``folder`` looks like a DSB sample: ``<id>/images/`` plus ``<id>/masks/`` or ``images/<id>.*``.

    (A plain ``train/images/`` folder of a COCO or VIA dataset is not a sample.)
    """
    images = folder / "images"
    if not images.is_dir():
        return False
    return (folder / "masks").is_dir() or any(images.glob(f"{glob_escape(folder.name)}.*"))


def glob_escape(name: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)


def is_mask_dataset(folder: Path) -> bool:
    """True when some sub-folders of ``folder`` are DSB samples (``<id>/images/``)."""
    try:
        return any(sub.is_dir() and is_sample_folder(sub) for sub in folder.iterdir())
    except OSError:
        return False


def _image_file(sample: Path) -> Path | None:
    files = sorted(f for f in (sample / "images").iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
    preferred = [f for f in files if f.stem == sample.name]
    if preferred:
        return preferred[0]
    return files[0] if len(files) == 1 else None


def add_mask_folder(
    dataset: Dataset,
    path: str | Path,
    *,
    class_name: str | None = None,
    keep_negatives: bool = True,
    source: str = "masks",
    problems: Problems | None = None,
) -> int:
    """Add every ``<id>/images`` + ``<id>/masks`` sample under ``path``; returns the image count."""
    problems = sink(problems)
    root = Path(path)
    if not root.is_dir():
        raise DatasetError(f"{root}: not a folder (expected <id>/images/<id>.png and <id>/masks/*.png)")
    samples = sorted(sub for sub in root.iterdir() if sub.is_dir())
    if not any(is_sample_folder(s) for s in samples):
        raise DatasetError(f"{root}: no <id>/images/ sample folders found")
    dataset.add_class(source, 1, class_name or default_class_name(root))
    added = 0
    for sample in samples:
        if not is_sample_folder(sample):
            problems.warning(f"{sample}: no images/ folder; skipped")
            continue
        image = _image_file(sample)
        if image is None:
            problems.error(f"{sample / 'images'}: expected one image (ideally {sample.name}.png)")
            continue
        size = oriented_size(image, where=str(sample), problems=problems)
        if size is None:
            continue
        mask_dir = sample / "masks"
        mask_files = sorted(f for f in mask_dir.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES) \
            if mask_dir.is_dir() else []
        instances = [{"class_id": 1, "shapes": [{"type": "mask_file", "path": str(f)}], "iscrowd": False,
                      "region": f"{sample.name}: mask {f.name}"} for f in mask_files]
        if not instances and not keep_negatives:
            continue
        dataset.add_image(source, image_id=sample.name, path=str(image), height=size[0], width=size[1],
                          instances=instances, annotation=str(root))
        added += 1
    return added
