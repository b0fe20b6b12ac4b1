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


# ----------------------------------------------------------------------------------
# how many objects splash and detect kept (a small seeded model written by the test)

def test_objects_found_wording():
    from maskrcnn.apps.summary import objects_found

    assert objects_found(3, 2) == "3 objects kept in 2 images"
    assert objects_found(1, 1) == "1 object kept in 1 image"
    assert objects_found(0, 4) == "0 objects found in 4 images — the model is undertrained or the threshold too high"
    assert objects_found(0, 1, unit="frame").startswith("0 objects found in 1 frame — ")


def _checkpoint(tmp_path):
    import numpy as np
    import torch
    from PIL import Image

    from maskrcnn import MaskRCNN
    from maskrcnn.config import Config

    torch.manual_seed(0)
    config = Config(NAME="splash_count", NUM_CLASSES=2, BACKBONE="resnet18", BACKBONE_NORM="gn",
                    TOP_DOWN_PYRAMID_SIZE=32, MASK_HEAD_CONV_CHANNELS=16, MASK_HEAD_NUM_CONVS=1,
                    FPN_CLASSIF_FC_LAYERS_SIZE=64, IMAGE_MIN_DIM=64, IMAGE_MAX_DIM=64,
                    RPN_ANCHOR_SCALES=(8, 16, 32, 64, 128), POST_NMS_ROIS_INFERENCE=40, DETECTION_MAX_INSTANCES=3,
                    DETECTION_MIN_CONFIDENCE=0.9)
    model = MaskRCNN(config, class_names=["BG", "thing"], device="cpu")
    weights = model.save(tmp_path / "model.pt")
    image = tmp_path / "photos" / "one.png"
    image.parent.mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(image)
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(
        image.parent / "two.png")
    assert len(model.detect([np.asarray(Image.open(image))])[0]["scores"]) == 0  # nothing above 0.9
    return weights, image


def test_splash_says_how_many_objects_it_kept_and_can_lower_the_threshold(tmp_path, capsys):
    weights, image = _checkpoint(tmp_path)
    out = tmp_path / "s.png"
    assert cli.main(["splash", "--weights", str(weights), "--image", str(image), "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert captured.out == (f"0 objects found in 1 image — the model is undertrained or the threshold too high\n"
                            f"Saved to {out}\n")
    # --min-confidence below the model's DETECTION_MIN_CONFIDENCE lowers it (as for detect), no warning
    assert cli.main(["splash", "--weights", str(weights), "--image", str(image), "--out", str(out),
                     "--min-confidence", "0"]) == 0
    captured = capsys.readouterr()
    assert captured.out == f"3 objects kept in 1 image\nSaved to {out}\n"
    assert captured.err == ""


def test_detect_says_when_it_found_nothing(tmp_path, capsys):
    weights, image = _checkpoint(tmp_path)
    assert cli.main(["detect", "--weights", str(weights), str(image.parent), "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "0 objects found in 2 images — the model is undertrained or the threshold too high\n" in out
    assert cli.main(["detect", "--weights", str(weights), str(image.parent), "--out", str(tmp_path / "out"),
                     "--min-confidence", "0"]) == 0
    assert "objects found" not in capsys.readouterr().out
