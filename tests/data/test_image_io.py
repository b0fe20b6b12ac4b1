"""read_image: RGB uint8 from every mode, EXIF orientation, clear errors."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from maskrcnn.data.image_io import image_size, read_image, verify_image
from maskrcnn.errors import ImageError


def _gradient(h=6, w=8):
    return (np.arange(h * w, dtype=np.uint8).reshape(h, w) * 5).astype(np.uint8)


def test_rgb_png_roundtrip(tmp_path):
    arr = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    Image.fromarray(arr).save(tmp_path / "x.png")
    out = read_image(tmp_path / "x.png")
    assert out.dtype == np.uint8 and out.shape == (5, 7, 3) and (out == arr).all()


def test_grayscale_becomes_three_equal_channels(tmp_path):
    g = _gradient()
    Image.fromarray(g, mode="L").save(tmp_path / "g.png")
    out = read_image(tmp_path / "g.png")
    assert out.shape == (6, 8, 3) and (out == g[..., None]).all()


def test_palette_image(tmp_path):
    img = Image.new("P", (4, 3))
    img.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
    img.putpixel((1, 1), 1)
    img.save(tmp_path / "p.png")
    out = read_image(tmp_path / "p.png")
    assert out.shape == (3, 4, 3)
    assert out[0, 0].tolist() == [255, 0, 0] and out[1, 1].tolist() == [0, 255, 0]


def test_rgba_drops_alpha(tmp_path):
    arr = np.zeros((2, 3, 4), np.uint8)
    arr[..., 0] = 200
    arr[..., 3] = 10  # nearly transparent: alpha is dropped, not composited
    Image.fromarray(arr, mode="RGBA").save(tmp_path / "a.png")
    out = read_image(tmp_path / "a.png")
    assert out.shape == (2, 3, 3) and (out[..., 0] == 200).all() and (out[..., 1:] == 0).all()


def test_16bit_png_keeps_the_high_byte(tmp_path):
    arr = np.array([[0, 256, 65535], [1000, 30000, 512]], dtype=np.uint16)
    Image.fromarray(arr).save(tmp_path / "d.png")
    assert Image.open(tmp_path / "d.png").mode.startswith("I")
    out = read_image(tmp_path / "d.png")
    assert out.dtype == np.uint8 and out.shape == (2, 3, 3)
    assert out[..., 0].tolist() == [[0, 1, 255], [3, 117, 2]]


def test_cmyk_jpeg(tmp_path):
    Image.new("CMYK", (8, 6), (0, 255, 255, 0)).save(tmp_path / "c.jpg")  # pure red in CMYK
    out = read_image(tmp_path / "c.jpg")
    assert out.shape == (6, 8, 3)
    r, g, b = out.reshape(-1, 3).mean(axis=0)
    assert r > 200 and g < 60 and b < 60


def test_exif_orientation_is_applied(tmp_path):
    arr = np.zeros((4, 6, 3), np.uint8)
    arr[0, 0] = 255  # mark the top-left pixel
    img = Image.fromarray(arr)
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90 CW to display
    img.save(tmp_path / "o.png", exif=exif)
    out = read_image(tmp_path / "o.png")
    assert out.shape == (6, 4, 3)
    assert out[0, -1].tolist() == [255, 255, 255] and out.sum() == 3 * 255  # top-left moved to top-right
    assert image_size(tmp_path / "o.png") == (6, 4)
    assert verify_image(tmp_path / "o.png") == (6, 4)


def test_missing_file(tmp_path):
    with pytest.raises(ImageError, match=r"nope\.jpg: image file not found"):
        read_image(tmp_path / "nope.jpg")


def test_empty_file(tmp_path):
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(ImageError, match=r"empty\.jpg: image file is empty"):
        read_image(tmp_path / "empty.jpg")


def test_truncated_jpeg(tmp_path):
    arr = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(arr).save(tmp_path / "full.jpg", quality=95)
    data = (tmp_path / "full.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match=r"cut\.jpg: cannot read image, truncated or corrupt"):
        read_image(tmp_path / "cut.jpg")
    with pytest.raises(ImageError, match=r"cut\.jpg"):
        verify_image(tmp_path / "cut.jpg")


def test_not_an_image_and_folder(tmp_path):
    (tmp_path / "x.jpg").write_text("hello")
    with pytest.raises(ImageError, match=r"x\.jpg: not an image"):
        read_image(tmp_path / "x.jpg")
    with pytest.raises(ImageError, match="is a folder"):
        read_image(tmp_path)
