"""Downloading files once: the cache, the checksum, the offline message.

The one home of "fetch a URL into the cache" for weights and datasets::

    path = fetch("https://example.org/balloon_dataset.zip", sha256=None)   # cached after the first call

- :func:`cache_dir` is ``$MASKRCNN_CACHE``, else ``$XDG_CACHE_HOME/maskrcnn``, else
  ``~/.cache/maskrcnn``; :func:`fetch` keeps files there (or in ``directory=``) under their URL's
  file name (or ``filename=``).
- A download goes to a temporary name beside the target (:func:`maskrcnn.fileio.atomic_path`) and is
  renamed only when complete and, with ``sha256=``, when its SHA-256 matches; a cached file with
  another checksum is refused, naming the file.
- Offline (any network error), :class:`~maskrcnn.errors.DownloadError` says in one line which URL
  failed and where to place a copy fetched elsewhere.

Only the standard library (``urllib``) is used; no other module of the package is needed.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import urllib.request
from pathlib import Path

from .errors import DownloadError
from .fileio import atomic_path

__all__ = ["cache_dir", "cache_path", "fetch", "sha256_of", "check_sha256", "download_url"]

_CHUNK = 1 << 20
TIMEOUT_S = 60.0


def cache_dir() -> Path:
    """The folder of downloaded files: ``$MASKRCNN_CACHE``, ``$XDG_CACHE_HOME/maskrcnn`` or ``~/.cache/maskrcnn``."""
    if os.environ.get("MASKRCNN_CACHE"):
        return Path(os.environ["MASKRCNN_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache")
    return Path(base).expanduser() / "maskrcnn"


def cache_path(url: str, *, filename: str | None = None, directory: str | os.PathLike | None = None) -> Path:
    """Where :func:`fetch` keeps ``url``: ``directory`` (default :func:`cache_dir`) / ``filename``
    (default the URL's last path component)."""
    name = filename or os.path.basename(url.split("?", 1)[0].rstrip("/"))
    if not name:
        raise DownloadError(f"{url}: no file name in the URL; pass filename=")
    return Path(directory if directory is not None else cache_dir()) / name


def sha256_of(path: str | os.PathLike) -> str:
    """The SHA-256 of a file, hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def check_sha256(path: str | os.PathLike, sha256: str, *, name: str | None = None) -> None:
    """Raise :class:`DownloadError` naming ``name`` (default ``path``) when the file's SHA-256 is not ``sha256``."""
    actual = sha256_of(path)
    if actual != sha256.lower():
        raise DownloadError(f"{name or path}: checksum mismatch (sha256 {actual}, expected {sha256.lower()}); "
                            f"the file is damaged or not the expected one")


def download_url(url: str, dest: Path) -> None:
    """Copy the body of ``url`` into the file ``dest`` (the one network call; tests replace it)."""
    request = urllib.request.Request(url, headers={"User-Agent": "maskrcnn"})
    with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response, open(dest, "wb") as out:
        shutil.copyfileobj(response, out, _CHUNK)


def fetch(url: str, *, sha256: str | None = None, filename: str | None = None,
          directory: str | os.PathLike | None = None, quiet: bool = False) -> Path:
    """The cached copy of ``url``, downloaded on the first call; returns its path.

    Args:
        sha256: the expected SHA-256 (hex) of the file: checked after a download and on a cached file.
        filename: the name in the cache (default: the URL's file name).
        directory: the cache folder (default: :func:`cache_dir`).
        quiet: no "downloading ..." line on stderr.

    Raises:
        DownloadError: the download failed (one line: the URL, the reason, and the path where to place
            a copy fetched elsewhere), or the checksum does not match (naming the file).
    """
    path = cache_path(url, filename=filename, directory=directory)
    if path.is_file():
        if sha256:
            try:
                check_sha256(path, sha256)
            except DownloadError as exc:
                raise DownloadError(f"{exc}; delete it to download it again") from None
        return path
    if not quiet:
        print(f"downloading {url} to {path}", file=sys.stderr, flush=True)
    try:
        with atomic_path(path) as tmp:
            try:
                download_url(url, tmp)
            except Exception as exc:  # noqa: BLE001 - URLError, HTTPError, OSError, timeouts
                reason = f"{type(exc).__name__}: {exc}".replace("\n", " ")
                raise DownloadError(f"cannot download {path.name} from {url} ({reason}); download it elsewhere "
                                    f"and place it at {path}") from None
            if sha256:
                check_sha256(tmp, sha256, name=f"{path.name} downloaded from {url}")
    except OSError as exc:
        raise DownloadError(f"cannot write {path}: {exc}") from None
    return path
