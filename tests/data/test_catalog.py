"""``maskrcnn download balloon``: install from a zip or folder, content verified, offline message.

The zip is built in a temporary folder from the shared balloon copy (never written to)."""

from __future__ import annotations

import os
import urllib.error
import zipfile
from pathlib import Path

import pytest

from maskrcnn import download
from maskrcnn.cli import main
from maskrcnn.data.catalog import BALLOON, install_dataset
from maskrcnn.errors import DatasetError, DownloadError


def _balloon(shared_data: Path) -> Path:
    path = shared_data / "balloon"
    if not (path / "train" / "via_region_data.json").is_file():
        pytest.skip("balloon dataset not in the shared data")
    return path


def _zip(shared_data: Path, target: Path, *, corrupt: str | None = None) -> Path:
    """The release's layout: balloon/train/..., balloon/val/..., plus macOS junk."""
    source = _balloon(shared_data)
    with zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as z:
        for subset in ("train", "val"):
            for f in sorted((source / subset).iterdir()):
                data = f.read_bytes()
                if corrupt == f"{subset}/{f.name}":
                    data = data.replace(b'"balloon', b'"b4lloon', 1) + b" "
                z.writestr(f"balloon/{subset}/{f.name}", data)
        z.writestr("__MACOSX/balloon/train/._via_region_data.json", b"junk")
        z.writestr("balloon/.DS_Store", b"junk")
    return target


def _counts(folder: Path) -> dict[str, int]:
    return {s: len(list((folder / s).glob("*.jpg"))) for s in ("train", "val")}


def test_install_from_the_release_zip(shared_data, tmp_path):
    archive = _zip(shared_data, tmp_path / "balloon_dataset.zip")
    out = install_dataset("balloon", tmp_path / "data" / "balloon", source=archive)
    assert out == tmp_path / "data" / "balloon" and _counts(out) == {"train": 61, "val": 13}
    assert sorted(p.name for p in out.iterdir()) == ["train", "val"]  # no __MACOSX, no .DS_Store
    assert (out / "val" / "via_region_data.json").read_bytes() == \
        (_balloon(shared_data) / "val" / "via_region_data.json").read_bytes()
    stamp = os.stat(out / "train" / "via_region_data.json").st_mtime_ns
    install_dataset("balloon", out, source=tmp_path / "missing.zip")  # already installed: nothing to do
    assert os.stat(out / "train" / "via_region_data.json").st_mtime_ns == stamp


def test_install_from_a_folder_copies(shared_data, tmp_path):
    source = _balloon(shared_data)
    links = {f: os.stat(f).st_nlink for f in (source / "val").iterdir()}
    out = install_dataset("balloon", tmp_path / "b", source=source)
    assert _counts(out) == {"train": 61, "val": 13}
    assert {f: os.stat(f).st_nlink for f in (source / "val").iterdir()} == links
    assert all(os.stat(f).st_nlink == 1 for f in (out / "val").iterdir())


def test_corrupted_annotations_are_a_checksum_error_naming_the_file(shared_data, tmp_path):
    archive = _zip(shared_data, tmp_path / "bad.zip", corrupt="train/via_region_data.json")
    with pytest.raises(DownloadError, match=r"bad\.zip: balloon/train/via_region_data\.json: checksum mismatch "
                                            r"\(sha256 [0-9a-f]{64}, expected " + BALLOON.annotations["train"][1]):
        install_dataset("balloon", tmp_path / "out", source=archive)
    assert not (tmp_path / "out").exists()  # verified before writing anything


def test_a_zip_without_the_dataset_is_named(tmp_path):
    with zipfile.ZipFile(tmp_path / "other.zip", "w") as z:
        z.writestr("readme.txt", b"hello")
    with pytest.raises(DatasetError, match=r"other\.zip: has no balloon/train/via_region_data\.json"):
        install_dataset("balloon", tmp_path / "out", source=tmp_path / "other.zip")


def test_cli_offline_names_the_url_and_the_cache_path(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MASKRCNN_CACHE", str(tmp_path / "cache"))

    def offline(url, dest):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(download, "download_url", offline)
    assert main(["download", "balloon", "--out", str(tmp_path / "b")]) == 1
    err = capsys.readouterr().err
    cached = tmp_path / "cache" / "balloon_dataset.zip"
    assert err.startswith(f"downloading {BALLOON.url} to {cached}\n")
    assert err.splitlines(keepends=True)[-1] == (f"maskrcnn download: error: cannot download balloon_dataset.zip from {BALLOON.url} (URLError: "
                   f"<urlopen error no network>); download it elsewhere and place it at "
                   f"{cached} (or: maskrcnn download balloon --from "
                   f"FILE.zip)\n")


def test_cli_from_zip_and_from_the_cache(shared_data, tmp_path, monkeypatch, capsys):
    archive = _zip(shared_data, tmp_path / "balloon_dataset.zip")
    monkeypatch.chdir(tmp_path)
    assert main(["download", "balloon", "--from", str(archive)]) == 0
    assert capsys.readouterr().out.startswith("balloon: data/balloon (train/ 61 images, val/ 13 images; verified)")
    assert _counts(tmp_path / "data" / "balloon") == {"train": 61, "val": 13}
    # the zip placed in the cache by hand is what a later run without --from installs
    monkeypatch.setenv("MASKRCNN_CACHE", str(tmp_path))
    monkeypatch.setattr(download, "download_url", lambda url, dest: pytest.fail("no download expected"))
    assert main(["download", "balloon", "--out", "elsewhere"]) == 0
    assert _counts(tmp_path / "elsewhere") == {"train": 61, "val": 13}
