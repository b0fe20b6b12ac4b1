"""``Dataset``: matterport's dataset API (``utils.Dataset``), unchanged in spirit.

The tutorial pattern works as is::

    class BalloonDataset(Dataset):
        def load_balloon(self, dataset_dir, subset):
            self.add_class("balloon", 1, "balloon")
            for a in annotations:
                self.add_image("balloon", image_id=a["filename"], path=image_path,
                               width=width, height=height, polygons=polygons)

        def load_mask(self, image_id):
            info = self.image_info[image_id]
            ...
            return mask.astype(bool), np.ones([mask.shape[-1]], dtype=np.int32)

    dataset = BalloonDataset(); dataset.load_balloon(dir, "train"); dataset.prepare()

Class 0 is the background (source ``""``, id 0, name ``"BG"``); several sources can share
one dataset (``"coco.12"`` and ``"via.1"`` get their own internal ids). Internal class ids
are contiguous ``0..num_classes-1``; :meth:`get_source_class_id` maps back (e.g. to the
COCO category id when exporting results).

Beyond matterport: images added with an ``instances`` list (what every loader of
:mod:`maskrcnn.data.formats` writes) get a working :meth:`load_mask` without a subclass.
Each instance is ``{"class_id": <class id in the image's source>, "shapes": [shape, ...],
"iscrowd": bool, "region": "<where, for messages>"}`` with shapes as in
:mod:`maskrcnn.data.geometry`. **Crowd** instances come back with a *negative* class id
(matterport's convention): ``class_ids < 0`` marks them, ``abs(class_ids)`` is the class.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from ..errors import DatasetError
from .geometry import paint
from .image_io import read_image

log = logging.getLogger(__name__)


class Dataset:
    """Base class for datasets (matterport API).

    Add classes and images with :meth:`add_class` / :meth:`add_image`, then call
    :meth:`prepare` before use. Subclasses override :meth:`load_mask` (and possibly
    :meth:`load_image` and :meth:`image_reference`).
    """

    def __init__(self, class_map: dict | None = None) -> None:
        self._image_ids: np.ndarray = np.zeros(0, dtype=np.int64)
        self.image_info: list[dict[str, Any]] = []
        # Background is always the first class
        self.class_info: list[dict[str, Any]] = [{"source": "", "id": 0, "name": "BG"}]
        self.source_class_ids: dict[str, list[int]] = {}
        self.class_map = class_map
        self._prepared = False

    # ------------------------------------------------------------------ building
    def add_class(self, source: str, class_id: int, class_name: str) -> None:
        """Declare class ``class_id`` of ``source`` (a source.class_id pair is added once).

        Raises:
            DatasetError: ``source`` contains a dot, or the pair exists under another name.
        """
        if "." in source:
            raise DatasetError(f"class source {source!r}: a source name cannot contain a dot")
        for info in self.class_info:
            if info["source"] == source and info["id"] == class_id:
                if info["name"] != class_name:
                    raise DatasetError(f"class {source}.{class_id} is already named {info['name']!r}, "
                                       f"cannot rename it {class_name!r}")
                return
        self.class_info.append({"source": source, "id": class_id, "name": class_name})
        self._prepared = False

    def add_image(self, source: str, image_id: Any, path: str | None, **kwargs: Any) -> None:
        """Add an image; ``kwargs`` (e.g. ``width``, ``height``, ``polygons``, ``instances``) go into its info."""
        image_info = {"id": image_id, "source": source, "path": path}
        image_info.update(kwargs)
        self.image_info.append(image_info)
        self._prepared = False

    def image_reference(self, image_id: int) -> str:
        """A string naming the image for messages and links: its path, or ``source.id``."""
        info = self.image_info[image_id]
        return str(info["path"]) if info.get("path") else f"{info['source']}.{info['id']}"

    def prepare(self, class_map: dict[str, str] | None = None) -> None:
        """Build the id tables. Call after adding classes and images, before use.

        Args:
            class_map: optional ``{"source.class_id": "other_source.class_id"}``: the classes
                on the left are merged into those on the right (they share its internal id
                and are not listed separately). matterport accepted this argument but
                ignored it.
        """
        class_map = dict(class_map if class_map is not None else (self.class_map or {}))

        def clean_name(name: str) -> str:
            """A shorter version of object names for cleaner display (matterport)."""
            return ",".join(str(name).split(",")[:1])

        merged = set(class_map)
        kept = [info for info in self.class_info if f"{info['source']}.{info['id']}" not in merged]
        self._merged_class_info = [info for info in self.class_info if f"{info['source']}.{info['id']}" in merged]
        self.class_info = kept + self._merged_class_info
        self.num_classes = len(kept)
        self.class_ids = np.arange(self.num_classes)
        self.class_names = [clean_name(c["name"]) for c in kept]
        self.num_images = len(self.image_info)
        self._image_ids = np.arange(self.num_images)

        self.class_from_source_map = {f"{info['source']}.{info['id']}": i for i, info in enumerate(kept)}
        for key, target in class_map.items():
            if target not in self.class_from_source_map:
                raise DatasetError(f"prepare(class_map=...): {key!r} maps to {target!r}, which is not a class "
                                   f"(known: {', '.join(self.class_from_source_map)})")
            self.class_from_source_map[key] = self.class_from_source_map[target]
        self.image_from_source_map = {f"{info['source']}.{info['id']}": i
                                      for i, info in enumerate(self.image_info)}

        # Map sources to class_ids they support (background included in every source)
        self.sources = sorted({c["source"] for c in self.class_info})
        self.source_class_ids = {}
        for source in self.sources:
            self.source_class_ids[source] = [i for i, info in enumerate(kept) if i == 0 or info["source"] == source]
        self._prepared = True

    # ------------------------------------------------------------------ id mapping
    def map_source_class_id(self, source_class_id: str) -> int:
        """The internal class id of ``"source.class_id"``, e.g. ``map_source_class_id("coco.12") -> 11``."""
        self._require_prepared()
        try:
            return self.class_from_source_map[source_class_id]
        except KeyError:
            raise DatasetError(f"unknown source class {source_class_id!r}") from None

    def get_source_class_id(self, class_id: int, source: str) -> int:
        """The id in ``source`` of internal class ``class_id`` (e.g. the COCO category id)."""
        self._require_prepared()
        info = self.class_info[int(class_id)]
        if info["source"] != source:
            raise DatasetError(f"class {class_id} ({info['name']!r}) comes from source {info['source']!r}, "
                               f"not {source!r}")
        return info["id"]

    @property
    def image_ids(self) -> np.ndarray:
        return self._image_ids

    def source_image_link(self, image_id: int) -> str:
        """The path or URL of the image (matterport)."""
        return self.image_info[image_id]["path"]

    # ------------------------------------------------------------------ loading
    def load_image(self, image_id: int) -> np.ndarray:
        """The image as ``H x W x 3`` uint8 RGB (EXIF orientation applied; see :func:`read_image`)."""
        return read_image(self.image_info[image_id]["path"])

    def load_mask(self, image_id: int) -> tuple[np.ndarray, np.ndarray]:
        """Instance masks of an image.

        Returns:
            masks: bool ``[H, W, N]``, one channel per instance.
            class_ids: int32 ``[N]`` internal class ids; **negative for crowd instances**.

        Images with an ``instances`` list are rasterized (see the module docstring);
        otherwise, like matterport, an empty result with a warning: override this method.
        """
        info = self.image_info[image_id]
        instances = info.get("instances")
        if instances is None:
            log.warning("You are using the default load_mask(), maybe you need to define your own one.")
            return np.empty([0, 0, 0], dtype=bool), np.empty([0], np.int32)
        self._require_prepared()
        height, width = int(info["height"]), int(info["width"])
        masks = np.zeros((len(instances), height, width), dtype=bool)
        class_ids = np.zeros(len(instances), dtype=np.int32)
        source = info["source"]
        for k, inst in enumerate(instances):
            where = inst.get("region") or f"{self.image_reference(image_id)} instance {k}"
            for shape in inst["shapes"]:
                paint(masks[k], shape, where=where)
            cid = self.map_source_class_id(f"{inst.get('source', source)}.{inst['class_id']}")
            class_ids[k] = -cid if inst.get("iscrowd") else cid
        return np.moveaxis(masks, 0, -1), class_ids

    # ------------------------------------------------------------------ helpers
    def _require_prepared(self) -> None:
        if not getattr(self, "_prepared", False):
            raise DatasetError(f"{type(self).__name__}: call dataset.prepare() after adding classes and images")

    def __repr__(self) -> str:
        if getattr(self, "_prepared", False):
            return f"<{type(self).__name__} {self.num_images} images, {self.num_classes} classes {self.class_names}>"
        return f"<{type(self).__name__} (not prepared) {len(self.image_info)} images, {len(self.class_info)} classes>"
