"""Video splash: PyAV reading/writing, timing, audio, streaming memory, errors."""

from __future__ import annotations

import inspect
import time
import weakref
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from maskrcnn.apps import video_io as video_mod
from maskrcnn.apps.splash import color_splash, detect_and_color_splash, union_of_detections
from maskrcnn.apps.video import (
    VideoWriter,
    choose_video_codec,
    iter_frames,
    open_video,
    probe_video,
    transform_video,
)
from maskrcnn.config import Config
from maskrcnn.errors import ImageError, MaskRCNNError

W, H, FPS, N_FRAMES = 320, 240, 10, 20
# The stand-in model's fixed mask: a block on even coordinates (aligned with 4:2:0 chroma).
Y1, Y2, X1, X2 = 64, 192, 96, 224
MARGIN = 4  # pixels next to the mask edge, where chroma subsampling mixes both sides


def _balloon_frames(shared_data: Path, n: int, size: tuple[int, int]) -> list[np.ndarray]:
    files = sorted((shared_data / "balloon" / "val").glob("*_b.jpg"))  # the small ones
    images = []
    for path in files[: min(n, len(files))]:
        with Image.open(path) as im:
            images.append(np.asarray(im.convert("RGB").resize(size, Image.BILINEAR)))
    return [images[i % len(images)] for i in range(n)]


def _write_video(
    path: Path,
    frames: list[np.ndarray],
    *,
    fps: int = FPS,
    audio: str | None = "aac",
    pts: list[int] | None = None,
    fmt: str | None = None,
) -> None:
    """Lossless-ish H.264 (CRF 0) at ``fps``, with a 440 Hz tone if ``audio`` is a codec."""
    container = av.open(str(path), "w", format=fmt)
    stream = container.add_stream("libx264", rate=fps)
    stream.height, stream.width = frames[0].shape[:2]
    stream.pix_fmt = "yuv420p" if stream.width % 2 == 0 and stream.height % 2 == 0 else "yuv444p"
    stream.codec_context.options = {"crf": "0", "preset": "ultrafast"}
    a_stream = None
    if audio is not None:
        a_stream = container.add_stream(audio, rate=44100)
        a_stream.layout = "stereo"
    for i, image in enumerate(frames):
        frame = av.VideoFrame.from_ndarray(image, format="rgb24")
        frame.pts, frame.time_base = (i if pts is None else pts[i]), Fraction(1, fps)
        container.mux(stream.encode(frame))
    container.mux(stream.encode())
    if a_stream is not None:
        rate, total = 44100, 44100 * len(frames) // fps
        tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(total) / rate)).astype(np.float32)
        for start in range(0, total, 1024):
            chunk = tone[start : start + 1024]
            frame = av.AudioFrame.from_ndarray(np.stack([chunk, chunk]), format="fltp", layout="stereo")
            frame.sample_rate, frame.pts, frame.time_base = rate, start, Fraction(1, rate)
            container.mux(a_stream.encode(frame))
        container.mux(a_stream.encode())
    container.close()


class FixedMaskModel:
    """``detect`` like MaskRCNN, returning one fixed block mask per image; records what it saw."""

    class_names = ["BG", "balloon"]

    def __init__(self, *, delay: float = 0.0, on_detect=None):
        self.delay = delay
        self.on_detect = on_detect
        self.batch_sizes: list[int] = []
        self.seen: list[weakref.ref] = []

    config = Config()
    detect_union = union_of_detections  # a Detector with only ``detect``

    def detect(self, images, verbose=0, batch_size=None):
        self.batch_sizes.append(len(images))
        self.seen.extend(weakref.ref(im) for im in images)
        if self.on_detect is not None:
            self.on_detect(self)
        time.sleep(self.delay)
        results = []
        for image in images:
            masks = np.zeros(image.shape[:2] + (1,), dtype=bool)
            masks[Y1:Y2, X1:X2, 0] = True
            results.append(
                {
                    "rois": np.array([[Y1, X1, Y2, X2]], dtype=np.int32),
                    "class_ids": np.array([1], dtype=np.int32),
                    "scores": np.array([0.99], dtype=np.float32),
                    "masks": masks,
                }
            )
        return results


@pytest.fixture(scope="module")
def balloon_video(tmp_path_factory, shared_data) -> tuple[Path, list[np.ndarray]]:
    """A 2 s, 10 fps, 320×240 H.264 + AAC video of balloon images, and its decoded frames."""
    path = tmp_path_factory.mktemp("video") / "balloons.mp4"
    _write_video(path, _balloon_frames(shared_data, N_FRAMES, (W, H)))
    return path, [f.image for f in iter_frames(path)]


def test_splash_video_keeps_size_rate_frames_audio_and_splashes(balloon_video, tmp_path):
    src, decoded_in = balloon_video
    info_in = probe_video(src)
    assert (info_in.width, info_in.height, info_in.rate, info_in.frames) == (W, H, FPS, N_FRAMES)
    assert info_in.audio_codec == "aac"
    model = FixedMaskModel()
    out = detect_and_color_splash(
        model, video_path=src, out_path=tmp_path / "splash.mp4", batch_size=3, progress=False, crf=0
    )
    assert out == tmp_path / "splash.mp4"
    assert model.batch_sizes == [3] * 6 + [2]
    info = probe_video(out)
    assert (info.width, info.height, info.rate, info.frames) == (W, H, FPS, N_FRAMES)
    assert info.audio_codec == "aac"  # the input's AAC track, mux-copied
    with av.open(str(out)) as container:
        v, a = container.streams.video[0], container.streams.audio[0]
        assert float(v.duration * v.time_base) == pytest.approx(2.0)
        assert float(a.duration * a.time_base) == pytest.approx(2.0, abs=0.05)
        times = [float(f.pts * f.time_base) for f in container.decode(video=0)]
    assert times == pytest.approx([i / FPS for i in range(N_FRAMES)])

    # Expected frame: color_splash of the decoded input. CRF 0 is lossless in YUV, so what
    # remains is the RGB -> YUV 4:2:0 -> RGB round trip: neutral gray has no chroma and
    # comes back within luma rounding (±1); colored pixels lose chroma resolution (2×2).
    mask = np.zeros((H, W), dtype=bool)
    mask[Y1:Y2, X1:X2] = True
    inside = np.zeros_like(mask)
    inside[Y1 + MARGIN : Y2 - MARGIN, X1 + MARGIN : X2 - MARGIN] = True
    outside = np.ones_like(mask)
    outside[Y1 - MARGIN : Y2 + MARGIN, X1 - MARGIN : X2 + MARGIN] = False
    decoded_out = [f.image for f in iter_frames(out)]
    assert len(decoded_out) == N_FRAMES
    for got, original in zip(decoded_out, decoded_in):
        expected = color_splash(original, mask[..., None]).astype(np.int16)
        got = got.astype(np.int16)
        gray = got[outside]
        assert np.abs(gray[:, 0] - gray[:, 1]).max() <= 2 and np.abs(gray[:, 1] - gray[:, 2]).max() <= 2
        assert np.abs(got[outside] - expected[outside]).max() <= 3
        assert np.abs(got[outside] - expected[outside]).mean() <= 1.0
        assert np.abs(got[inside] - expected[inside]).mean() <= 3.0
        color = got[inside]
        assert np.abs(color[:, 0] - color[:, 1]).mean() > 5  # the balloons kept their color


def test_frames_stream_in_bounded_batches(balloon_video, tmp_path, monkeypatch):
    src, _ = balloon_video
    reader = iter_frames(src)
    assert inspect.isgenerator(reader)
    decoded = []
    real = video_mod._frame_to_rgb

    def counting(frame):
        decoded.append(frame.pts)
        return real(frame)

    monkeypatch.setattr(video_mod, "_frame_to_rgb", counting)
    first = next(iter_frames(src))
    assert first.index == 0 and first.image.shape == (H, W, 3) and len(decoded) == 1  # lazy
    decoded.clear()

    batch_size, queue_batches = 2, 2
    ahead: list[int] = []
    alive: list[int] = []

    def check(model):
        # The model is slow (delay), so an unbounded reader would have decoded everything.
        ahead.append(len(decoded) - len(model.seen))
        alive.append(sum(ref() is not None for ref in model.seen))

    model = FixedMaskModel(delay=0.05, on_detect=check)
    stats = transform_video(
        src,
        tmp_path / "out.mp4",
        infer=lambda images: model.detect(images),
        render=lambda image, r: color_splash(image, r["masks"]),
        batch_size=batch_size,
        queue_batches=queue_batches,
        progress=False,
    )
    assert stats.frames == N_FRAMES and len(decoded) == N_FRAMES
    assert model.batch_sizes == [batch_size] * (N_FRAMES // batch_size)
    # reader: one batch being filled + queue_batches queued
    assert max(ahead) <= (queue_batches + 1) * batch_size
    # frames alive at inference: the current batch, the writer's queue, the batch being
    # written, and the writer's last loop variable
    assert max(alive) <= (queue_batches + 2) * batch_size + 1 < N_FRAMES
    assert stats.max_frames_in_flight <= (2 * queue_batches + 4) * batch_size


def test_timing_odd_size_and_reencoded_audio(tmp_path, capsys):
    # variable frame timing, an odd size, and PCM audio in Matroska (not copyable into MP4)
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, size=(49, 65, 3), dtype=np.uint8) for _ in range(5)]
    src = tmp_path / "odd.mkv"
    _write_video(src, frames, fps=10, audio="pcm_s16le", pts=[0, 1, 3, 4, 7], fmt="matroska")
    stats = transform_video(src, tmp_path / "odd.mp4", infer=lambda ims: [None] * len(ims), render=lambda im, r: im)
    assert stats.frames == 5 and stats.audio == "aac"
    err = capsys.readouterr().err  # the progress bar; its total is estimated from the duration
    assert "frame/s" in err and "| 5/" in err
    info = probe_video(stats.path)
    assert (info.width, info.height, info.audio_codec) == (65, 49, "aac")
    times = [round(float(f.pts * f.time_base), 3) for f in iter_frames(stats.path)]
    assert times == [0.0, 0.1, 0.3, 0.4, 0.7]


@pytest.mark.skipif("mpeg4" not in av.codecs_available, reason="no mpeg4 encoder")
def test_mpeg4_fallback_writer(tmp_path):
    assert choose_video_codec() == ("libx264" if "libx264" in av.codecs_available else "mpeg4")
    image = np.full((48, 64, 3), 200, dtype=np.uint8)
    # a 1/90000 time base (MPEG-TS style) is too fine for MPEG-4 part 2: rounded to 1/rate
    with VideoWriter(path=tmp_path / "m.mp4", width=64, height=48, rate=25, time_base=Fraction(1, 90000),
                     codec="mpeg4", crf=6) as writer:
        for i in range(4):
            writer.write(image, pts=i * 3600, time_base=Fraction(1, 90000))
    info = probe_video(tmp_path / "m.mp4")
    assert (info.codec, info.width, info.height, info.rate, info.frames) == ("mpeg4", 64, 48, 25, 4)
    decoded = [f.image for f in iter_frames(tmp_path / "m.mp4")]
    assert len(decoded) == 4 and np.abs(decoded[-1].astype(int) - 200).max() <= 3


def test_unreadable_videos_name_the_file(tmp_path):
    with pytest.raises(ImageError, match="not found.*missing.mp4"):
        probe_video(tmp_path / "missing.mp4")
    bad = tmp_path / "notes.mp4"
    bad.write_text("this is not a video\n" * 50)
    with pytest.raises(ImageError, match="notes.mp4"):
        probe_video(bad)
    with pytest.raises(ImageError, match="notes.mp4"):
        detect_and_color_splash(FixedMaskModel(), video_path=bad, out_path=tmp_path / "o.mp4", progress=False)
    assert not (tmp_path / "o.mp4").exists()
    sound = tmp_path / "sound.wav"
    with av.open(str(sound), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
        frame.sample_rate = 8000
        container.mux(stream.encode(frame))
        container.mux(stream.encode())
    with pytest.raises(ImageError, match="sound.wav has no video stream"):
        open_video(sound)


def test_failures_leave_no_output(balloon_video, tmp_path):
    src, _ = balloon_video

    def broken_infer(images):
        raise RuntimeError("model exploded")

    with pytest.raises(RuntimeError, match="model exploded"):
        transform_video(src, tmp_path / "a.mp4", infer=broken_infer, render=lambda im, r: im, progress=False)

    def broken_render(image, r):
        raise ValueError("render failed")

    with pytest.raises(ValueError, match="render failed"):
        transform_video(src, tmp_path / "b.mp4", infer=lambda ims: [0] * len(ims), render=broken_render,
                        progress=False)
    with pytest.raises(MaskRCNNError, match="2 results for 4 frames"):
        transform_video(src, tmp_path / "c.mp4", infer=lambda ims: [0, 0], render=lambda im, r: im, progress=False)
    with pytest.raises(MaskRCNNError, match=r"'\.avi'"):
        transform_video(src, tmp_path / "d.avi", infer=lambda ims: [0] * len(ims), render=lambda im, r: im)
    assert list(tmp_path.iterdir()) == []  # neither outputs nor temporary files
