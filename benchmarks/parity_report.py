"""Parity with torchvision's ``maskrcnn_resnet50_fpn``: per-stage differences, detections matched.

Builds torchvision's model with random weights (seeded; the class-score layer scaled so that
softmax scores spread above DETECTION_MIN_CONFIDENCE), writes its ``state_dict`` to a file,
loads that file into ``MaskRCNN(TorchvisionConfig())`` and runs both on the same images
(torchvision on 0-1 floats, ours on the uint8 pixels). torchvision's intermediates are captured
with forward hooks; ours with ``run_graph``. Prints one table row per stage (max abs
difference, the reference's max abs value) and the one-to-one matching of the final detections.

    python benchmarks/parity_report.py --images 2            # balloon val images, 800 px
    python benchmarks/parity_report.py --images 1 --min-size 400 --max-size 667

``tests/model/test_parity.py`` runs the same functions and asserts on them.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torchvision.ops import box_iou

ROOT = Path(__file__).resolve().parents[1]
BALLOON_VAL = Path(os.environ.get("MASKRCNN_SHARED_DATA", ROOT.parent / "shared" / "data")) / "balloon" / "val"
# two landscape images resized to 800x1202 and 800x1199, batched into 800x1216: image 1 is padded, and
# P6 (13x19) gets torchvision's stride 800 // 13 = 61 in y. "--portrait" swaps in a portrait image
# (1066x800; the batch pads both images in both directions) at about 1.4x the cost.
DEFAULT_IMAGES = ("2917282960_06beee649a_b.jpg", "3825919971_93fb1ec581_b.jpg")
PORTRAIT = "16335852991_f55de7958d_k.jpg"
LEVELS = (("p2", "0"), ("p3", "1"), ("p4", "2"), ("p5", "3"), ("p6", "pool"))


@dataclass
class StageDiff:
    stage: str
    max_abs_diff: float  # inf when shapes differ
    ref_max_abs: float
    note: str = ""


@dataclass
class ImageMatch:
    n_torchvision: int
    n_ours: int
    matched: int
    min_box_iou: float
    max_score_diff: float
    min_mask_iou: float


@dataclass
class ParityResult:
    stages: list[StageDiff] = field(default_factory=list)
    matches: list[ImageMatch] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)

    def stage(self, name: str) -> StageDiff:
        return next(s for s in self.stages if s.stage == name)


def build_pair(weights_path: str | Path, *, seed: int = 0, cls_scale: float = 2.0, min_size: int = 800,
               max_size: int = 1333):
    """torchvision's model (random, seeded, eval) and ours loaded from its state_dict file."""
    import torchvision

    from maskrcnn.config import TorchvisionConfig
    from maskrcnn.detector import MaskRCNN

    torch.manual_seed(seed)
    tv = torchvision.models.detection.maskrcnn_resnet50_fpn(
        weights=None, weights_backbone=None, min_size=min_size, max_size=max_size).eval()
    with torch.no_grad():
        tv.roi_heads.box_predictor.cls_score.weight.mul_(cls_scale)
    torch.save(tv.state_dict(), weights_path)
    ours = MaskRCNN(TorchvisionConfig(IMAGE_MIN_DIM=min_size, IMAGE_MAX_DIM=max_size), device="cpu")
    ours.load_weights(weights_path)
    return tv, ours


def load_images(names=DEFAULT_IMAGES, folder: Path = BALLOON_VAL) -> list[np.ndarray]:
    from PIL import Image

    return [np.array(Image.open(folder / name).convert("RGB")) for name in names]


def _diff(name: str, ours: torch.Tensor, ref: torch.Tensor, note: str = "") -> StageDiff:
    ref_max = float(ref.abs().max()) if ref.numel() else 0.0
    if ours.shape != ref.shape:
        return StageDiff(name, float("inf"), ref_max, f"shapes {tuple(ours.shape)} vs {tuple(ref.shape)}")
    value = float((ours.float() - ref.float()).abs().max()) if ref.numel() else 0.0
    return StageDiff(name, value, ref_max, note)


def _capture(tv) -> tuple[dict[str, Any], list]:
    cap: dict[str, Any] = {}
    hooks = [
        tv.transform.register_forward_hook(lambda m, i, o: cap.__setitem__("input", o[0].tensors)),
        tv.backbone.register_forward_hook(lambda m, i, o: cap.__setitem__("features", o)),
        tv.rpn.head.register_forward_hook(lambda m, i, o: cap.__setitem__("rpn_head", o)),
        tv.rpn.register_forward_hook(lambda m, i, o: cap.__setitem__("proposals", o[0])),
        tv.roi_heads.box_predictor.register_forward_hook(lambda m, i, o: cap.__setitem__("box_predictor", o)),
        tv.roi_heads.mask_predictor.register_forward_hook(lambda m, i, o: cap.__setitem__("mask_logits", o)),
        # copies: torchvision's postprocess later replaces "masks" in these dicts by the pasted ones
        tv.roi_heads.register_forward_hook(
            lambda m, i, o: cap.__setitem__("detections", [dict(d) for d in o[0]])),
    ]
    return cap, hooks


def run_parity(tv, ours, images: list[np.ndarray], *, mask_threshold: float = 0.5) -> ParityResult:
    """Run both models on ``images`` (H×W×3 uint8) and compare every stage."""
    from torchvision.models.detection.rpn import concat_box_prediction_layers

    result = ParityResult()
    cap, hooks = _capture(tv)
    try:
        start = time.perf_counter()
        with torch.no_grad():
            device = next(tv.parameters()).device  # CPU or CUDA: both models on the same device
            tv_out = tv([torch.from_numpy(img).permute(2, 0, 1).to(device).float() / 255 for img in images])
        result.seconds["torchvision"] = time.perf_counter() - start
    finally:
        for hook in hooks:
            hook.remove()
    start = time.perf_counter()
    rec = ours.run_graph(images)
    result.seconds["ours"] = time.perf_counter() - start
    batch = rec["input.images"]
    add = result.stages.append

    add(_diff("input (normalized, resized, padded)", batch.tensor, cap["input"]))
    for ours_name, tv_name in LEVELS:
        add(_diff(f"fpn.{ours_name}", rec[f"fpn.{ours_name}"], cap["features"][tv_name]))
    tv_logits, tv_deltas = concat_box_prediction_layers(*cap["rpn_head"])
    add(_diff("rpn.objectness", rec["rpn.objectness"].reshape(-1), tv_logits.reshape(-1)))
    add(_diff("rpn.deltas", rec["rpn.deltas"].reshape(-1, 4), tv_deltas))
    for i, (p, q) in enumerate(zip(rec["rpn.proposals"], cap["proposals"])):
        add(_diff(f"rpn.proposals[{i}]", p, q))

    # the box branch on torchvision's own proposals, so that this stage is compared on equal inputs
    features = {name: rec[f"fpn.{name}"] for name, _ in LEVELS}
    heads = ours.network.roi_heads
    with torch.no_grad():
        pooled = heads.box_roi_pool(features, cap["proposals"], batch.image_sizes)
        class_logits, box_deltas = heads.box_predictor(heads.box_head(pooled))
    add(_diff("roi.class_logits (same proposals)", class_logits, cap["box_predictor"][0]))
    add(_diff("roi.box_deltas (same proposals)", box_deltas, cap["box_predictor"][1]))
    for i, (d, t) in enumerate(zip(rec["roi.detections"], cap["detections"])):
        add(_diff(f"roi.detections[{i}].boxes", d["boxes"], t["boxes"]))
        add(_diff(f"roi.detections[{i}].scores", d["scores"], t["scores"]))
        add(_diff(f"roi.detections[{i}].labels", d["labels"], t["labels"]))
    add(_diff("mask.logits", rec["mask.logits"], cap["mask_logits"]))
    add(_diff("mask.probs", rec["mask.probs"], torch.cat([t["masks"][:, 0] for t in cap["detections"]])))
    for i, (o, t) in enumerate(zip(rec["output"], tv_out)):
        add(_diff(f"output[{i}].boxes (original px)", o["boxes"], t["boxes"]))
        add(_diff(f"output[{i}].masks (pasted)", o["masks"], t["masks"][:, 0]))
        result.matches.append(match_detections(o, t, mask_threshold=mask_threshold))
    return result


def match_detections(ours: dict, ref: dict, *, mask_threshold: float = 0.5, min_iou: float = 0.98,
                     max_score_diff: float = 1e-3, min_mask_iou: float = 0.95) -> ImageMatch:
    """Greedy one-to-one matching of final detections: same class, box IoU, score, mask IoU."""
    n_ref, n_ours = len(ref["scores"]), len(ours["scores"])
    if n_ref == 0 or n_ours == 0:
        return ImageMatch(n_ref, n_ours, 0, 0.0, 0.0, 0.0)
    iou = box_iou(ref["boxes"].float(), ours["boxes"].float())
    iou[ref["labels"][:, None] != ours["labels"][None, :]] = -1
    used: set[int] = set()
    box_ious, score_diffs, mask_ious = [], [], []
    for i in range(n_ref):
        order = torch.argsort(iou[i], descending=True).tolist()
        j = next((j for j in order if j not in used), None)
        if j is None or iou[i, j] < min_iou:
            continue
        m1 = ref["masks"][i, 0] >= mask_threshold
        m2 = ours["masks"][j] >= mask_threshold
        union = (m1 | m2).sum().item()
        mask_iou = (m1 & m2).sum().item() / union if union else 1.0
        score_diff = abs(float(ref["scores"][i]) - float(ours["scores"][j]))
        if score_diff > max_score_diff or mask_iou < min_mask_iou:
            continue
        used.add(j)
        box_ious.append(float(iou[i, j]))
        score_diffs.append(score_diff)
        mask_ious.append(mask_iou)
    return ImageMatch(n_ref, n_ours, len(used), min(box_ious, default=0.0), max(score_diffs, default=0.0),
                      min(mask_ious, default=0.0))


def format_report(result: ParityResult) -> str:
    lines = [f"{'stage':42} {'max |ours - torchvision|':>26} {'max |torchvision|':>18}  note"]
    for s in result.stages:
        lines.append(f"{s.stage:42} {s.max_abs_diff:26.3g} {s.ref_max_abs:18.4g}  {s.note}")
    lines.append("")
    lines.append("final detections matched one to one (same class, box IoU >= 0.98, |score diff| <= 1e-3, "
                 "mask IoU >= 0.95 at 0.5):")
    for i, m in enumerate(result.matches):
        lines.append(f"  image {i}: torchvision {m.n_torchvision}, ours {m.n_ours}, matched {m.matched}; "
                     f"min box IoU {m.min_box_iou:.6f}, max score diff {m.max_score_diff:.2e}, "
                     f"min mask IoU {m.min_mask_iou:.6f}")
    lines.append("time: " + ", ".join(f"{k} {v:.1f} s" for k, v in result.seconds.items()))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=2, help="number of balloon val images (1 or 2)")
    parser.add_argument("--min-size", type=int, default=800)
    parser.add_argument("--max-size", type=int, default=1333)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--portrait", action="store_true", help="use a portrait image as the second image")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                        help="run both models there (cuda: TF32 is switched off, so that fp32 means fp32)")
    args = parser.parse_args(argv)
    if args.device == "cuda":
        if not torch.cuda.is_available():
            raise SystemExit("--device cuda: no CUDA device available")
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        tv, ours = build_pair(Path(tmp) / "torchvision_maskrcnn.pth", seed=args.seed, min_size=args.min_size,
                              max_size=args.max_size)
        tv, ours = tv.to(args.device), ours.to(args.device)
        names = (DEFAULT_IMAGES[0], PORTRAIT) if args.portrait else DEFAULT_IMAGES
        images = load_images(names[: args.images])
        result = run_parity(tv, ours, images)
    print(format_report(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
