"""Speed against matterport's own Mask R-CNN (Keras/TF) on the same CPU, the same ``.h5`` and images.

Issue 14's targets: ``detect()`` latency ours/matterport ≤ 0.5, and one training step (``heads`` and
``all``) ≤ 0.5 of matterport's, with the peak memory of each side beside it.

matterport runs through its harness (``../shared/reference/matterport/reference.py``, README there)
under the TF venv's python; ours in a fresh process of this script (``--ours detect|train``). Every
measurement is its own process on each side, and the sides alternate (matterport first for even
images / the ``heads`` stage, ours first for the others) so that load drifts hit both.

* detect: matterport's defaults (square 1024×1024, 1000 proposals, 100 detections, batch of one), the
  ``.h5``'s backbone and classes; one warm-up, then ``--repeats`` timed ``detect()`` calls; median.
  (reference.py also runs one untimed ``run_graph`` pass per image after its timed calls.)
* train step: balloon.py's config (NAME balloon, 2 classes, IMAGES_PER_GPU 2, 200 ROIs per image,
  ``--image-dim`` square, SGD lr 0.001 momentum 0.9, clip 5), the ``.h5`` with the class-specific heads
  excluded, one epoch of ``--train-steps`` + 1 steps on balloon train, fresh model per stage
  (``heads``, ``all``); the first step is not counted. matterport's figure is its ``train_on_batch``
  median; ours is the optimizer step (forward, backward, clip, update) without the batch loading,
  timed by a hook around the trainer's step; "wall" is the time between step ends (data loading
  included) on both sides. Losses must be finite.
* peak memory: the peak RSS of each process (``wait4``'s ``ru_maxrss``): framework, model, data and
  the run together.

    python benchmarks/matterport.py --h5 /tmp/mpref/r50_s0.h5
    python benchmarks/matterport.py --seed 0 --backbone resnet101 --repeats 5 --train-steps 5
    python benchmarks/matterport.py --h5 FILE.h5 --skip-train IMG.jpg ...
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from maskrcnn.training.trainer import Hook

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("MASKRCNN_SHARED_DATA", ROOT.parent / "shared" / "data"))
REFERENCE = Path(os.environ.get("MASKRCNN_MATTERPORT_REFERENCE",
                                ROOT.parent / "shared" / "reference" / "matterport" / "reference.py"))
DEFAULT_IMAGES = ("14898532020_ba6199dd22_k.jpg", "3825919971_93fb1ec581_b.jpg")  # balloon val, as the README
HEADS = ["mrcnn_class_logits", "mrcnn_bbox_fc", "mrcnn_bbox", "mrcnn_mask"]  # balloon.py's exclude
TARGET = 0.5  # issue 14: ours / matterport


def default_matterport_python() -> str:
    return os.environ.get("MASKRCNN_MATTERPORT_PYTHON", str(Path.home() / "venvs" / "tf" / "bin" / "python"))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("images", nargs="*", type=Path,
                   help="images for detect (default: two balloon val images, " + ", ".join(DEFAULT_IMAGES) + ")")
    w = p.add_mutually_exclusive_group()
    w.add_argument("--h5", type=Path, help="matterport .h5 weights used by both sides")
    w.add_argument("--seed", type=int, help="make seeded weights with reference.py --seed N --save-h5 (temp dir)")
    p.add_argument("--backbone", choices=["resnet50", "resnet101"],
                   help="default: the .h5's (with --seed: resnet50)")
    p.add_argument("--repeats", type=int, default=3, help="timed detect() calls per image after one warm-up")
    p.add_argument("--train-steps", type=int, default=3, help="timed training steps per stage (after one untimed)")
    p.add_argument("--image-dim", type=int, default=512, help="training IMAGE_MIN_DIM = IMAGE_MAX_DIM (square)")
    p.add_argument("--train-data", type=Path, default=DATA / "balloon", help="balloon folder (train/, val/ VIA)")
    p.add_argument("--matterport-python", default=default_matterport_python(),
                   help="python of the TF venv (default $MASKRCNN_MATTERPORT_PYTHON or ~/venvs/tf/bin/python)")
    p.add_argument("--reference", type=Path, default=REFERENCE, help="matterport's reference.py")
    p.add_argument("--skip-train", action="store_true", help="detect only")
    p.add_argument("--skip-detect", action="store_true", help="training steps only")
    p.add_argument("--json", type=Path, help="also write the results here")
    p.add_argument("--ours", choices=["detect", "train"], help=argparse.SUPPRESS)  # worker mode
    p.add_argument("--layers", default="heads", help=argparse.SUPPRESS)  # worker mode (train)
    args = p.parse_args(argv)
    for name in ("repeats", "train_steps", "image_dim"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.image_dim % 64:
        p.error(f"--image-dim {args.image_dim}: must be a multiple of 64 (matterport's square mode)")
    if args.ours is None and args.h5 is None and args.seed is None:
        p.error("one of --h5 FILE or --seed N is needed")
    if not args.images:
        args.images = [DATA / "balloon" / "val" / name for name in DEFAULT_IMAGES]
    return args


# ---------------------------------------------------------------------- output parsing
@dataclass
class Timing:
    """One side's figure for one stage: ``times`` the timed runs (s), peak RSS in bytes."""

    times: list[float]
    peak_bytes: int = 0
    wall: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    note: str = ""

    @property
    def median(self) -> float:
        return statistics.median(self.times) if self.times else float("nan")


_DETECT = re.compile(r"(?P<stem>[^\s:]+): (?P<n>\d+) detections, molded \[\d+, \d+\], "
                     r"detect median (?P<median>[\d.]+) s \((?P<times>[^)]*)\)")
_TRAIN = re.compile(r"train layers=(?P<layers>[^:\s]+): (?P<n>\d+) timed steps, train_on_batch median "
                    r"(?P<median>[\d.]+|nan) s \(min [\d.na]+, max [\d.na]+\), wall per step median "
                    r"(?P<wall>[\d.]+|nan) s; first step (?P<first>[\d.]+) s; losses \[(?P<losses>[^\]]*)\]")


def parse_reference_detect(text: str) -> dict[str, dict]:
    """reference.py's per-image lines → ``{stem: {"detections", "median", "times"}}`` (seconds)."""
    out = {}
    for m in _DETECT.finditer(text):
        times = [float(t) for t in m["times"].split(",") if t.strip()]
        out[m["stem"]] = {"detections": int(m["n"]), "median": float(m["median"]), "times": times}
    return out


def parse_reference_train(text: str) -> dict[str, dict]:
    """reference.py --train-steps lines → ``{layers: {"steps", "median", "wall", "first", "losses"}}``.

    Only medians are printed for the timed steps (2 decimals), not each step."""
    out = {}
    for m in _TRAIN.finditer(text):
        losses = [float(x) for x in m["losses"].split(",") if x.strip()]
        out[m["layers"]] = {"steps": int(m["n"]), "median": float(m["median"]), "wall": float(m["wall"]),
                            "first": float(m["first"]), "losses": losses}
    return out


# ---------------------------------------------------------------------- report
def verdict(ratio: float, target: float = TARGET) -> str:
    if ratio != ratio:
        return "–"
    return f"met (≤ {target})" if ratio <= target else f"NOT met (> {target})"


def _seconds(value: float) -> str:
    return "–" if value != value else f"{value:.3f}" if value < 10 else f"{value:.2f}"


def _mb(value: int) -> str:
    return f"{value / 2**20:.0f}" if value else "–"


def table_rows(results: list[tuple[str, Timing, Timing]]) -> list[list[str]]:
    rows = []
    for stage, mp, ours in results:
        ratio = ours.median / mp.median if mp.median and mp.median == mp.median else float("nan")
        rows.append([stage, _seconds(mp.median), _seconds(ours.median), "–" if ratio != ratio else f"{ratio:.2f}",
                     _mb(mp.peak_bytes), _mb(ours.peak_bytes), verdict(ratio)])
    return rows


def format_table(headers: list[str], rows: list[list[str]]) -> str:
    """A Markdown table of strings."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


TABLE_HEADERS = ["stage", "matterport (s)", "ours (s)", "ours/matterport", "peak MB matterport",
                 "peak MB ours", f"verdict vs {TARGET}"]


def load_warning(load: float, limit: float = 0.5) -> str:
    return (f"WARNING: load average {load:.2f} at start (> {limit}): machine NOT idle — figures indicative only"
            if load > limit else "")


def machine_line(info: dict) -> str:
    return (f"machine: {info['cpu']} ({info['cores']} logical cores; torch threads {info['torch_threads']}); "
            f"Python {info['python']}, torch {info['torch']}; matterport: {info['matterport']}; "
            f"load average {info['load']:.2f}; {info['date']}")


def report(results: list[tuple[str, Timing, Timing]], info: dict, args: argparse.Namespace) -> str:
    lines = [f"# Ours vs matterport's Mask R-CNN on the same CPU ({info['h5']}, {info['backbone']})",
             machine_line(info)]
    warning = load_warning(info["load"])
    if warning:
        lines.append(warning)
    lines.append(f"detect: matterport's defaults (square 1024, batch 1), median of {args.repeats} run(s) after one "
                 f"warm-up; train: balloon.py's config, {args.image_dim}×{args.image_dim}, 2 images per step, "
                 f"median of {args.train_steps} step(s) after the first (matterport: train_on_batch; ours: the "
                 f"optimizer step without batch loading); peak MB: peak RSS of each process")
    lines += ["", format_table(TABLE_HEADERS, table_rows(results))]
    notes = [f"- {stage}: {side} {t.note}" for stage, mp, ours in results
             for side, t in (("matterport", mp), ("ours", ours)) if t.note]
    if notes:
        lines += [""] + notes
    return "\n".join(lines)


# ---------------------------------------------------------------------- processes
def run_process(cmd: list[str], *, env: dict | None = None) -> tuple[int, str, str, int]:
    """Run ``cmd``; ``(returncode, stdout, stderr, peak RSS bytes)`` — the peak from ``wait4``."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, cwd=ROOT)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return (proc.returncode, out.read().decode(errors="replace"), err.read().decode(errors="replace"),
                usage.ru_maxrss * 1024)


def _checked(cmd: list[str], what: str) -> tuple[str, int]:
    code, stdout, stderr, peak = run_process(cmd)
    if code != 0:
        tail = "\n".join((stderr or stdout).strip().splitlines()[-25:])
        raise SystemExit(f"{what} failed (exit {code}): {' '.join(cmd)}\n{tail}")
    return stdout, peak


def matterport_cmd(args: argparse.Namespace, *extra: str) -> list[str]:
    return [args.matterport_python, str(args.reference), "--backbone", args.backbone, *extra]


def ours_cmd(args: argparse.Namespace, mode: str, *extra: str) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), "--ours", mode, "--h5", str(args.h5),
            "--backbone", args.backbone, *extra]


def detect_matterport(args: argparse.Namespace, image: Path) -> Timing:
    stdout, peak = _checked(matterport_cmd(args, "--weights", str(args.h5), "--repeats", str(args.repeats),
                                           str(image)), f"matterport detect on {image.name}")
    parsed = parse_reference_detect(stdout).get(image.stem)
    if parsed is None:
        raise SystemExit(f"matterport detect on {image.name}: no result line in reference.py's output")
    return Timing(times=parsed["times"], peak_bytes=peak, note=f"{parsed['detections']} detections")


def detect_ours(args: argparse.Namespace, image: Path) -> Timing:
    stdout, peak = _checked(ours_cmd(args, "detect", "--repeats", str(args.repeats), str(image)),
                            f"our detect on {image.name}")
    result = json.loads(stdout.strip().splitlines()[-1])
    return Timing(times=result["times"], peak_bytes=peak, note=f"{result['detections']} detections")


def train_matterport(args: argparse.Namespace, layers: str) -> Timing:
    d = str(args.image_dim)
    stdout, peak = _checked(matterport_cmd(args, "--weights", str(args.h5), "--train-steps", str(args.train_steps),
                                           "--train-data", str(args.train_data), "--train-layers", layers,
                                           "--image-min-dim", d, "--image-max-dim", d),
                            f"matterport train step ({layers})")
    parsed = parse_reference_train(stdout).get(layers)
    if parsed is None:
        raise SystemExit(f"matterport train step ({layers}): no result line in reference.py's output")
    finite = all(math.isfinite(x) for x in parsed["losses"])
    return Timing(times=[parsed["median"]], peak_bytes=peak, wall=[parsed["wall"]], losses=parsed["losses"],
                  note=f"wall per step {_seconds(parsed['wall'])} s; first step {parsed['first']:.2f} s; "
                       f"losses {parsed['losses']}" + ("" if finite else " NOT FINITE"))


def train_ours(args: argparse.Namespace, layers: str) -> Timing:
    stdout, peak = _checked(ours_cmd(args, "train", "--layers", layers, "--train-steps", str(args.train_steps),
                                     "--image-dim", str(args.image_dim), "--train-data", str(args.train_data)),
                            f"our train step ({layers})")
    r = json.loads(stdout.strip().splitlines()[-1])
    finite = all(math.isfinite(x) for x in r["losses"])
    wall = r["wall"][1:]
    return Timing(times=r["step"][1:], peak_bytes=peak, wall=wall, losses=r["losses"],
                  note=f"wall per step {_seconds(statistics.median(wall)) if wall else '–'} s; first step "
                       f"{r['step'][0]:.2f} s; losses {[round(x, 3) for x in r['losses']]}"
                       + ("" if finite else " NOT FINITE"))


# ---------------------------------------------------------------------- our side (worker processes)
def _h5_num_classes(path: Path) -> int:
    import h5py

    with h5py.File(path, "r") as f:
        g = f["model_weights"] if "layer_names" not in f.attrs and "model_weights" in f else f
        return int(g["mrcnn_class_logits/mrcnn_class_logits/bias:0"].shape[0])


def h5_backbone(path: Path) -> str:
    """resnet101 when the ``.h5`` has ``res4w_branch2a`` (the 23-block stage 4), else resnet50."""
    import h5py

    with h5py.File(path, "r") as f:
        g = f["model_weights"] if "layer_names" not in f.attrs and "model_weights" in f else f
        names = {n.decode() if isinstance(n, bytes) else str(n) for n in g.attrs["layer_names"]}
    return "resnet101" if "res4w_branch2a" in names else "resnet50"


def worker_detect(args: argparse.Namespace) -> int:
    import numpy as np
    from PIL import Image

    from maskrcnn import MaskRCNN, MatterportConfig

    class InferenceConfig(MatterportConfig):  # reference.py's: matterport's defaults, batch of one
        NAME = "reference"
        GPU_COUNT = 1
        IMAGES_PER_GPU = 1

    config = InferenceConfig(BACKBONE=args.backbone, NUM_CLASSES=_h5_num_classes(args.h5))
    with tempfile.TemporaryDirectory() as logs:
        model = MaskRCNN(config, device="cpu", model_dir=logs)
        model.load_weights(str(args.h5))
    image = np.asarray(Image.open(args.images[0]).convert("RGB"))  # as skimage.io.imread for these JPEGs
    result = model.detect([image])[0]  # warm-up
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        result = model.detect([image])[0]
        times.append(time.perf_counter() - start)
    print(json.dumps({"times": times, "detections": int(len(result["class_ids"]))}))
    return 0


def balloon_config(*, backbone: str, image_dim: int, train_steps: int):
    """balloon.py's BalloonConfig on matterport's computation, as reference.py --train-steps builds it."""
    from maskrcnn import MatterportConfig

    class BalloonConfig(MatterportConfig):
        NAME = "balloon"
        IMAGES_PER_GPU = 2
        NUM_CLASSES = 1 + 1
        STEPS_PER_EPOCH = 100
        DETECTION_MIN_CONFIDENCE = 0.9

    return BalloonConfig(BACKBONE=backbone, IMAGE_MIN_DIM=image_dim, IMAGE_MAX_DIM=image_dim,
                         STEPS_PER_EPOCH=train_steps + 1, VALIDATION_STEPS=1, EVAL_EVERY=0)


class StepTimer(Hook):
    """A training hook timing each optimizer step: ``step`` without the time spent fetching the batch
    (matterport's ``train_on_batch``), ``wall`` between step ends (``nan`` for the first), ``losses``.

    It wraps the trainer's ``_train_step`` (the one place a step starts and ends) at ``before_train``."""

    def __init__(self) -> None:
        self.step: list[float] = []
        self.wall: list[float] = []
        self.losses: list[float] = []
        self._last: float | None = None

    def before_train(self, trainer) -> None:
        inner = trainer._train_step

        def timed(batches, *rest):
            fetch = _TimedIterator(batches)
            start = time.perf_counter()
            info = inner(fetch, *rest)
            now = time.perf_counter()
            self.step.append(now - start - fetch.seconds)
            self.wall.append(now - self._last if self._last is not None else float("nan"))
            self._last = now
            self.losses.append(float(info.losses["loss"]))
            return info

        trainer._train_step = timed


class _TimedIterator:
    def __init__(self, iterator) -> None:
        self.iterator = iterator
        self.seconds = 0.0

    def __iter__(self):
        return self

    def __next__(self):
        start = time.perf_counter()
        try:
            return next(self.iterator)
        finally:
            self.seconds += time.perf_counter() - start


def worker_train(args: argparse.Namespace) -> int:
    from maskrcnn import MaskRCNN
    from maskrcnn.data.dataset import Dataset
    from maskrcnn.data.formats.via import add_via

    config = balloon_config(backbone=args.backbone, image_dim=args.image_dim, train_steps=args.train_steps)
    train = Dataset()
    add_via(train, str(args.train_data / "train" / "via_region_data.json"), class_name="balloon",
            source="balloon", keep_negatives=False)  # as samples/balloon/balloon.py
    train.prepare()
    timer = StepTimer()
    with tempfile.TemporaryDirectory() as logs:
        model = MaskRCNN(config, device="cpu", model_dir=logs)
        model.load_weights(str(args.h5), exclude=HEADS)
        # No validation set: its loss and mAP are not timed on either side (matterport's one untimed
        # validation step only adds to its run time).
        model.train(train, None, learning_rate=config.LEARNING_RATE, epochs=1, layers=args.layers,
                    progress="none", tensorboard=False, seed=0, hooks=[timer])
    if len(timer.step) != args.train_steps + 1:
        raise SystemExit(f"our train step ({args.layers}): {len(timer.step)} steps timed, expected "
                         f"{args.train_steps + 1}")
    print(json.dumps({"step": timer.step, "wall": timer.wall, "losses": timer.losses}))
    return 0


# ---------------------------------------------------------------------- main
def machine_info(args: argparse.Namespace) -> dict:
    import torch

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from common import cpu_model

    code = ("import importlib.metadata as m, platform\n"
            "print(f\"TensorFlow {m.version('tensorflow')}, tf-keras {m.version('tf-keras')}, "
            "Python {platform.python_version()}\")")
    try:
        tf = subprocess.run([args.matterport_python, "-c", code], capture_output=True, text=True,
                            timeout=60).stdout.strip() or "versions unknown"
    except (OSError, subprocess.SubprocessError):
        tf = "versions unknown"
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(), "torch": torch.__version__, "matterport": tf,
            "load": os.getloadavg()[0], "date": time.strftime("%Y-%m-%d %H:%M %Z")}


def make_seeded_h5(args: argparse.Namespace, folder: Path) -> Path:
    path = folder / f"{args.backbone}_s{args.seed}.h5"
    print(f"making seeded weights: reference.py --seed {args.seed} --save-h5 {path}", flush=True)
    _checked(matterport_cmd(args, "--seed", str(args.seed), "--save-h5", str(path)), "seeded .h5")
    return path


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.ours == "detect":
        return worker_detect(args)
    if args.ours == "train":
        return worker_train(args)

    for path, what in [(Path(args.matterport_python), "--matterport-python"), (args.reference, "--reference")]:
        if not path.is_file():
            raise SystemExit(f"{what} {path}: not found (see ../shared/reference/matterport/README.md)")
    for image in args.images:
        if not image.is_file():
            raise SystemExit(f"{image}: image not found")
    if not args.skip_train and not (args.train_data / "train" / "via_region_data.json").is_file():
        raise SystemExit(f"--train-data {args.train_data}: no train/via_region_data.json")
    if args.h5 is not None:
        if not args.h5.is_file():
            raise SystemExit(f"--h5 {args.h5}: not found")
        found = h5_backbone(args.h5)
        if args.backbone and args.backbone != found:
            raise SystemExit(f"--h5 {args.h5}: holds {found} weights, not --backbone {args.backbone}")
        args.backbone = found
    info = machine_info(args)  # load average before anything runs
    tmp = tempfile.TemporaryDirectory(prefix="maskrcnn-vs-matterport-")
    try:
        if args.h5 is None:
            args.backbone = args.backbone or "resnet50"
            args.h5 = make_seeded_h5(args, Path(tmp.name))
        info.update(h5=str(args.h5) + (f" (seed {args.seed})" if args.seed is not None else ""),
                    backbone=args.backbone)
        results: list[tuple[str, Timing, Timing]] = []
        if not args.skip_detect:
            for i, image in enumerate(args.images):
                order = ("matterport", "ours") if i % 2 == 0 else ("ours", "matterport")
                got = {}
                for side in order:
                    print(f"detect {image.name}: {side}…", flush=True)
                    got[side] = (detect_matterport if side == "matterport" else detect_ours)(args, image)
                results.append((f"detect {image.stem}", got["matterport"], got["ours"]))
        if not args.skip_train:
            for i, layers in enumerate(("heads", "all")):
                order = ("matterport", "ours") if i % 2 == 0 else ("ours", "matterport")
                got = {}
                for side in order:
                    print(f"train step {layers}: {side}…", flush=True)
                    got[side] = (train_matterport if side == "matterport" else train_ours)(args, layers)
                results.append((f"train step {layers} ({args.image_dim}²)", got["matterport"], got["ours"]))
    finally:
        tmp.cleanup()
    print()
    print(report(results, info, args))
    if args.json:
        args.json.write_text(json.dumps({"machine": info, "results": [
            {"stage": s, "matterport": vars(mp), "ours": vars(o)} for s, mp, o in results]}, indent=2))
    bad = [s for s, mp, o in results for t in (mp, o) if not all(math.isfinite(x) for x in t.losses)]
    if bad:
        print(f"non-finite losses in: {', '.join(bad)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
