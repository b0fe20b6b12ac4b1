"""Writing files safely: the one home of write-then-rename.

Every file this package writes (checkpoints, pictures, JSON, HTML, ONNX graphs, videos) goes
through :func:`atomic_path`: the content is written to a temporary name in the destination's
folder, then renamed over the destination with ``os.replace``. A run killed while writing leaves
the previous file intact and never a half-written one. The temporary file is created with the
umask's ordinary permissions (``0644`` usually), not ``mkstemp``'s ``0600``, so every output of
the package has the same permissions.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["AtomicFile", "atomic_path", "write_bytes", "write_text", "read_yaml"]


def temp_beside(path: str | os.PathLike) -> Path:
    """A fresh temporary name in the folder of ``path`` (hidden, unique to this process)."""
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")


class AtomicFile:
    """Write-then-rename for a writer that opens in one call and finishes in another (a video encoder).

    Write to :attr:`tmp` (a fresh name beside ``path``; the parent folder is created), then
    :meth:`commit` (rename over ``path``) or :meth:`discard` (remove it, ``path`` left as it was).
    ``suffix`` keeps a file extension on the temporary name. :func:`atomic_path` is this in a ``with``.
    """

    def __init__(self, path: str | os.PathLike, *, suffix: str | None = None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = temp_beside(self.path)
        self.tmp = tmp.with_name(tmp.name + suffix) if suffix else tmp

    def commit(self) -> Path:
        """Rename the finished temporary file over ``path``; returns ``path``."""
        os.replace(self.tmp, self.path)
        return self.path

    def discard(self) -> None:
        """Remove the temporary file, if any."""
        with contextlib.suppress(OSError):
            os.unlink(self.tmp)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path to write to; on success it replaces ``path`` atomically.

    The parent folder is created. On any exception the temporary file is removed and ``path`` is
    left as it was. ``suffix`` keeps a file extension on the temporary name (for writers that
    choose a format from it, e.g. ``".png"``).

    Example::

        with atomic_path("out/model.pth") as tmp:
            torch.save(state, tmp)
    """
    target = AtomicFile(path, suffix=suffix)
    try:
        yield target.tmp
        target.commit()
    finally:
        target.discard()


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns the path."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically; returns the path."""
    return write_bytes(path, text.encode(encoding))


def read_yaml(path: str | os.PathLike, *, what: str = "YAML file") -> Any:
    """Parse a YAML file with ``yaml.safe_load`` (nothing in it is executed).

    Raises :class:`~maskrcnn.errors.ConfigError` naming the file for a missing file or bad YAML.
    """
    import yaml

    from .errors import ConfigError

    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{path}: is a folder; expected a {what}")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: {what} not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the {what}: {exc}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {str(exc).splitlines()[0]}") from None
