"""What a run over images reports: how many objects were kept, and what to do when none were.

One wording for ``maskrcnn detect`` and ``maskrcnn splash`` (images or video frames)::

    3 objects kept in 2 images
    0 objects found in 4 images — the model is undertrained or the threshold too high
"""

from __future__ import annotations

__all__ = ["objects_found"]


def _count(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def objects_found(objects: int, images: int, *, unit: str = "image") -> str:
    """``"3 objects kept in 2 images"``, or for 0 objects the line that says why there may be none.

    ``unit``: what was looked at (``"image"``, ``"frame"``).
    """
    if objects == 0:
        return f"0 objects found in {_count(images, unit)} — the model is undertrained or the threshold too high"
    return f"{_count(objects, 'object')} kept in {_count(images, unit)}"
