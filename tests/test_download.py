"""maskrcnn.download: cached fetch, checksum, the offline message (the network call is replaced)."""

from __future__ import annotations

import hashlib
import urllib.error

import pytest

from maskrcnn import download
from maskrcnn.errors import DownloadError

URL = "https://example.org/files/thing.bin?raw=1"


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MASKRCNN_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_cache_dir_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("MASKRCNN_CACHE", str(tmp_path / "c"))
    assert download.cache_dir() == tmp_path / "c"
    monkeypatch.delenv("MASKRCNN_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert download.cache_dir() == tmp_path / "xdg" / "maskrcnn"
    assert download.cache_path(URL) == tmp_path / "xdg" / "maskrcnn" / "thing.bin"
    assert download.cache_path(URL, filename="x.zip", directory=tmp_path) == tmp_path / "x.zip"


def test_fetch_downloads_once_and_checks_the_sha256(cache, monkeypatch):
    calls = []

    def fake(url, dest):
        calls.append(url)
        dest.write_bytes(b"payload")

    monkeypatch.setattr(download, "download_url", fake)
    good = hashlib.sha256(b"payload").hexdigest()
    path = download.fetch(URL, sha256=good, quiet=True)
    assert path == cache / "thing.bin" and path.read_bytes() == b"payload"
    assert download.fetch(URL, sha256=good) == path and calls == [URL]  # cached: no second download
    with pytest.raises(DownloadError, match=r"thing\.bin: checksum mismatch .*delete it to download it again"):
        download.fetch(URL, sha256="0" * 64)
    with pytest.raises(DownloadError, match=r"^other\.bin downloaded from .*: checksum mismatch"):
        download.fetch(URL, sha256="0" * 64, filename="other.bin", quiet=True)
    assert sorted(p.name for p in cache.iterdir()) == ["thing.bin"]  # the bad download was not kept


def test_offline_names_the_url_and_where_to_place_the_file(cache, monkeypatch):
    def offline(url, dest):
        dest.write_bytes(b"partial")
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(download, "download_url", offline)
    with pytest.raises(DownloadError) as info:
        download.fetch(URL, quiet=True)
    assert str(info.value) == (f"cannot download thing.bin from {URL} (URLError: <urlopen error [Errno -3] "
                               f"Temporary failure in name resolution>); download it elsewhere and place it at "
                               f"{cache / 'thing.bin'}")
    assert not any(cache.iterdir())  # no partial file left
