"""ONNX export of a matterport-architecture model (``ARCHITECTURE = "matterport"``) and its runner.

The graph holds matterport's network from the molded image to the detections; molding and unmolding
run outside it with the project's own functions, so that :class:`~.export_onnx.OnnxDetector` gives what
:meth:`MaskRCNN.detect <maskrcnn.detector.MaskRCNN.detect>` gives for the same model (up to float rounding):

* inputs ``molded float32 [1, 3, Hm, Wm]`` (``mold_inputs``' output: resized, padded, minus MEAN_PIXEL)
  and ``window float32 [4]`` (the image's window in the molded image, normalized y1x1y2x2: the detection
  layer clips to it, and in ``"square"`` mode it differs with the image's size);
* inside: backbone + FPN, anchors (constants of ``Hm × Wm``), the proposal layer (top-k, NMS, zero rows
  up to POST_NMS_ROIS_INFERENCE as matterport's), box head, the detection layer (per-class NMS) with the
  config's DETECTION_* values at export time, the mask head on the detections;
* outputs ``detections float32 [N, 6]`` (normalized y1x1y2x2 of the molded image, class id, score;
  matterport's layout without the zero rows) and ``mask_probs float32 [N, 28, 28]`` (sigmoid mask of each
  detection's class), ``N <= DETECTION_MAX_INSTANCES`` (0 gives empty outputs);
* outside (:class:`MatterportOnnxRunner`): :class:`~maskrcnn.model.matterport.preprocess.MatterportPreprocessor`
  (skimage's resize in float64) and :func:`~maskrcnn.model.matterport.unmold.unmold_detections`.

Size policy: the graph is made for one molded size. In ``"square"`` mode every image molds to
``IMAGE_MAX_DIM²``, so the graph takes images of **any size**; in ``"pad64"`` / ``"none"`` mode an image
must mold to the export's molded size (``--size`` is an image size; another size raises
:class:`~maskrcnn.errors.ImageError` naming both). The metadata keys ``maskrcnn.architecture``,
``maskrcnn.molded_size`` and ``maskrcnn.preprocessor`` (MEAN_PIXEL, resize mode, dims) carry what the
runner needs.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from ..errors import ImageError, MaskRCNNError
from ..model.matterport.detection import refine_detections
from ..model.matterport.geometry import norm_boxes
from ..model.matterport.preprocess import MatterportPreprocessor
from ..model.matterport.unmold import unmold_detections
from .detector_protocol import InspectableDetector
from .onnx_file import check_size, require_onnx, write_graph

INPUT_NAMES = ("molded", "window")
OUTPUT_NAMES = ("detections", "mask_probs")


class MatterportOnnxGraph(nn.Module):
    """``(molded [1,3,Hm,Wm], window [4])`` → ``(detections [N,6], mask_probs [N,28,28])`` (module docstring).

    The stages of the network's matterport forward, with the detection thresholds of its config at
    export time; the mask head runs on the ``N`` detections plus one spare ROI (the window, dropped
    after), so that no tensor in the graph is empty when nothing is detected.
    """

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network

    def forward(self, molded: Tensor, window: Tensor) -> tuple[Tensor, Tensor]:
        m = self.network
        heads = m.roi_heads
        shape = tuple(int(v) for v in molded.shape[-2:])
        features = list(m.backbone(molded).values())
        proposals, _ = m.rpn(features, shape)
        logits, deltas = heads.classify(features, proposals, shape)
        settings = m.detection_settings()
        detections = refine_detections(
            proposals[0], torch.softmax(logits[0], dim=-1), deltas[0], window, std_dev=heads.bbox_std_dev.tolist(),
            min_confidence=settings.min_confidence, nms_threshold=settings.nms_threshold,
            max_instances=settings.max_instances, pad=False)
        rois = torch.cat([detections[:, :4], window[None]])
        mask_logits = heads.masks(features, rois[None], shape)[:-1]  # [N, C, 28, 28]
        class_ids = detections[:, 4].long()[:, None, None, None].expand(-1, 1, *mask_logits.shape[-2:])
        return detections, torch.sigmoid(mask_logits.gather(1, class_ids)[:, 0])


def export_matterport(model: InspectableDetector, out: str | os.PathLike[str], *, size: Sequence[int] | None,
                      opset: int, check: bool) -> Path:
    """Write a matterport-architecture ``model`` for images of ``size = (H, W)`` (in ``"square"`` mode any
    size works: the size only sets the molded size in ``"pad64"`` / ``"none"``). See the module docstring."""
    require_onnx()
    config = model.config
    height, width = check_size(config, size)
    network = model.network
    preprocessor = network.preprocessor
    molded = preprocessor.molded_size(height, width)
    if molded[0] % 32 or molded[1] % 32:
        raise MaskRCNNError(f"--size {height} {width}: IMAGE_RESIZE_MODE={config.IMAGE_RESIZE_MODE!r} molds it to "
                            f"{molded[0]}x{molded[1]}; matterport's FPN needs multiples of 32")
    example = torch.zeros((1, 3, *molded), dtype=torch.float32, device=network.device)
    window = torch.tensor([0.0, 0.0, 1.0, 1.0], device=network.device)
    meta = {
        "architecture": "matterport",
        "input_size": json.dumps([height, width]),
        "molded_size": json.dumps(list(molded)),
        "preprocessor": json.dumps({"mean": [float(v) for v in preprocessor.mean],
                                    "resize_mode": preprocessor.resize_mode, "min_dim": preprocessor.min_dim,
                                    "max_dim": preprocessor.max_dim, "min_scale": preprocessor.min_scale}),
    }
    return write_graph(model, MatterportOnnxGraph(network), (example, window), out, input_names=list(INPUT_NAMES),
                       output_names=list(OUTPUT_NAMES), meta=meta, opset=opset, check=check)


class MatterportOnnxRunner:
    """Molding, the onnxruntime session and unmolding for :class:`~.export_onnx.OnnxDetector` (matterport graphs).

    Args:
        session: the onnxruntime session; meta: the file's ``maskrcnn.*`` metadata (keys with ``prefix``);
        mask_threshold: MASK_THRESHOLD at export time.
    """

    def __init__(self, session: Any, meta: dict[str, str], *, prefix: str, mask_threshold: float) -> None:
        self.session = session
        self.molded_size: tuple[int, int] = tuple(json.loads(meta[prefix + "molded_size"]))
        settings = json.loads(meta[prefix + "preprocessor"])
        self.preprocessor = MatterportPreprocessor(**settings)
        self.mask_threshold = float(mask_threshold)

    def mold(self, image: np.ndarray, index: int) -> tuple[np.ndarray, np.ndarray, tuple[int, int, int, int]]:
        """``H×W×3`` uint8 → (``molded [1,3,Hm,Wm]``, normalized ``window [4]``, pixel window), as the
        PyTorch model molds it; an image that molds to another size raises :class:`ImageError`."""
        height, width = image.shape[:2]
        prep = self.preprocessor
        size = prep.molded_size(height, width)
        if size != self.molded_size:
            raise ImageError(
                f"images[{index}]: size {height}x{width} molds to {size[0]}x{size[1]} (IMAGE_RESIZE_MODE="
                f"{prep.resize_mode!r}), but this ONNX model was exported for molded size "
                f"{self.molded_size[0]}x{self.molded_size[1]}; re-export with --size {height} {width} "
                f"(or export with IMAGE_RESIZE_MODE='square', which takes any size)")
        batch, _ = prep([torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))])
        window = batch.windows[0]
        normalized = norm_boxes(torch.tensor(window, dtype=torch.float32), self.molded_size)
        return batch.tensor.numpy(), normalized.numpy(), window

    def _run(self, image: np.ndarray, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[int, int, int, int]]:
        """Mold ``image`` and run the graph: ``(detections [N,6], mask_probs [N,28,28], window [4], pixel window)``."""
        molded, window, pixel_window = self.mold(image, index)
        detections, mask_probs = self.session.run(list(OUTPUT_NAMES), {"molded": molded, "window": window})
        return detections, mask_probs, window, pixel_window

    def run(self, image: np.ndarray, index: int) -> dict[str, np.ndarray]:
        """Raw outputs ``detections [N,6]``, ``mask_probs [N,28,28]`` and the ``window [4]`` the image was given."""
        detections, mask_probs, window, _ = self._run(image, index)
        return {"detections": detections, "mask_probs": mask_probs, "window": window}

    def detect(self, image: np.ndarray, index: int) -> dict[str, np.ndarray]:
        """matterport's result dict for one image, unmolded as :meth:`MaskRCNN.detect` unmolds it."""
        from ..detector.maskrcnn import _to_matterport

        detections, mask_probs, _, pixel_window = self._run(image, index)
        r = unmold_detections(torch.from_numpy(detections), torch.from_numpy(mask_probs),
                              original_shape=image.shape[:2], image_shape=self.molded_size, window=pixel_window)
        out = {"boxes": r["rois"][:, [1, 0, 3, 2]].float(), "labels": r["class_ids"], "scores": r["scores"],
               "masks": r["masks"].float()}
        return _to_matterport(out, self.mask_threshold)
