"""Public datasets the tutorials use: where they come from, how to check them, how to install them.

``maskrcnn download balloon`` (and :func:`install_dataset`) puts matterport's balloon dataset at
``data/balloon`` (``train/`` 61 images, ``val/`` 13 images, a ``via_region_data.json`` each), from

- the release asset (:data:`BALLOON`'s ``url``), downloaded once into the cache
  (:func:`maskrcnn.download.fetch`);
- or a local copy: ``--from balloon_dataset.zip`` or ``--from`` a folder holding ``train/`` and
  ``val/`` (or ``balloon/train`` ...).

The content is verified before anything is written: the SHA-256 of each annotation file, and every
image those annotations name present (with the expected count per folder). macOS ``__MACOSX/``
entries and hidden files in the zip are ignored. Files are copied (never linked) through
:func:`maskrcnn.fileio.atomic_path`.
"""

from __future__ import annotations

import json
import os
import shutil
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

from ..download import fetch
from ..errors import DatasetError, DownloadError
from ..fileio import atomic_path

__all__ = ["KnownDataset", "DATASETS", "BALLOON", "install_dataset"]


@dataclass(frozen=True)
class KnownDataset:
    """A dataset that :func:`install_dataset` knows.

    Args:
        name: the command-line name (``balloon``).
        url: where the zip is published; ``archive``: its file name in the cache.
        root: the folder inside the zip that holds the subsets (``balloon``).
        annotations: per subset, the annotation file name and its SHA-256.
        image_counts: per subset, the number of images its annotations name.
        source: one line on the origin and licence, printed after installing.
    """

    name: str
    url: str
    archive: str
    root: str
    annotations: dict[str, tuple[str, str]]
    image_counts: dict[str, int]
    source: str


BALLOON = KnownDataset(
    name="balloon",
    url="https://github.com/matterport/Mask_RCNN/releases/download/v2.1/balloon_dataset.zip",
    archive="balloon_dataset.zip",
    root="balloon",
    annotations={
        "train": ("via_region_data.json", "51bb6efa3e72448862dfd17a6bb8b26da786425703472a586c655babf07b65ee"),
        "val": ("via_region_data.json", "46e0297a7a0f370bcc0250d683aafe869d1709a6bb0803d658fb1333ca76a09d"),
    },
    image_counts={"train": 61, "val": 13},
    source="matterport's Mask_RCNN v2.1 release (MIT); Flickr images, no per-image licence stated",
)
DATASETS: dict[str, KnownDataset] = {BALLOON.name: BALLOON}

Opener = Callable[[], IO[bytes]]


def install_dataset(name: str, out: str | os.PathLike, *, source: str | os.PathLike | None = None,
                    quiet: bool = False) -> Path:
    """Install dataset ``name`` into the folder ``out`` (``out/train``, ``out/val``); returns ``out``.

    ``source``: a local zip or folder instead of the download. Nothing is written unless the content
    verifies; an ``out`` that already holds a verified copy is left as it is.

    Raises:
        DatasetError: unknown name, a source that is not the dataset (naming the file that differs).
        DownloadError: offline (naming the URL and where to place the zip) or a damaged download.
    """
    spec = DATASETS.get(name)
    if spec is None:
        raise DatasetError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    out = Path(out)
    if out.is_dir() and _verified_quietly(spec, _folder_members(out, spec, out)):
        return out
    if source is None:
        try:
            source = fetch(spec.url, filename=spec.archive, quiet=quiet)
        except DownloadError as exc:
            raise DownloadError(f"{exc} (or: maskrcnn download {name} --from FILE.zip)") from None
    source = Path(source)
    with _members(spec, source) as members:
        _verify(spec, members, source)
        for rel, opener in sorted(members.items()):
            with atomic_path(out / rel) as tmp, opener() as src, open(tmp, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
    return out


# ---------------------------------------------------------------------- reading a source
@contextmanager
def _members(spec: KnownDataset, source: Path) -> Iterator[dict[str, Opener]]:
    """``{"train/x.jpg": opener, ...}``: the files of the dataset inside a zip or a folder."""
    if source.is_dir():
        root = source / spec.root if (source / spec.root).is_dir() else source
        yield _folder_members(root, spec, source)
        return
    if not source.is_file():
        raise DatasetError(f"{source}: not found; give the dataset's zip ({spec.archive}) or its folder")
    try:
        archive = zipfile.ZipFile(source)
    except (zipfile.BadZipFile, OSError) as exc:
        raise DatasetError(f"{source}: not a readable zip file ({exc})") from None
    with archive:
        members: dict[str, Opener] = {}
        for info in archive.infolist():
            parts = PurePosixPath(info.filename).parts
            if info.is_dir() or not parts or parts[0] == "__MACOSX" or any(p.startswith(".") for p in parts):
                continue
            if ".." in parts or info.filename.startswith("/"):
                raise DatasetError(f"{source}: unsafe path in the zip: {info.filename!r}")
            if parts[0] == spec.root:
                parts = parts[1:]
            if len(parts) == 2 and parts[0] in spec.annotations:
                members[f"{parts[0]}/{parts[1]}"] = (lambda i=info: archive.open(i))
        yield members


def _folder_members(root: Path, spec: KnownDataset, source: Path) -> dict[str, Opener]:
    members: dict[str, Opener] = {}
    for subset in spec.annotations:
        folder = root / subset
        if folder.is_dir():
            for f in sorted(folder.iterdir()):
                if f.is_file() and not f.name.startswith("."):
                    members[f"{subset}/{f.name}"] = (lambda f=f: open(f, "rb"))
    return members


# ---------------------------------------------------------------------- verification
def _verify(spec: KnownDataset, members: dict[str, Opener], source: Path) -> None:
    """Raise naming the first thing that differs from the published dataset."""
    import hashlib

    for subset, (filename, sha256) in spec.annotations.items():
        rel = f"{subset}/{filename}"
        if rel not in members:
            raise DatasetError(f"{source}: has no {spec.root}/{rel}; not the {spec.name} dataset "
                               f"({spec.archive} from {spec.url})")
        with members[rel]() as f:
            data = f.read()
        actual = hashlib.sha256(data).hexdigest()
        if actual != sha256:
            raise DownloadError(f"{source}: {spec.root}/{rel}: checksum mismatch (sha256 {actual}, expected "
                                f"{sha256}); the file is damaged or not the published one")
        names = sorted({entry.get("filename") for entry in json.loads(data).values()})
        missing = [n for n in names if f"{subset}/{n}" not in members]
        if missing:
            raise DatasetError(f"{source}: {spec.root}/{subset}/ lacks {len(missing)} of the {len(names)} images "
                               f"its annotations name (e.g. {missing[0]})")
        if len(names) != spec.image_counts[subset]:
            raise DatasetError(f"{source}: {spec.root}/{rel} names {len(names)} images, expected "
                               f"{spec.image_counts[subset]}")


def _verified_quietly(spec: KnownDataset, members: dict[str, Opener]) -> bool:
    try:
        _verify(spec, members, Path("."))
    except (DatasetError, DownloadError, ValueError):
        return False
    return True

