"""Parity with matterport's own Mask R-CNN: loads matterport ``.h5`` weights, compares every stage.

The reference is a folder of ``.npz`` written by matterport's harness
(``../shared/reference/matterport/reference.py --out DIR``, README there), or the compact CI fixture
(``tests/fixtures/matterport/r50_c81_s0``). Ours: ``maskrcnn.MaskRCNN(MatterportConfig(...))`` with
the same ``.h5`` loaded; its intermediates come from ``run_graph`` probes named ``matterport.<key>``
with the ``.npz`` layouts (anchors [1, A, 4] normalized, rpn_class [1, A, 2], rpn_bbox [1, A, 4],
proposals [1, R, 4], mrcnn_class [1, R, C], mrcnn_bbox [1, R, C, 4], detections [1, D, 6],
mrcnn_mask [1, D, 28, 28, C], fpn_p2..fpn_p6 NHWC, molded_image [1, h, w, 3]); final results from
``detect()``. Prints a per-stage table (max/mean abs difference, ok/FAIL against the tolerance) and
the final-detection acceptance per image (``maskrcnn.evaluation.parity``). Exit status 1 on any FAIL.

    python benchmarks/matterport_parity.py --reference /tmp/mpref/r50_s0 --h5 /tmp/mpref/r50_s0.h5
    python benchmarks/matterport_parity.py --reference tests/fixtures/matterport/r50_c81_s0 --seeded r50_c81_s0
    python benchmarks/matterport_parity.py --reference /tmp/mpref/r50_pad64 --h5 /tmp/mpref/r50_s0.h5 \
        --image-resize-mode pad64 --image-min-dim 512
    python benchmarks/matterport_parity.py --reference /tmp/mpref/r50_s0 --self-check   # the script itself
    python benchmarks/matterport_parity.py --reference tests/fixtures/matterport/r50_c81_s0 --versus DIR

BACKBONE and NUM_CLASSES come from the ``.h5``; the resize flags must be the reference run's.
``--edge-flips-ok``: boundary cases pass (detections/masks that differ only through matterport's ROI
pooling at the far image edge, ``maskrcnn.evaluation.parity_edges``; detections and proposals wholly
in the padding, where scores are tied up to float noise); they are listed either way.
``--self-check`` compares the reference with itself (must pass) and with a perturbed copy (must fail),
without a model. ``--versus DIR`` compares matterport with matterport: another reference run on the same
``.h5`` (say, on another CPU: TensorFlow's convolutions round differently there) takes our place, with
the same report, so the two can be told apart from what float rounding does to matterport itself.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

from maskrcnn.evaluation.parity import FPN_KEYS, compare_image, format_report
from maskrcnn.evaluation.parity_compact import expand_compact

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("MASKRCNN_SHARED_DATA", ROOT.parent / "shared" / "data"))
FIXTURES = ROOT / "tests" / "fixtures" / "matterport"
#: The ``.npz`` keys ours provides as ``matterport.<key>`` probes.
PROBE_KEYS = ("molded_image", "anchors", *FPN_KEYS, "rpn_class", "rpn_bbox", "proposals", "mrcnn_class",
              "mrcnn_bbox", "detections", "mrcnn_mask")


def _numpy(value):
    if isinstance(value, (list, tuple)) and len(value) == 1:
        value = value[0]
    if hasattr(value, "detach"):
        value = value.detach().float().cpu().numpy() if value.is_floating_point() else value.detach().cpu().numpy()
    return np.asarray(value)


def ours(model, image: np.ndarray, keys=PROBE_KEYS) -> dict[str, np.ndarray]:
    """Our intermediates (``run_graph`` probes ``matterport.<key>``) and ``detect()``'s result for one
    ``H×W×3`` uint8 image, as numpy in the reference ``.npz`` layouts. A probe ours lacks is left out
    (the stage then fails as missing); ``fpn_pN`` falls back to the ``fpn.pN`` probe (NCHW → NHWC)."""
    rec = model.run_graph([image])
    out: dict[str, np.ndarray] = {}
    for key in keys:
        if f"matterport.{key}" in rec:
            out[key] = _numpy(rec[f"matterport.{key}"])
        elif key in FPN_KEYS and f"fpn.{key[4:]}" in rec:
            value = _numpy(rec[f"fpn.{key[4:]}"])
            out[key] = value.transpose(0, 2, 3, 1) if value.ndim == 4 and value.shape[1] == 256 else value
    r = model.detect([image])[0]
    out.update({k: np.asarray(r[k]) for k in ("rois", "class_ids", "scores", "masks")})
    return out


def h5_layout(path: str | Path) -> tuple[str, int]:
    """(backbone, NUM_CLASSES) of a matterport ``.h5``: resnet101 when it has ``res4w_branch2a``."""
    import h5py

    with h5py.File(path, "r") as f:
        g = f["model_weights"] if "layer_names" not in f.attrs and "model_weights" in f else f
        names = {n.decode() if isinstance(n, bytes) else str(n) for n in g.attrs["layer_names"]}
        num_classes = int(g["mrcnn_class_logits/mrcnn_class_logits/bias:0"].shape[0])
    return ("resnet101" if "res4w_branch2a" in names else "resnet50"), num_classes


def build_model(h5: str | Path, *, device: str = "cpu", **overrides):
    """``MaskRCNN(MatterportConfig(BACKBONE=..., NUM_CLASSES=..., **overrides))`` with ``h5`` loaded."""
    from maskrcnn import MaskRCNN
    from maskrcnn.config import MatterportConfig

    backbone, num_classes = h5_layout(h5)
    config = MatterportConfig(**{"BACKBONE": backbone, "NUM_CLASSES": num_classes, **overrides})
    model = MaskRCNN(config, device=device)
    model.load_weights(str(h5))
    return model


def load_reference(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as data:
        return {k: data[k] for k in data.files if k != "latency_s"}


def reference_image(ref: dict, data: Path = DATA) -> np.ndarray:
    """The image the reference ran on: its ``image`` key, or ``source`` under the shared data folder
    decoded as matterport's ``Dataset.load_image`` (skimage.io.imread: no EXIF rotation; gray and
    RGBA to RGB) with PIL, checked against the fixture's ``image_sha256``."""
    if "image" in ref:
        return ref["image"]
    from PIL import Image

    source = Path(data) / str(ref["source"])
    if not source.is_file():
        raise SystemExit(f"{source}: the reference image is not there (set MASKRCNN_SHARED_DATA)")
    image = np.asarray(Image.open(source).convert("RGB"))
    if "image_sha256" in ref and hashlib.sha256(image.tobytes()).hexdigest() != str(ref["image_sha256"]):
        raise SystemExit(f"{source}: decoded pixels differ from the ones matterport ran on (image_sha256)")
    return image


def perturbed(ref: dict) -> dict:
    """A copy with small errors in several stages and one final score off by 0.01 (must fail)."""
    out = dict(ref)
    for key in ("fpn_p3", "rpn_bbox", "mrcnn_bbox", "mrcnn_mask"):
        if key in out:
            out[key] = out[key] + np.float32(0.05)
    if len(out["scores"]):
        out["scores"] = out["scores"].copy()
        out["scores"][0] -= np.float32(0.01)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--reference", nargs="+", required=True, help="folders of reference .npz (or single .npz files)")
    w = p.add_mutually_exclusive_group()
    w.add_argument("--h5", help="the matterport .h5 the reference ran with")
    w.add_argument("--seeded", metavar="NAME", help="regenerate it without TF from tests/fixtures/matterport/NAME_*")
    w.add_argument("--self-check", action="store_true", help="reference vs itself and vs a perturbed copy")
    w.add_argument("--versus", nargs="+", metavar="DIR",
                   help="matterport against matterport: another reference run's .npz (the same .h5, e.g. on another "
                        "CPU) in place of ours, matched to --reference by file name")
    p.add_argument("--image-resize-mode", choices=["none", "square", "pad64", "crop"])
    p.add_argument("--image-min-dim", type=int)
    p.add_argument("--image-max-dim", type=int)
    p.add_argument("--edge-flips-ok", action="store_true",
                   help="boundary cases pass: a detection on one side only from an edge-sensitive ROI "
                        "(maskrcnn.evaluation.parity_edges) or wholly in the padding; listed either way")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    files = [f for r in args.reference for f in (sorted(Path(r).glob("*.npz")) if Path(r).is_dir() else [Path(r)])]
    if not files:
        raise SystemExit(f"--reference {' '.join(args.reference)}: no .npz files")

    if args.self_check:
        results = []
        for f in files:
            ref = load_reference(f)
            copy = expand_compact(ref) if "masks_rle" in ref else ref   # the compact CI fixture
            results.append(compare_image(copy, ref, name=f"{f.name} vs itself"))
            results.append(compare_image(perturbed(copy), ref, name=f"{f.name} vs a perturbed copy"))
        print(format_report(results))
        good = all(r.ok for r in results[0::2]) and not any(r.ok for r in results[1::2])
        print(f"self-check {'passed' if good else 'FAILED'}: identical copies pass, perturbed copies fail")
        return 0 if good else 1
    if args.versus:
        others = {f.name: f for r in args.versus for f in (sorted(Path(r).glob("*.npz")) if Path(r).is_dir() else [Path(r)])}
        results = []
        for f in files:
            if f.name not in others:
                raise SystemExit(f"--versus {' '.join(args.versus)}: no {f.name}")
            ref, other = load_reference(f), load_reference(others[f.name])
            other = expand_compact(other) if "masks_rle" in other else other  # a compact reference compares as is
            results.append(compare_image(other, ref, name=f"{others[f.name]} vs {f}", edge_flips_ok=args.edge_flips_ok))
        print(format_report(results))
        return 0 if all(r.ok for r in results) else 1
    if not (args.h5 or args.seeded):
        raise SystemExit("one of --h5, --seeded, --self-check is needed")

    import torch

    torch.set_num_threads(args.threads)
    overrides = {k.upper(): v for k, v in vars(args).items() if k.startswith("image_") and v is not None}
    with tempfile.TemporaryDirectory() as tmp:
        h5 = args.h5
        if args.seeded:
            sys.path.insert(0, str(ROOT / "tests" / "detector"))
            import matterport_seeded as ms

            table = ms.load_checksums(FIXTURES / f"{args.seeded}_weights.json")
            h5 = ms.write_seeded_h5(Path(tmp) / f"{args.seeded}.h5", backbone=table["backbone"],
                                    num_classes=table["num_classes"], seed=table["seed"],
                                    calibrated_npz=FIXTURES / f"{args.seeded}_calibration.npz")
        model = build_model(h5, device=args.device, **overrides)
        results = []
        for f in files:
            ref = load_reference(f)
            results.append(compare_image(ours(model, reference_image(ref)), ref, name=str(f),
                                         edge_flips_ok=args.edge_flips_ok))
    print(format_report(results))
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
