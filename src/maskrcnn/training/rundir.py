"""Run folders and checkpoint names, matterport style.

``logs/<name><YYYYmmddTHHMMSS>/mask_rcnn_<name>_<epoch:04d>.pth``: one folder per run
(``<name>`` is the config's NAME, lower case), one checkpoint per finished epoch, the
epoch number in the name being the count of epochs done (``0001`` after the first).
``--weights last`` resumes the newest folder of that name that holds a checkpoint.
"""

from __future__ import annotations

import datetime as _dt
import re
from pathlib import Path

from ..errors import WeightsError

CHECKPOINT_PREFIX = "mask_rcnn_"
CHECKPOINT_SUFFIX = ".pth"
_STAMP = "%Y%m%dT%H%M%S"


def run_name(name: str | None) -> str:
    """The config NAME as used in folder and file names (lower case, spaces → ``_``)."""
    text = (name or "model").strip().lower()
    return re.sub(r"[^a-z0-9_.-]+", "_", text) or "model"


def new_run_dir(logs_dir: str | Path, name: str | None, *, now: _dt.datetime | None = None) -> Path:
    """A fresh (not yet created) ``<logs>/<name><timestamp>`` path; ``-2``, ``-3``… if taken."""
    now = now or _dt.datetime.now()
    base = Path(logs_dir) / f"{run_name(name)}{now.strftime(_STAMP)}"
    path, k = base, 1
    while path.exists():
        k += 1
        path = base.with_name(f"{base.name}-{k}")
    return path


def checkpoint_name(name: str | None, epoch: int) -> str:
    return f"{CHECKPOINT_PREFIX}{run_name(name)}_{int(epoch):04d}{CHECKPOINT_SUFFIX}"


def checkpoint_epoch(path: str | Path) -> int | None:
    """The epoch number in a checkpoint file name, or None."""
    match = re.search(r"_(\d{4,})\.pth$", Path(path).name)
    return int(match.group(1)) if match else None


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    """The run's epoch checkpoints, oldest epoch first."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return []
    found = [p for p in run_dir.iterdir()
             if p.is_file() and p.name.startswith(CHECKPOINT_PREFIX) and checkpoint_epoch(p) is not None]
    return sorted(found, key=lambda p: (checkpoint_epoch(p), p.name))


def run_dirs(logs_dir: str | Path, name: str | None) -> list[Path]:
    """The run folders of ``name`` under ``logs_dir``, oldest first (by their timestamp)."""
    logs_dir = Path(logs_dir)
    if not logs_dir.is_dir():
        return []
    pattern = re.compile(re.escape(run_name(name)) + r"\d{8}T\d{4,6}(-\d+)?$")
    found = [p for p in logs_dir.iterdir() if p.is_dir() and pattern.match(p.name)]

    def key(p: Path) -> tuple[str, int]:
        stem, _, k = p.name.partition("-")
        return stem, int(k) if k.isdigit() else 1

    return sorted(found, key=key)


def find_last(logs_dir: str | Path, name: str | None) -> Path:
    """The last checkpoint of the newest run of ``name`` that has one (matterport's ``find_last``).

    Raises :class:`WeightsError` naming the folder when there is none.
    """
    dirs = run_dirs(logs_dir, name)
    for run_dir in reversed(dirs):
        checkpoints = list_checkpoints(run_dir)
        if checkpoints:
            return checkpoints[-1]
    where = Path(logs_dir) / f"{run_name(name)}<timestamp>"
    if not dirs:
        raise WeightsError(f"--weights last: no run folder {where} found; train once without "
                           f"'--weights last' first (or check --logs and --name)")
    raise WeightsError(f"--weights last: no checkpoint {CHECKPOINT_PREFIX}{run_name(name)}_NNNN{CHECKPOINT_SUFFIX} "
                       f"in any of the {len(dirs)} run folder(s) {where} (a run writes one after its first epoch)")
