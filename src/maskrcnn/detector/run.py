"""The detector's run state, and what may change when a run continues.

A detector knows the run it belongs to, as matterport's ``MaskRCNN`` knows its ``log_dir`` and
``epoch``: :class:`RunState` (the run folder, or None before the first ``train()``, and the
epochs done). ``load_weights`` sets it (a training checkpoint in its run folder continues that
run; other weights start a new one) and every ``train()`` call advances it, so two calls in a row
continue one run folder.

:func:`config_for_resume`: a run continues with the configuration stored in its checkpoint.
Values the network is built from (:data:`maskrcnn.model.build.NETWORK_ATTRIBUTES`: backbone,
layer sizes, anchors, image sizes, sampling) stay as the run was trained; training values
(learning rate, schedule, steps, …, :mod:`maskrcnn.training.options`) and the detection
thresholds may change. A conflicting value is refused with one line naming it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import Config
from ..errors import ConfigError
from ..model.build import NETWORK_ATTRIBUTES


@dataclass(frozen=True)
class RunState:
    """run_dir: the run folder ``train()`` writes to (None: the next ``train()`` starts a new one);
    epoch: the epochs done in it (``train(epochs=N)`` trains epochs ``epoch + 1 .. N``)."""

    run_dir: Path | None = None
    epoch: int = 0


def config_for_resume(stored: Config, values: dict[str, Any], *, source: str) -> Config:
    """``stored`` (the checkpoint's config) with ``values`` (``--config``/``--set``) applied for a run
    that continues: a value the network is built from that differs from the stored one raises
    :class:`ConfigError` naming the attribute. ``source`` names the checkpoint in the message."""
    merged = stored.to_dict()
    for key, value in values.items():
        if key in NETWORK_ATTRIBUTES and not _same(value, merged.get(key)):
            raise ConfigError(
                f"{key}={value!r} conflicts with the run being resumed ({source} was trained with {key}="
                f"{merged.get(key)!r}); a resumed run keeps the values its network is built from — drop it, or "
                f"start a new run")
        merged[key] = value
    return type(stored).from_dict(merged, source=source).validate()


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return float(a) == float(b)
    return a == b
