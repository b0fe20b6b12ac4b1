"""Shared pieces of the benchmarks: the two models with identical weights, real images,
machine description, matmul peak, FLOP counting, stage timelines and peak memory.

Not a test module. Every benchmark compares ``maskrcnn.MaskRCNN`` built with
``TorchvisionConfig`` against torchvision's Mask R-CNN R50-FPN loaded from the **same**
state-dict file: torchvision's model is built with ``torch.manual_seed(seed)`` exactly as
``maskrcnn_resnet50_fpn`` builds it for pretrained weights (ResNet-50 with
``FrozenBatchNorm2d``, FPN extractor with 3 trainable layers), its class-score weights
multiplied by ``cls_scale`` (as ``tests/model/test_parity.py`` does) so that random weights
give real detections above 0.05, saved with ``state_dict()`` and loaded into ours with
``load_weights``.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
#: The real datasets: ``../shared/data`` beside the project, or ``$MASKRCNN_SHARED_DATA`` (as the tests).
DATA = Path(os.environ.get("MASKRCNN_SHARED_DATA", ROOT.parent / "shared" / "data"))
BALLOON_VAL = DATA / "balloon" / "val"
BALLOON_TRAIN = DATA / "balloon" / "train"

#: Stages of one inference forward, as ``(name, start event, end event)``.
INFERENCE_STAGES = (
    ("preprocess", "start", "backbone.pre"),
    ("backbone+FPN", "backbone.pre", "backbone.post"),
    ("RPN", "rpn.pre", "rpn.post"),
    ("box head", "roi_heads.pre", "mask_roi_pool.pre"),
    ("mask head", "mask_roi_pool.pre", "roi_heads.post"),
    ("paste/postprocess", "roi_heads.post", "end"),
    ("total", "start", "end"),
)


# ---------------------------------------------------------------------- machine
def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(device: torch.device) -> dict[str, Any]:
    """What the numbers were measured on."""
    info = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "torchvision": __import__("torchvision").__version__,
        "python": platform.python_version(),
        "device": str(device),
        "load_avg_1min": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def format_machine(info: dict[str, Any]) -> str:
    gpu = f", GPU {info['gpu']}" if "gpu" in info else ""
    return (f"machine: {info['cpu']} ({info['cores']} cores, torch threads {info['torch_threads']}){gpu}; "
            f"torch {info['torch']}, torchvision {info['torchvision']}, Python {info['python']}; "
            f"device {info['device']}; load average {info['load_avg_1min']}; {info['date']}")


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak_gflops(device: torch.device, *, n: int = 4096, repeats: int = 3,
                       dtype: torch.dtype = torch.float32) -> float:
    """Best-of-``repeats`` GFLOP/s of an ``n×n`` matrix product (``2 n³`` FLOPs)."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    torch.mm(a, b)
    sync(device)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        sync(device)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


# ---------------------------------------------------------------------- models
def write_weights(path: str | Path, *, seed: int = 0, cls_scale: float = 2.0, mask_scale: float = 20.0) -> Path:
    """Seeded random torchvision Mask R-CNN weights → ``path``.

    Class-score weights × ``cls_scale`` (real detections above 0.05, as the parity test does) and
    mask-logit weights × ``mask_scale`` (random masks are otherwise ≈ 0.5 everywhere, so thresholding
    them at 0.5 would compare noise; scaled, they are confident like a trained model's).
    """
    path = Path(path)
    tv = build_torchvision_random(seed=seed)
    with torch.no_grad():
        tv.roi_heads.box_predictor.cls_score.weight.mul_(cls_scale)
        tv.roi_heads.mask_predictor.mask_fcn_logits.weight.mul_(mask_scale)
    torch.save(tv.state_dict(), path)
    return path


def build_torchvision_random(*, seed: int = 0, min_size: int = 800, max_size: int = 1333) -> nn.Module:
    """torchvision's Mask R-CNN R50-FPN as ``maskrcnn_resnet50_fpn`` builds it for pretrained weights."""
    import torchvision
    from torchvision.models.detection.backbone_utils import _resnet_fpn_extractor
    from torchvision.models.detection.mask_rcnn import MaskRCNN as TorchvisionMaskRCNN
    from torchvision.ops import FrozenBatchNorm2d

    torch.manual_seed(seed)
    body = torchvision.models.resnet50(weights=None, norm_layer=FrozenBatchNorm2d)
    backbone = _resnet_fpn_extractor(body, 3)
    return TorchvisionMaskRCNN(backbone, num_classes=91, min_size=min_size, max_size=max_size)


def build_torchvision(weights: str | Path, device: torch.device, *, min_size: int = 800,
                      max_size: int = 1333) -> nn.Module:
    model = build_torchvision_random(seed=0, min_size=min_size, max_size=max_size)
    model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    return model.to(device).eval()


def build_ours(weights: str | Path, device: torch.device, *, min_size: int = 800, max_size: int = 1333,
               optimize: bool = True, channels_last: bool | None = None, compile: bool = False):
    """Our detector (TorchvisionConfig) with the same weights; ``optimize``: :func:`prepare_for_inference`.
    ``.network`` is the ``nn.Module`` to compare with torchvision's."""
    from maskrcnn.config import TorchvisionConfig
    from maskrcnn.detector import MaskRCNN
    from maskrcnn.model.fuse import prepare_for_inference

    model = MaskRCNN(TorchvisionConfig(IMAGE_MIN_DIM=min_size, IMAGE_MAX_DIM=max_size), device="cpu")
    model.load_weights(str(weights))
    model = model.to(device)
    model.network.eval()
    if optimize:
        model = prepare_for_inference(model, inplace=True, channels_last=channels_last, compile=compile)
    return model


# ---------------------------------------------------------------------- data
def balloon_names(folder: Path = BALLOON_VAL) -> list[str]:
    if not folder.is_dir():
        raise SystemExit(f"{folder}: the balloon dataset is missing (see ../shared/data/README.md)")
    return sorted(p.name for p in folder.glob("*.jpg"))


def load_images(count: int, folder: Path = BALLOON_VAL) -> list[np.ndarray]:
    """The first ``count`` balloon images (sorted by name) as H×W×3 uint8 RGB arrays."""
    from PIL import Image

    names = balloon_names(folder)[:count]
    return [np.array(Image.open(folder / name).convert("RGB")) for name in names]


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """H×W×3 uint8 → ``[3,H,W]`` uint8 (what our model takes; torchvision gets ``/ 255`` floats)."""
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).contiguous()


def load_annotated(count: int, folder: Path = BALLOON_TRAIN) -> list[tuple[np.ndarray, dict[str, torch.Tensor]]]:
    """The first ``count`` annotated balloon images: ``(image, {"boxes", "labels", "masks"})``.

    Polygons of the VIA file rasterized with PIL; boxes are the masks' extents (xyxy, exclusive).
    """
    from PIL import Image, ImageDraw

    meta = json.loads((folder / "via_region_data.json").read_text())
    out = []
    for entry in sorted(meta.values(), key=lambda e: e["filename"]):
        regions = entry["regions"]
        regions = list(regions.values()) if isinstance(regions, dict) else list(regions)
        if not regions:
            continue
        image = np.array(Image.open(folder / entry["filename"]).convert("RGB"))
        h, w = image.shape[:2]
        masks, boxes = [], []
        for region in regions:
            shape = region["shape_attributes"]
            canvas = Image.new("L", (w, h), 0)
            ImageDraw.Draw(canvas).polygon(list(zip(shape["all_points_x"], shape["all_points_y"])), fill=1)
            mask = np.array(canvas, dtype=bool)
            ys, xs = np.nonzero(mask)
            if len(xs) == 0:
                continue
            masks.append(mask)
            boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
        target = {
            "boxes": torch.tensor(boxes, dtype=torch.float32),
            "labels": torch.ones(len(boxes), dtype=torch.int64),
            "masks": torch.from_numpy(np.stack(masks)).to(torch.uint8),
        }
        out.append((image, target))
        if len(out) == count:
            break
    return out


# ---------------------------------------------------------------------- timing
class Timeline:
    """Timestamps of forward pre-hooks/hooks of named submodules (``<label>.pre`` / ``<label>.post``).

    ``mark(name)`` adds an event by hand (``start``, ``end``). On CUDA every event synchronizes.
    """

    def __init__(self, model: nn.Module, modules: dict[str, str], device: torch.device) -> None:
        self.device = device
        self.events: dict[str, float] = {}
        self._handles = []
        named = dict(model.named_modules())
        for label, path in modules.items():
            module = named[path]
            self._handles.append(module.register_forward_pre_hook(self._hook(label + ".pre", first=True)))
            self._handles.append(module.register_forward_hook(self._hook(label + ".post", first=False)))

    def _hook(self, event: str, *, first: bool) -> Callable:
        def hook(*_args):
            sync(self.device)
            now = time.perf_counter()
            if first:
                self.events.setdefault(event, now)  # first call (a module may run more than once)
            else:
                self.events[event] = now  # last call
        return hook

    def reset(self) -> None:
        self.events = {}

    def mark(self, event: str) -> None:
        sync(self.device)
        self.events[event] = time.perf_counter()

    def stages(self, stages: Sequence[tuple[str, str, str]]) -> dict[str, float]:
        """Seconds of each ``(name, start, end)`` stage (NaN where an event is missing)."""
        out = {}
        for name, a, b in stages:
            if a in self.events and b in self.events:
                out[name] = self.events[b] - self.events[a]
            else:
                out[name] = float("nan")
        return out

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []


OURS_MODULES = {"backbone": "backbone", "rpn": "rpn", "roi_heads": "roi_heads",
                "mask_roi_pool": "roi_heads.mask_roi_pool"}
TORCHVISION_MODULES = {"transform": "transform", "backbone": "backbone", "rpn": "rpn", "roi_heads": "roi_heads",
                       "mask_roi_pool": "roi_heads.mask_roi_pool"}


def medians(samples: Iterable[dict[str, float]]) -> dict[str, float]:
    values: dict[str, list[float]] = defaultdict(list)
    for sample in samples:
        for key, value in sample.items():
            values[key].append(value)
    return {key: statistics.median(v) for key, v in values.items()}


def count_flops(fn: Callable[[], Any]) -> int:
    """FLOPs of ``fn()`` as ``torch.utils.flop_counter`` counts them (convolutions and matrix products)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return int(counter.get_total_flops())


def autocast_context(device: torch.device, amp: bool):
    import contextlib

    if not amp:
        return contextlib.nullcontext()
    dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
    return torch.autocast(device_type=device.type, dtype=dtype)


# ---------------------------------------------------------------------- memory
def current_rss() -> int:
    """Resident set size of this process in bytes."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS counter (``VmHWM``) of this process; False if not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss() -> int:
    """Peak RSS in bytes since the last :func:`reset_peak_rss` (``VmHWM``; ``ru_maxrss`` as fallback)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class PeakMemory:
    """Peak memory of a block: RSS delta on CPU (fresh process recommended), allocator peak on CUDA."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.delta = 0

    def __enter__(self) -> "PeakMemory":
        import gc

        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.base = torch.cuda.memory_allocated(self.device)
        else:
            reset_peak_rss()
            self.base = current_rss()
        return self

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.delta = torch.cuda.max_memory_allocated(self.device) - self.base
        else:
            self.delta = peak_rss() - self.base


#: glibc raises its mmap threshold to the size of each freed mmapped block (up to 32 MiB), so after
#: loading weights one way or another, activations of a few MiB land on the heap or in mmaps and the
#: RSS peak of the same computation differs by hundreds of MB. The memory workers pin the threshold at
#: glibc's initial 128 KiB so that both models are measured under the same allocator policy.
WORKER_ENV = {"MALLOC_MMAP_THRESHOLD_": "131072"}


def run_worker(script: Path, args: list[str], timeout: float = 1800) -> dict[str, Any]:
    """Run ``python script args`` in a fresh process (env :data:`WORKER_ENV`); its last stdout line is JSON."""
    env = {**os.environ, **{k: v for k, v in WORKER_ENV.items() if k not in os.environ}}
    proc = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, timeout=timeout,
                          cwd=str(ROOT), env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"{script.name} {' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------- output
#: Tolerances of "same detections": the optimized model folds BN and reorders float sums (~1e-6 relative).
SAME_BOX_PX, SAME_SCORE = 0.1, 1e-3


def compare_detections(ours: dict[str, torch.Tensor], ref: dict[str, torch.Tensor]) -> dict[str, Any]:
    """Match detections one to one (same label, highest box IoU; torchvision's in score order) and
    report the largest differences of the matched pairs: box coordinates, scores, mask probabilities,
    and the soft IoU of the pasted masks (smallest and mean). Near-equal scores may swap places between the two
    models, hence matching rather than comparing position by position.

    ``same`` = equal count, every detection matched with its label, boxes within ``SAME_BOX_PX``, scores
    within ``SAME_SCORE`` (masks are reported, not judged); ``bit_identical`` = boxes and scores exactly
    equal in the same order and mask probabilities within 1e-5.
    """
    from torchvision.ops import box_iou

    n_ours, n_ref = int(ours["boxes"].shape[0]), int(ref["boxes"].shape[0])
    ref_masks = ref["masks"][:, 0] if ref["masks"].dim() == 4 else ref["masks"]
    out: dict[str, Any] = {"n_ours": n_ours, "n_torchvision": n_ref}
    iou = box_iou(ref["boxes"].float().cpu(), ours["boxes"].float().cpu()) if n_ours and n_ref else None
    pairs, used = [], set()
    for i in range(n_ref):
        best, best_iou = -1, 0.0
        for j in range(n_ours):
            if j not in used and int(ours["labels"][j]) == int(ref["labels"][i]) and float(iou[i, j]) > best_iou:
                best, best_iou = j, float(iou[i, j])
        if best >= 0:
            used.add(best)
            pairs.append((i, best))
    out["matched"] = len(pairs)
    out["swapped"] = sum(i != j for i, j in pairs)
    if not pairs:
        equal = n_ours == n_ref == 0
        out.update(same=equal, bit_identical=equal, min_mask_iou=1.0 if equal else 0.0,
                   **{k: 0.0 if equal else float("inf") for k in ("max_box_diff", "max_score_diff", "max_mask_diff")})
        return out
    r_idx = torch.tensor([i for i, _ in pairs])
    o_idx = torch.tensor([j for _, j in pairs])
    boxes_o, boxes_r = ours["boxes"].float().cpu()[o_idx], ref["boxes"].float().cpu()[r_idx]
    out["max_box_diff"] = float((boxes_o - boxes_r).abs().max())
    out["max_score_diff"] = float((ours["scores"].float().cpu()[o_idx] - ref["scores"].float().cpu()[r_idx]).abs().max())
    masks_o, masks_r = ours["masks"].float().cpu()[o_idx], ref_masks.float().cpu()[r_idx]
    out["max_mask_diff"] = float((masks_o - masks_r).abs().max())
    # Soft IoU of the pasted probability maps, sum(min) / sum(max): thresholding would turn the pixels at
    # a mask's border (bilinear blend with the zero padding, ≈ 0.5) into coin flips for 1e-6 differences.
    inter = torch.minimum(masks_o, masks_r).flatten(1).sum(1)
    union = torch.maximum(masks_o, masks_r).flatten(1).sum(1)
    mask_iou = torch.where(union > 0, inter / union.clamp(min=1e-12), torch.ones_like(union))
    out["min_mask_iou"] = float(mask_iou.min())
    out["mean_mask_iou"] = float(mask_iou.mean())
    out["same"] = (n_ours == n_ref == len(pairs) and out["max_box_diff"] <= SAME_BOX_PX
                   and out["max_score_diff"] <= SAME_SCORE)
    out["bit_identical"] = (out["same"] and out["swapped"] == 0 and out["max_box_diff"] == 0
                            and out["max_score_diff"] == 0 and out["max_mask_diff"] <= 1e-5)
    return out


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table."""
    def cell(value: Any) -> str:
        if isinstance(value, float):
            if value != value:
                return "–"
            return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
        return str(value)

    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(cell(v) for v in row) + " |")
    return "\n".join(lines)
