"""Video decode/encode helpers (PyAV): probing, frame generators, an MP4 writer.

The streaming pipeline that uses them is :mod:`maskrcnn.apps.video`.

* Reading: any container/codec FFmpeg reads; frames come out of generators
  (:func:`iter_frames`, :meth:`InputVideo.iter_media`) as :class:`DecodedFrame`
  (H×W×3 uint8 RGB + presentation timestamp), so no video is ever held in memory.
* Video out: H.264 (``libx264``) when PyAV has it, else MPEG-4 part 2 (``mpeg4``).
  Quality is an x264 CRF (0 = lossless in YUV; for ``mpeg4`` a fixed quantizer
  ``round(crf / 6)`` in 1..31).
* Odd sizes: ``yuv420p`` (plays everywhere) when width and height are even. x264
  cannot encode 4:2:0 at an odd size, so odd sizes are encoded ``yuv444p`` (H.264
  High 4:4:4) rather than padded or cropped: the exact size is kept, at the price of
  players that only decode 4:2:0 (some browsers). ``mpeg4`` does odd 4:2:0 itself.
* Timing: the encoder's time base is the input stream's and every frame keeps its
  input timestamp, so the frame rate and variable frame timing survive (timestamps
  that do not increase are nudged one tick forward; ``mpeg4`` allows time-base
  denominators ≤ 65535 only, beyond that timestamps are rounded to ``1 / rate``).
* Audio: the first audio stream is mux-copied when the output container takes its
  codec as is (AAC, MP3 in MP4), else decoded and re-encoded to AAC.
* Output is written under a temporary name and renamed when complete.
* Pipeline: reader thread (demux + decode) → queue → calling thread (``infer``,
  then ``render`` jobs submitted to the pool) → queue → writer thread (encode + mux,
  in order). Queues hold at most ``queue_batches`` batches: memory stays flat however
  long the video, and decoding, inference, rendering and encoding overlap.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, NamedTuple

import av
import numpy as np

from ..errors import ImageError, MaskRCNNError
from ..fileio import AtomicFile

__all__ = [
    "DecodedFrame", "InputVideo", "VideoInfo", "VideoStats", "VideoWriter", "choose_video_codec",
    "iter_frames", "open_video", "probe_video",
]  # fmt: skip

# Output container by file extension.
_CONTAINER_FORMATS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}
_DEFAULT_RATE = Fraction(25)
_MPEG4_MAX_TIME_BASE_DEN = 65535
_AUDIO_LAYOUTS = {1: "mono", 2: "stereo", 6: "5.1", 8: "7.1"}
# Audio codecs mux-copied into each output container; anything else is re-encoded to AAC
# (PCM, for one, is accepted by FFmpeg's MP4 muxer but fails when the file is finished).
_AUDIO_COPY_CODECS = {
    "mp4": {"aac", "mp3"},
    "mov": {"aac", "mp3"},
    "matroska": {"aac", "mp3", "opus", "vorbis", "flac"},
}
_MAX_PENDING_AUDIO = 256  # audio items that may wait for a batch before being sent alone


@dataclass(frozen=True)
class VideoInfo:
    """What :func:`probe_video` learns about a video's first video stream.

    ``rate`` is the average frame rate (frames per second) and ``time_base`` the
    unit of the frames' timestamps, both exact fractions; ``frames`` is the
    container's frame count, else an estimate from the duration, else ``None``.
    """

    path: Path
    width: int
    height: int
    rate: Fraction
    time_base: Fraction
    frames: int | None
    codec: str
    audio_codec: str | None


class DecodedFrame(NamedTuple):
    """One decoded video frame.

    ``image`` is H×W×3 uint8 RGB; ``pts`` the presentation timestamp in units of
    ``time_base`` seconds (``None`` when the container has none); ``index`` counts
    frames from 0 in presentation order.
    """

    image: np.ndarray
    pts: int | None
    time_base: Fraction | None
    index: int


@dataclass(frozen=True)
class VideoStats:
    """What :func:`transform_video` did: ``frames`` written in ``seconds`` of wall time,
    ``max_frames_in_flight`` = the most frames decoded but not yet encoded at once,
    ``audio`` = ``"copy"``, ``"aac"`` or ``None``."""

    path: Path
    frames: int
    seconds: float
    max_frames_in_flight: int
    codec: str
    audio: str | None

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else float("inf")


def choose_video_codec() -> str:
    """``"libx264"`` (H.264) when this PyAV can encode it, else ``"mpeg4"``."""
    for name in ("libx264", "mpeg4"):
        if name in av.codecs_available and _has_encoder(name):
            return name
    raise MaskRCNNError("PyAV has neither the libx264 nor the mpeg4 video encoder; cannot write a video")


def _has_encoder(name: str) -> bool:
    try:
        av.Codec(name, "w")
    except (av.FFmpegError, ValueError, KeyError):  # unknown codec, or decoder only
        return False
    return True


# ----------------------------------------------------------------------------------
# reading


def _frame_to_rgb(frame: av.VideoFrame) -> np.ndarray:
    """H×W×3 uint8 RGB array of a decoded frame (swscale conversion)."""
    return frame.to_ndarray(format="rgb24")


class InputVideo:
    """An open input video; use :func:`open_video` (a context manager).

    ``info`` describes the first video stream; ``audio_stream`` is the first audio
    stream or ``None``. :meth:`iter_media` decodes lazily.
    """

    def __init__(self, *, path: Path, container: Any):
        self.path = path
        self._container = container
        self.video_stream = container.streams.video[0]
        self.video_stream.thread_type = "AUTO"
        audio = container.streams.audio
        self.audio_stream = audio[0] if audio else None
        self.info = _info_of(path, self.video_stream, self.audio_stream, container.duration)

    def __enter__(self) -> InputVideo:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._container.close()

    def iter_media(self, *, audio: str | None = None) -> Iterator[DecodedFrame | Any]:
        """Yield video frames (:class:`DecodedFrame`) and, if ``audio`` is ``"copy"``,
        the first audio stream's packets (``av.Packet``) or, if ``"decode"``, its
        decoded ``av.AudioFrame`` objects, in demux order. A generator: nothing is
        decoded before it is asked for.

        Raises :class:`ImageError` naming the file and frame when decoding fails.
        """
        if audio not in (None, "copy", "decode"):
            raise MaskRCNNError(f"iter_media: audio must be None, 'copy' or 'decode', got {audio!r}")
        vs = self.video_stream
        a_s = self.audio_stream if audio is not None else None
        streams = [vs] if a_s is None else [vs, a_s]
        index = 0
        try:
            for packet in self._container.demux(*streams):
                if packet.stream.index == vs.index:
                    for frame in packet.decode():
                        yield DecodedFrame(
                            image=_frame_to_rgb(frame), pts=frame.pts, time_base=frame.time_base, index=index
                        )
                        index += 1
                elif audio == "copy":
                    if packet.size and packet.dts is not None:
                        yield packet
                else:
                    yield from packet.decode()
        except av.FFmpegError as exc:
            raise ImageError(f"cannot decode video {self.path} at frame {index}: {exc}") from exc
        if index == 0:
            raise ImageError(f"video {self.path} has no decodable frames")


def _info_of(path: Path, vs: Any, a_s: Any, container_duration: int | None) -> VideoInfo:
    rate = vs.average_rate or vs.guessed_rate or vs.base_rate or _DEFAULT_RATE
    rate = Fraction(rate)
    time_base = Fraction(vs.time_base) if vs.time_base else 1 / rate
    frames: int | None = int(vs.frames) if vs.frames else None
    if frames is None and vs.duration:
        frames = max(1, round(float(vs.duration * time_base * rate)))
    if frames is None and container_duration:  # microseconds (AV_TIME_BASE)
        frames = max(1, round(float(Fraction(container_duration, 1_000_000) * rate)))
    width, height = int(vs.codec_context.width), int(vs.codec_context.height)
    if width <= 0 or height <= 0:
        raise ImageError(f"video {path}: its video stream has no frame size")
    audio_codec = a_s.codec_context.name if a_s is not None else None
    return VideoInfo(path=path, width=width, height=height, rate=rate, time_base=time_base, frames=frames,
                     codec=vs.codec_context.name, audio_codec=audio_codec)  # fmt: skip


def open_video(path: str | os.PathLike[str]) -> InputVideo:
    """Open a video for reading. Raises :class:`ImageError` naming the file when it is
    missing, unreadable, or has no video stream."""
    p = Path(path)
    if p.is_dir():
        raise ImageError(f"{p}: is a folder, not a video file")
    if not p.is_file():
        raise ImageError(f"video file not found: {p}")
    try:
        container = av.open(str(p), "r")
    except (av.FFmpegError, OSError, UnicodeDecodeError) as exc:
        raise ImageError(f"cannot read video {p}: {exc}") from exc
    try:
        if not container.streams.video:
            raise ImageError(f"{p} has no video stream")
        return InputVideo(path=p, container=container)
    except BaseException:
        container.close()
        raise


def probe_video(path: str | os.PathLike[str]) -> VideoInfo:
    """Size, frame rate, time base, frame count and codecs of a video (no decoding)."""
    with open_video(path) as video:
        return video.info


def iter_frames(path: str | os.PathLike[str]) -> Iterator[DecodedFrame]:
    """Decode a video frame by frame (a generator; the file closes when it ends or is
    closed). Each item is a :class:`DecodedFrame` with an H×W×3 uint8 RGB image."""
    with open_video(path) as video:
        yield from video.iter_media(audio=None)


# ----------------------------------------------------------------------------------
# writing


class VideoWriter:
    """Encode H×W×3 uint8 RGB frames (and optionally one audio stream) into a video file.

    Keyword-only: ``path`` (extension ``.mp4``/``.m4v``/``.mov``/``.mkv``), ``width``,
    ``height``, ``rate`` (average frames per second), ``time_base`` (unit of the
    timestamps passed to :meth:`write`; default ``1 / rate``), ``codec`` (default
    :func:`choose_video_codec`), ``crf`` (quality, default 18), ``preset`` (x264
    speed preset; ``"veryfast"`` keeps encoding well ahead of the model, at CRF 18
    the picture is still visually clean), ``audio`` (an input audio stream to keep,
    or ``None``).

    ``audio_mode`` tells how audio is handled: ``"copy"`` (give :meth:`write_audio`
    the input's packets), ``"decode"`` (give it decoded audio frames; they are
    re-encoded to AAC) or ``None``. Use as a context manager: a clean exit renames
    the temporary file to ``path``, an exception deletes it.
    """

    def __init__(
        self,
        *,
        path: str | os.PathLike[str],
        width: int,
        height: int,
        rate: Fraction | float | int,
        time_base: Fraction | None = None,
        codec: str | None = None,
        crf: int | None = None,
        preset: str = "veryfast",
        audio: Any = None,
    ):
        self.path = Path(path)
        fmt = _CONTAINER_FORMATS.get(self.path.suffix.lower())
        if fmt is None:
            raise MaskRCNNError(
                f"output video {self.path}: unsupported extension {self.path.suffix!r}; "
                f"use one of {sorted(_CONTAINER_FORMATS)}"
            )
        if width <= 0 or height <= 0:
            raise MaskRCNNError(f"output video {self.path}: bad size {width}x{height}")
        rate = Fraction(rate).limit_denominator(1_000_000)
        if rate <= 0:
            raise MaskRCNNError(f"output video {self.path}: frame rate must be > 0, got {rate}")
        crf = 18 if crf is None else int(crf)
        if not 0 <= crf <= 51:
            raise MaskRCNNError(f"output video {self.path}: crf must be in 0..51, got {crf}")
        self.codec = codec or choose_video_codec()
        self.width, self.height, self.rate = int(width), int(height), rate
        self._format = fmt
        self._file = AtomicFile(self.path, suffix=self.path.suffix)
        try:
            self._container = av.open(str(self._file.tmp), "w", format=fmt)
        except (av.FFmpegError, OSError) as exc:
            raise MaskRCNNError(f"cannot write video {self.path}: {exc}") from exc
        self._closed = False
        try:
            self._stream = self._add_video_stream(time_base=time_base, crf=crf, preset=preset)
            self._audio_stream, self.audio_mode = self._add_audio_stream(audio)
        except BaseException:
            self.abort()
            raise
        self._last_pts: int | None = None
        self.frames = 0

    # -- set-up ------------------------------------------------------------------
    def _add_video_stream(self, *, time_base: Fraction | None, crf: int, preset: str) -> Any:
        tb = Fraction(time_base) if time_base else 1 / self.rate
        if self.codec == "mpeg4" and tb.denominator > _MPEG4_MAX_TIME_BASE_DEN:
            tb = (1 / self.rate).limit_denominator(_MPEG4_MAX_TIME_BASE_DEN)
        self._time_base = tb
        odd = self.width % 2 or self.height % 2
        try:
            stream = self._container.add_stream(self.codec, rate=self.rate)
        except (av.FFmpegError, ValueError) as exc:
            raise MaskRCNNError(f"cannot write video {self.path} with codec {self.codec}: {exc}") from exc
        stream.width, stream.height = self.width, self.height
        stream.pix_fmt = "yuv444p" if (odd and self.codec == "libx264") else "yuv420p"
        stream.codec_context.time_base = tb
        stream.codec_context.thread_count = 0  # let the encoder pick
        if self.codec == "libx264":
            stream.codec_context.options = {"crf": str(crf), "preset": preset}
        else:
            stream.codec_context.qscale = True
            stream.codec_context.global_quality = max(1, min(31, round(crf / 6)))
        return stream

    def _add_audio_stream(self, audio: Any) -> tuple[Any, str | None]:
        if audio is None:
            return None, None
        ctx = audio.codec_context
        if ctx.name in _AUDIO_COPY_CODECS[self._format]:
            try:
                return self._container.add_stream_from_template(audio), "copy"
            except (ValueError, av.FFmpegError):
                pass  # this container cannot hold the codec as is: re-encode to AAC
        rate = int(ctx.sample_rate or 48000)
        stream = self._container.add_stream("aac", rate=rate)
        stream.layout = _AUDIO_LAYOUTS.get(int(ctx.channels or 2), "stereo")
        return stream, "decode"

    # -- writing -----------------------------------------------------------------
    def write(self, image: np.ndarray, *, pts: int | None = None, time_base: Fraction | None = None) -> None:
        """Encode one H×W×3 uint8 RGB frame shown at ``pts`` × ``time_base`` seconds
        (default: one frame period after the previous frame)."""
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ImageError(
                f"video {self.path}: a frame must be H×W×3 uint8 RGB, got shape {image.shape} dtype {image.dtype}"
            )
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
        frame.pts = self._next_pts(pts, time_base)
        frame.time_base = self._time_base
        self._mux(self._stream.encode(frame))
        self.frames += 1

    def _next_pts(self, pts: int | None, time_base: Fraction | None) -> int:
        step = max(1, round(1 / (self.rate * self._time_base)))
        if pts is None:
            out = 0 if self._last_pts is None else self._last_pts + step
        else:
            tb = Fraction(time_base) if time_base else self._time_base
            out = pts if tb == self._time_base else round(pts * tb / self._time_base)
            if self._last_pts is not None and out <= self._last_pts:
                out = self._last_pts + 1
        self._last_pts = out
        return out

    def write_audio(self, item: Any) -> None:
        """Mux an input audio packet (``audio_mode == "copy"``) or encode a decoded
        audio frame (``audio_mode == "decode"``)."""
        if self._audio_stream is None:
            return
        if self.audio_mode == "copy":
            item.stream = self._audio_stream
            self._mux(item)
        else:
            self._mux(self._audio_stream.encode(item))

    def _mux(self, packets: Any) -> None:
        try:
            self._container.mux(packets)
        except av.FFmpegError as exc:
            raise MaskRCNNError(f"cannot write video {self.path}: {exc}") from exc

    # -- finishing ---------------------------------------------------------------
    def close(self) -> Path:
        """Flush the encoders, finish the file and move it to ``path``."""
        if self._closed:
            return self.path
        try:
            self._mux(self._stream.encode(None))
            if self.audio_mode == "decode":
                self._mux(self._audio_stream.encode(None))
            self._container.close()
            self._closed = True
            self._file.commit()
        except BaseException:
            self.abort()
            raise
        return self.path

    def abort(self) -> None:
        """Stop writing and delete the partial file."""
        if not self._closed:
            self._closed = True
            try:
                self._container.close()
            except Exception:  # noqa: BLE001 - the file is thrown away anyway
                pass
        self._file.discard()

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


# ----------------------------------------------------------------------------------
# pipeline
