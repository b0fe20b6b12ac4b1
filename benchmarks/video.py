"""Video benchmark: color-splash frames per second against model-only frames per second.

A short test video is made from real balloon val images (resized to ``--frame-size``, written
with the project's :class:`~maskrcnn.apps.video_io.VideoWriter` at 25 fps). Then, on the same
frames and the same model:

* **model only**: the decoded frames held in memory, ``model.detect`` on batches of
  ``--batch-size`` frames — frames per second of inference alone;
* **model + union**: ``model.detect_union`` on the same batches — the model and the union of each
  frame's masks taken on the model's device, which is what the splash runs instead of ``detect``
  (no N full-size masks moved to the host and transposed to matterport's H×W×N);
* **splash**: :func:`maskrcnn.apps.splash.detect_and_color_splash` on the video file — decoding,
  inference, compositing and encoding, overlapped by :func:`maskrcnn.apps.video.transform_video`;
* the parts alone (decode all frames, composite all frames, encode all frames): what a pipeline
  without overlap would add to the model time.

The model is our MaskRCNN with TorchvisionConfig and the benchmarks' seeded random weights
(class scores scaled, so every frame has up to 100 detections: the worst case for compositing),
optimized with :func:`maskrcnn.model.fuse.prepare_for_inference` unless ``--no-optimize``.

Usage::

    python benchmarks/video.py [--frames 8] [--frame-size 640 480] [--batch-size 4] [--runs 1] [--device cpu]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--frame-size", type=int, nargs=2, default=(640, 480), metavar=("W", "H"))
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--runs", type=int, default=1, help="repetitions of each measurement (median)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--min-size", type=int, default=800)
    parser.add_argument("--max-size", type=int, default=1333)
    parser.add_argument("--no-optimize", action="store_true")
    return parser.parse_args(argv)


def make_video(path: Path, frames: int, size: tuple[int, int]) -> list[np.ndarray]:
    """Write ``frames`` balloon images resized to ``size = (W, H)`` as an MP4; return the frames."""
    from PIL import Image

    from maskrcnn.apps.video_io import VideoWriter

    names = common.balloon_names()
    images = []
    for i in range(frames):
        image = Image.open(common.BALLOON_VAL / names[i % len(names)]).convert("RGB").resize(size, Image.BILINEAR)
        images.append(np.asarray(image))
    with VideoWriter(path=path, width=size[0], height=size[1], rate=25) as writer:
        for image in images:
            writer.write(image)
    return images


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    from maskrcnn.apps.splash import color_splash, detect_and_color_splash
    from maskrcnn.apps.video_io import VideoWriter, iter_frames

    tmp = tempfile.TemporaryDirectory(prefix="maskrcnn-video-bench-")
    folder = Path(tmp.name)
    weights = common.write_weights(folder / "tv_maskrcnn.pth")
    model = common.build_ours(weights, device, min_size=args.min_size, max_size=args.max_size,
                              optimize=not args.no_optimize)
    source = folder / "balloons.mp4"
    make_video(source, args.frames, tuple(args.frame_size))
    frames = [f.image for f in iter_frames(source)]
    n = len(frames)

    model.detect(frames[:1])  # warm-up
    results = []

    def model_only():
        results.clear()
        for start in range(0, n, args.batch_size):
            results.extend(model.detect(frames[start:start + args.batch_size], batch_size=args.batch_size))

    def model_union():
        for start in range(0, n, args.batch_size):
            model.detect_union(frames[start:start + args.batch_size], batch_size=args.batch_size)

    def splash():
        detect_and_color_splash(model, video_path=source, out_path=folder / "splash.mp4",
                                batch_size=args.batch_size, progress=False)

    def decode():
        for _ in iter_frames(source):
            pass

    composited: list[np.ndarray] = []

    def composite():
        composited.clear()
        composited.extend(color_splash(f, r["masks"]) for f, r in zip(frames, results))

    def encode():
        with VideoWriter(path=folder / "encode.mp4", width=frames[0].shape[1], height=frames[0].shape[0],
                         rate=25) as writer:
            for image in composited:
                writer.write(image)

    times: dict[str, list[float]] = {"model": [], "union": [], "splash": []}
    for run in range(args.runs):
        order = [("model", model_only), ("union", model_union), ("splash", splash)]
        for name, fn in (order if run % 2 == 0 else order[::-1]):
            times[name].append(timed(fn))
    if not results:
        model_only()
    t_decode, t_composite, t_encode = timed(decode), timed(composite), timed(encode)
    model_s, union_s, splash_s = (statistics.median(times[name]) for name in ("model", "union", "splash"))
    detections = sum(len(r["class_ids"]) for r in results) / n

    info = common.machine_info(device)
    rows = [
        ["model only (detect, frames in memory)", model_s, n / model_s, 1.0],
        ["model + mask union on the model's device (detect_union: what the splash infers)", union_s,
         n / union_s, model_s / union_s],
        ["splash video (decode + detect_union + composite + encode, overlapped)", splash_s, n / splash_s,
         model_s / splash_s],
        ["decode alone", t_decode, n / t_decode, float("nan")],
        ["composite alone (color_splash)", t_composite, n / t_composite, float("nan")],
        ["encode alone", t_encode, n / t_encode, float("nan")],
        ["model + decode + composite + encode, if run one after another",
         model_s + t_decode + t_composite + t_encode, n / (model_s + t_decode + t_composite + t_encode),
         model_s / (model_s + t_decode + t_composite + t_encode)],
    ]
    print("\n".join([
        f"# Video splash: {n} frames {args.frame_size[0]}x{args.frame_size[1]}, batch {args.batch_size}, "
        f"{detections:.0f} detections per frame, {args.runs} run(s); "
        + ("ours unoptimized" if args.no_optimize else "ours optimized (BN folded, channels-last)"),
        common.format_machine(info),
        "",
        common.format_table(["", "seconds", "frames/s", "× model-only fps"], rows),
    ]))
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
