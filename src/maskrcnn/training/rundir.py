"""Run folders and checkpoint names, matterport style.

``logs/<name><YYYYmmddTHHMMSS>/mask_rcnn_<name>_<epoch:04d>.pth``: one folder per run
(``<name>`` is the config's NAME, lower case), one checkpoint per finished epoch, the
epoch number in the name being the count of epochs done (``0001`` after the first).
``--weights last`` resumes the newest folder of that name that holds a checkpoint.
Beside the checkpoints: ``config.yaml`` (the run's configuration, readable; rewritten by each
training call), ``metrics.jsonl`` and the TensorBoard event files.
"""

from __future__ import annotations

import datetime as _dt
import re
from pathlib import Path

from ..errors import WeightsError
from ..fileio import write_text

CHECKPOINT_PREFIX = "mask_rcnn_"
RUN_CONFIG = "config.yaml"
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
        raise WeightsError(f"no run folder {where} found; train once without 'last' first "
                           f"(or check the logs folder and the name: --logs and --name)")
    raise WeightsError(f"no checkpoint {CHECKPOINT_PREFIX}{run_name(name)}_NNNN{CHECKPOINT_SUFFIX} "
                       f"in any of the {len(dirs)} run folder(s) {where} (a run writes one after its first epoch)")


def checkpoint_of_epoch(run_dir: str | Path, epoch: int) -> Path | None:
    """The run's checkpoint of ``epoch`` (the newest if several), or None."""
    found = [p for p in list_checkpoints(run_dir) if checkpoint_epoch(p) == int(epoch)]
    return found[-1] if found else None


def run_folder_of(checkpoint_path: str | Path, recorded: str | None) -> Path | None:
    """The run folder a training checkpoint still lies in, or None when it was taken out of it.

    ``recorded``: the run folder written in the checkpoint. The file's folder is its run folder when
    it has the recorded folder's name (the run folder may have moved as a whole); for checkpoints
    that record none, when it is named like a run folder of the checkpoint's name
    (``<name><timestamp>`` holding ``mask_rcnn_<name>_NNNN.pth``).
    """
    path = Path(checkpoint_path)
    folder = path.parent
    if recorded:
        return folder if folder.name == Path(recorded).name else None
    match = re.match(re.escape(CHECKPOINT_PREFIX) + r"(.+)_\d{4,}" + re.escape(CHECKPOINT_SUFFIX) + "$", path.name)
    if match and re.fullmatch(re.escape(match.group(1)) + r"\d{8}T\d{4,6}(-\d+)?", folder.name):
        return folder
    return None


def write_run_config(run_dir: str | Path, config, *, epoch: int | None = None) -> Path:
    """Write ``config.yaml`` in the run folder (atomically): the configuration, readable, with its class."""
    header = (f"# {type(config).__name__} of the run {Path(run_dir).name}"
              + (f", written at epoch {epoch}" if epoch is not None else "") + "\n"
              "# each checkpoint holds its own copy; `maskrcnn train --config` reads this file\n")
    return write_text(Path(run_dir) / RUN_CONFIG, header + config.to_yaml())
