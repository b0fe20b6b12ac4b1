"""What ``maskrcnn splash`` says: a folder given as --image, how many objects it kept."""

from __future__ import annotations

from maskrcnn import cli


def test_splash_image_that_is_a_folder_says_so(tmp_path, capsys):
    weights = tmp_path / "w.pt"
    weights.write_bytes(b"stand-in")
    folder = tmp_path / "photos"
    folder.mkdir()
    assert cli.main(["splash", "--weights", str(weights), "--image", str(folder)]) == 1
    assert capsys.readouterr().err == (
        f"maskrcnn splash: error: --image {folder}: is a folder; give one image file (for the images of a "
        f"folder: maskrcnn detect --weights ... {folder} --out DIR)\n")
    assert cli.main(["splash", "--weights", str(weights), "--video", str(folder)]) == 1
    assert f"--video {folder}: is a folder; give one video file" in capsys.readouterr().err


def test_video_reader_names_a_folder(tmp_path):
    import pytest

    from maskrcnn.apps.video_io import open_video
    from maskrcnn.errors import ImageError

    with pytest.raises(ImageError, match=r"is a folder, not a video file"):
        open_video(tmp_path)
