"""How dataset loaders report problems: raise at once (training) or collect all (check-dataset).

Every loader of :mod:`maskrcnn.data.formats` takes ``problems: Problems | None``. With the
default strict collector the first error raises :class:`~maskrcnn.errors.DatasetError` and
warnings go through :func:`warnings.warn` as :class:`DatasetWarning`; with
``Problems(strict=False)`` every message is kept, the bad region or image is skipped, and
loading carries on (this is what ``maskrcnn check-dataset`` uses).

Messages always start with the annotation file, then the image and region they concern,
e.g. ``train/via_region_data.json: 5.jpg region 3: polygon with 2 points (needs >= 3)``.
"""

from __future__ import annotations

import warnings

from ..errors import DatasetError


class DatasetWarning(UserWarning):
    """Something odd but usable in a dataset (points clipped to the image, a shape ignored...)."""


class Problems:
    """A sink for dataset errors and warnings.

    Args:
        strict: raise :class:`DatasetError` on the first error (True), or record it and let
            the loader skip the offending item (False).
    """

    def __init__(self, *, strict: bool = True) -> None:
        self.strict = strict
        self.errors: list[str] = []
        self.warnings: list[str] = []

    def error(self, message: str) -> None:
        """Report an error: raises in strict mode, else records it (the caller then skips the item)."""
        if self.strict:
            raise DatasetError(message)
        self.errors.append(message)

    def warning(self, message: str) -> None:
        """Report a warning: recorded, and in strict mode also emitted as a :class:`DatasetWarning`."""
        self.warnings.append(message)
        if self.strict:
            warnings.warn(message, DatasetWarning, stacklevel=3)

    def __repr__(self) -> str:
        return f"<Problems strict={self.strict} errors={len(self.errors)} warnings={len(self.warnings)}>"


def sink(problems: Problems | None) -> Problems:
    """``problems`` or a fresh strict collector."""
    return problems if problems is not None else Problems(strict=True)
