"""A streaming, threaded frame pipeline over videos: decode → infer → render → encode.

No model or splash here: :func:`transform_video` maps every frame through two
callables, ``infer`` (a batch of frames, on the calling thread) and ``render`` (one
frame and its result, on a thread pool), and encodes what ``render`` returns.
Decoding and encoding helpers live in :mod:`maskrcnn.apps.video_io` (re-exported here).

Pipeline: reader thread (demux + decode) → queue → calling thread (``infer``, then
``render`` jobs submitted to the pool) → queue → writer thread (encode + mux, in
order). Queues hold at most ``queue_batches`` batches: memory stays flat however long
the video, and decoding, inference, rendering and encoding overlap.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

import numpy as np

from ..errors import MaskRCNNError
from .video_io import (  # noqa: F401  (re-exported for callers of maskrcnn.apps.video)
    _MAX_PENDING_AUDIO,
    DecodedFrame,
    InputVideo,
    VideoInfo,
    VideoStats,
    VideoWriter,
    choose_video_codec,
    iter_frames,
    open_video,
    probe_video,
)

__all__ = [
    "DecodedFrame", "InputVideo", "VideoInfo", "VideoStats", "VideoWriter", "choose_video_codec",
    "iter_frames", "open_video", "probe_video", "transform_video",
]  # fmt: skip


_END = object()


class _Stop(Exception):
    """Raised inside a pipeline thread when another stage failed."""


def _put(q: queue.Queue, item: Any, stop: threading.Event) -> None:
    """``q.put`` that gives up (raises :class:`_Stop`) when another stage failed."""
    while not stop.is_set():
        try:
            return q.put(item, timeout=0.05)
        except queue.Full:
            pass
    raise _Stop


def _get(q: queue.Queue, stop: threading.Event) -> Any:
    while not stop.is_set():
        try:
            return q.get(timeout=0.05)
        except queue.Empty:
            pass
    raise _Stop


def transform_video(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    *,
    infer: Callable[[list[np.ndarray]], Sequence[Any]],
    render: Callable[[np.ndarray, Any], np.ndarray],
    batch_size: int = 4,
    progress: bool = True,
    desc: str | None = None,
    crf: int | None = None,
    codec: str | None = None,
    preset: str = "veryfast",
    queue_batches: int = 2,
    render_workers: int | None = None,
) -> VideoStats:
    """Decode ``src``, map its frames through ``infer`` and ``render``, encode to ``dst``.

    ``infer(images)`` gets a list of at most ``batch_size`` H×W×3 uint8 RGB frames and
    returns one result per frame; it runs on the calling thread (where a model
    belongs). ``render(image, result)`` returns the H×W×3 uint8 RGB frame to write; it
    runs on ``render_workers`` threads (default ``min(4, cpu count)``). Frames keep
    their timestamps, the output keeps size and frame rate (see :class:`VideoWriter`)
    and the first audio stream. A tqdm bar counts written frames (frames/s).

    Memory is bounded: the reader thread stays at most ``queue_batches`` batches ahead
    of inference, and inference at most ``queue_batches`` batches ahead of the writer.
    """
    if batch_size < 1:
        raise MaskRCNNError(f"batch_size must be >= 1, got {batch_size}")
    if queue_batches < 1:
        raise MaskRCNNError(f"queue_batches must be >= 1, got {queue_batches}")
    from tqdm.auto import tqdm

    workers = render_workers or min(4, os.cpu_count() or 1)
    stop = threading.Event()
    errors: list[BaseException] = []
    in_q: queue.Queue = queue.Queue(maxsize=queue_batches)
    out_q: queue.Queue = queue.Queue(maxsize=queue_batches)
    counts = {"decoded": 0, "written": 0, "max_in_flight": 0}
    lock = threading.Lock()

    video = open_video(src)
    info = video.info
    try:
        writer = VideoWriter(
            path=dst,
            width=info.width,
            height=info.height,
            rate=info.rate,
            time_base=info.time_base,
            codec=codec,
            crf=crf,
            preset=preset,
            audio=video.audio_stream,
        )
    except BaseException:
        video.close()
        raise
    bar = tqdm(total=info.frames, unit="frame", desc=desc or f"video {info.path.name}", disable=not progress)
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="render")
    started = time.perf_counter()

    def fail(exc: BaseException) -> None:
        with lock:
            errors.append(exc)
        stop.set()

    def read() -> None:
        items = video.iter_media(audio=writer.audio_mode)
        batch: list[DecodedFrame] = []
        audio: list[Any] = []
        try:
            for item in items:
                if isinstance(item, DecodedFrame):
                    batch.append(item)
                    with lock:
                        counts["decoded"] += 1
                        in_flight = counts["decoded"] - counts["written"]
                        counts["max_in_flight"] = max(counts["max_in_flight"], in_flight)
                else:
                    audio.append(item)
                if len(batch) == batch_size or len(audio) >= _MAX_PENDING_AUDIO:
                    _put(in_q, (batch, audio), stop)
                    batch, audio = [], []
            if batch or audio:
                _put(in_q, (batch, audio), stop)
            _put(in_q, _END, stop)
        except _Stop:
            pass
        except BaseException as exc:  # noqa: BLE001 - handed to the calling thread
            fail(exc)
        finally:
            items.close()

    def write() -> None:
        try:
            while True:
                item = _get(out_q, stop)
                if item is _END:
                    return
                frames, futures, audio = item
                for packet in audio:
                    writer.write_audio(packet)
                for frame, future in zip(frames, futures):
                    writer.write(_result(future, stop), pts=frame.pts, time_base=frame.time_base)
                    with lock:
                        counts["written"] += 1
                    bar.update(1)
                del item, frames, futures, audio  # release this batch before waiting for the next
        except _Stop:
            pass
        except BaseException as exc:  # noqa: BLE001
            fail(exc)

    reader = threading.Thread(target=read, name="video-reader", daemon=True)
    writer_thread = threading.Thread(target=write, name="video-writer", daemon=True)
    reader.start()
    writer_thread.start()
    try:
        while True:
            item = _get(in_q, stop)
            if item is _END:
                _put(out_q, _END, stop)
                break
            frames, audio = item
            images = [f.image for f in frames]
            results = list(infer(images)) if images else []
            if len(results) != len(images):
                raise MaskRCNNError(
                    f"video {info.path}: inference returned {len(results)} results for {len(images)} frames"
                )
            futures = [pool.submit(render, image, r) for image, r in zip(images, results)]
            _put(out_q, (frames, futures, audio), stop)
            del item, frames, audio, images, results, futures  # the writer owns the batch now
        writer_thread.join()
    except _Stop:
        pass
    except BaseException as exc:
        fail(exc)
    finally:
        writer_thread.join()
        stop.set()  # the reader has finished on success; on failure this stops it
        reader.join()
        pool.shutdown(wait=True, cancel_futures=True)
        bar.close()
        try:
            if errors:
                writer.abort()
            else:
                writer.close()
        finally:
            video.close()
    if errors:
        raise errors[0]
    return VideoStats(
        path=writer.path,
        frames=counts["written"],
        seconds=time.perf_counter() - started,
        max_frames_in_flight=counts["max_in_flight"],
        codec=writer.codec,
        audio=None if writer.audio_mode is None else ("copy" if writer.audio_mode == "copy" else "aac"),
    )


def _result(future: Future, stop: threading.Event) -> Any:
    while not stop.is_set() or future.done():
        try:
            return future.result(timeout=0.05)
        except FutureTimeout:
            pass
    raise _Stop
