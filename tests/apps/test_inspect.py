"""inspect: the report holds every section with valid embedded images, and a browser opens it cleanly."""

from __future__ import annotations

import base64
import io
import shutil
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from maskrcnn.apps.inspect_report import SECTION_IDS
from maskrcnn.cli import main
from maskrcnn.config import Config

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


class _Report(HTMLParser):
    """Sections (id → list of <img> src), tables per section, scripts, headings."""

    def __init__(self) -> None:
        super().__init__()
        self.sections: dict[str, list[str]] = {}
        self.tables: dict[str, int] = {}
        self.current: str | None = None
        self.scripts = 0
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "section":
            self.current = attrs["id"]
            self.sections[self.current] = []
            self.tables[self.current] = 0
        elif tag == "img" and self.current is not None:
            self.sections[self.current].append(attrs["src"])
        elif tag == "table" and self.current is not None:
            self.tables[self.current] += 1
        elif tag == "script":
            self.scripts += 1

    def handle_endtag(self, tag):
        if tag == "section":
            self.current = None

    def handle_data(self, data):
        self.text.append(data)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A small random-weight model that detects (threshold 0) a few instances quickly."""
    from maskrcnn.detector import MaskRCNN

    torch.manual_seed(0)
    config = Config(
        NAME="inspect_test", NUM_CLASSES=4, BACKBONE="resnet18", BACKBONE_NORM="gn", TOP_DOWN_PYRAMID_SIZE=32,
        MASK_HEAD_CONV_CHANNELS=16, MASK_HEAD_NUM_CONVS=1, FPN_CLASSIF_FC_LAYERS_SIZE=64, IMAGE_MIN_DIM=128,
        IMAGE_MAX_DIM=128, RPN_ANCHOR_SCALES=(8, 16, 32, 64, 128), POST_NMS_ROIS_INFERENCE=60,
        DETECTION_MIN_CONFIDENCE=0.0, DETECTION_MAX_INSTANCES=6,
    )
    model = MaskRCNN(config, class_names=["BG", "square", "circle", "triangle"], device="cpu")
    return model.save(tmp_path_factory.mktemp("inspect") / "model.pt")


@pytest.fixture(scope="module")
def report(checkpoint: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("report") / "report.html"
    code = main(["inspect", "--weights", str(checkpoint), "--dataset", "shapes:3:128", "--image-id", "1",
                 "--out", str(out), "--limit", "10"])
    assert code == 0
    return out


def test_report_has_every_section_with_valid_png_images(report: Path):
    parsed = _Report()
    parsed.feed(report.read_text(encoding="utf-8"))
    assert list(parsed.sections) == list(SECTION_IDS)
    assert parsed.scripts == 0  # self-contained, no JavaScript
    for section, images in parsed.sections.items():
        assert images, f"section {section} has no image"
        for src in images:
            assert src.startswith("data:image/png;base64,")
            png = base64.b64decode(src.split(",", 1)[1], validate=True)
            assert png[:8] == b"\x89PNG\r\n\x1a\n"
            Image.open(io.BytesIO(png)).verify()
    # With ground truth: positive anchors, recall and the GT/prediction comparison are drawn.
    text = " ".join(parsed.text)
    for phrase in ("positive anchors of the ground truth", "recall@0.5", "Ground truth (green)",
                   "candidates before NMS", "Channel means of the ResNet stages", "Channel means of the FPN levels",
                   "WEIGHT NAME"):
        assert phrase in text, phrase
    assert len(parsed.sections["anchors"]) == 2  # centre anchors + positive anchors
    assert len(parsed.sections["proposals"]) == 1
    assert parsed.tables["proposals"] == 1  # the recall table
    # The network input shown in the input section is the 128x128 resized image (enlarged x3 for display).
    sizes = [Image.open(io.BytesIO(base64.b64decode(s.split(",", 1)[1]))).size for s in parsed.sections["input"]]
    assert (384, 384) in sizes


def test_report_without_ground_truth(checkpoint: Path, tmp_path: Path):
    image = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (90, 120, 3), dtype=np.uint8)).save(image)
    out = tmp_path / "plain.html"
    assert main(["inspect", "--weights", str(checkpoint), "--image", str(image), "--out", str(out)]) == 0
    parsed = _Report()
    parsed.feed(out.read_text(encoding="utf-8"))
    assert list(parsed.sections) == list(SECTION_IDS)
    text = " ".join(parsed.text)
    assert "No ground truth given" in text and "recall@0.5" not in text


def test_inspect_argument_errors(checkpoint: Path, tmp_path: Path, capsys):
    assert main(["inspect", "--weights", str(checkpoint), "--out", str(tmp_path / "r.html")]) == 1
    assert "give --image FILE, or --dataset PATH with --image-id" in capsys.readouterr().err
    assert main(["inspect", "--weights", str(tmp_path / "nope.pt"), "--image", "x.png",
                 "--out", str(tmp_path / "r.html")]) == 1
    assert "--weights: " in (err := capsys.readouterr().err) and "nope.pt: weights file not found" in err
    assert main(["inspect", "--weights", str(checkpoint), "--dataset", "shapes:3:128", "--image-id", "7",
                 "--out", str(tmp_path / "r.html")]) == 1
    assert "--image-id 7: the dataset has image ids 0..2" in capsys.readouterr().err


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium)")
def test_report_opens_in_headless_chromium_without_console_errors(report: Path, tmp_path: Path):
    flags = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", "--enable-logging=stderr", "--v=0"]
    with tempfile.TemporaryDirectory() as profile:
        dom = subprocess.run(flags + [f"--user-data-dir={profile}", "--dump-dom", report.as_uri()],
                             capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    console = [line for line in dom.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert console == []
    for section in SECTION_IDS:
        assert f'<section id="{section}">' in dom.stdout
    shot = tmp_path / "shot.png"
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(flags + [f"--user-data-dir={profile}", f"--screenshot={shot}", "--window-size=1200,4000",
                                report.as_uri()], capture_output=True, text=True, timeout=120, check=True)
    pixels = np.asarray(Image.open(shot).convert("RGB"))
    assert pixels.shape == (4000, 1200, 3)
    assert pixels.std() > 10  # the page rendered: text and pictures, not a blank canvas


def test_page_builder_escapes_text_and_downscales_big_pictures(tmp_path: Path):
    from maskrcnn.apps.html_report import Page, png_bytes

    assert Image.open(io.BytesIO(png_bytes(np.zeros((1500, 3000, 3), np.uint8)))).size == (1024, 512)
    small = Image.open(io.BytesIO(png_bytes(np.ones((10, 20), np.float32))))
    assert small.size == (400, 200) and small.getpixel((0, 0)) == 255  # enlarged x20, nearest
    page = Page(title="a <b> & c")
    page.section("s1", "one").text("x < y").table(["name", "value"], [["<i>", 0.123456], ["n", 7]])
    out = page.write(tmp_path / "p.html")
    text = out.read_text()
    assert "<title>a &lt;b&gt; &amp; c</title>" in text and "x &lt; y" in text
    assert "<td class=\"text\">&lt;i&gt;</td><td>0.1235</td>" in text and "<td>7</td>" in text
    assert '<li><a href="#s1">one</a></li>' in text
