"""Named intermediates: a recorder that any stage of the model can write to.

Every stage calls ``self.probe("rpn.proposals", value)`` (through the :class:`Probed`
mixin) or the module function :func:`probe`. Outside :func:`recording` this is a
no-op costing one context-variable lookup; inside, the value is stored under its
name. The recorder lives in a :class:`contextvars.ContextVar`, so no module needs
a reference to it and nested modules (the ROI heads, the backbone) record without
plumbing::

    with recording(names=["fpn.p2", "rpn.proposals"]) as record:
        model(images)
    record["fpn.p2"]          # the tensor the FPN produced

Values are stored as given (tensors are detached); :meth:`maskrcnn.detector.MaskRCNN.run_graph`
wraps this for one inference forward.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterable, Iterator
from typing import Any

import torch

_ACTIVE: contextvars.ContextVar[Recorder | None] = contextvars.ContextVar("maskrcnn_probe", default=None)


class Recorder(dict):
    """A dict name → value, filled by :func:`probe` while :func:`recording` is active.

    Args:
        names: record only these names (``None``: every name).
    """

    def __init__(self, names: Iterable[str] | None = None) -> None:
        super().__init__()
        self.wanted: frozenset[str] | None = None if names is None else frozenset(names)
        self.seen: list[str] = []  # every name probed, recorded or not, in order

    def add(self, name: str, value: Any) -> None:
        self.seen.append(name)
        if self.wanted is None or name in self.wanted:
            self[name] = _detach(value)


def _detach(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach()
    if isinstance(value, (list, tuple)) and not hasattr(value, "_fields"):
        return type(value)(_detach(v) for v in value)
    if isinstance(value, dict):
        return type(value)((k, _detach(v)) for k, v in value.items())
    return value


def probe(name: str, value: Any) -> None:
    """Record ``value`` under ``name`` if a :func:`recording` is active; otherwise do nothing."""
    recorder = _ACTIVE.get()
    if recorder is not None:
        recorder.add(name, value)


def is_recording() -> bool:
    """Whether a :func:`recording` is active (to skip computing a value only a probe wants)."""
    return _ACTIVE.get() is not None


@contextlib.contextmanager
def recording(names: Iterable[str] | None = None) -> Iterator[Recorder]:
    """Collect probed values for the duration of the block; yields the :class:`Recorder`."""
    recorder = Recorder(names)
    token = _ACTIVE.set(recorder)
    try:
        yield recorder
    finally:
        _ACTIVE.reset(token)


class Probed:
    """Mixin for ``nn.Module`` stages: ``self.probe(name, value)`` records a named intermediate."""

    def probe(self, name: str, value: Any) -> None:
        probe(name, value)
