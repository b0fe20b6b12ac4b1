"""ONNX export of a Mask R-CNN and an onnxruntime detector with matterport's ``detect`` output.

Input-size policy: **one exported graph serves one image size.** The graph takes one RGB image
``image: uint8 [3, H, W]`` of exactly the export size ``(H, W)`` (the ``--size``; default
:func:`default_input_size`) and contains everything up to the mask logits:

* preprocessing (normalization by MEAN_PIXEL/PIXEL_STD, the config's resize, the batch padding)
  — for a fixed input size the resize scale and the padded size are constants;
* backbone + FPN, anchors (constants), RPN proposal layer with its NMS, ROI box head, the
  detection layer (per-class NMS), the mask head on the kept detections;
* outputs ``boxes float32 [N, 4]`` (xyxy, pixels of the input image), ``labels int64 [N]``,
  ``scores float32 [N]``, ``mask_probs float32 [N, M, M]`` (sigmoid of the detected class's mask,
  ``M = MASK_SHAPE``), ``N ≤ DETECTION_MAX_INSTANCES`` varies per image.

Outside the graph (in :class:`OnnxDetector`): pasting the ``M × M`` masks into full-size masks
(:func:`maskrcnn.model.postprocess.paste_masks`, the same function the PyTorch model uses) and
the conversion to matterport's ``rois/class_ids/scores/masks``. Pasting stays outside because it
produces ``N × H × W`` floats and PyTorch's vectorized pasting picks its chunking from the data.

Zero detections (an empty frame, a high threshold) give empty results like the PyTorch model's:
no shape of the example image is baked into the traced graph (tested with 0, 1 and many detections).

Images of another size: an :class:`OnnxDetector` refuses them unless built with ``letterbox=True``
(``OnnxDetector(path, letterbox=True)``), which scales the image to fit the export size (aspect kept), pads it with black at the
bottom/right and maps the results back — results are then close to, not the same as, the
PyTorch model's on the original image. For a video every frame has the same size: export with
``--size`` equal to the frame size.

What does not export: training (losses, target sampling), ``run_graph`` probes, batches of more
than one image per call (loop over images), a dynamic input size, and ``"crop"`` resizing
(a training mode). The export uses PyTorch's TorchScript-based ONNX exporter
(``torch.onnx.export(..., dynamo=False)``) with torchvision's ONNX symbolics for ``roi_align``
and ``nms`` (opset ≥ 16 for ``aligned=False`` RoIAlign).

A matterport-architecture model (``ARCHITECTURE = "matterport"``, an ``.h5``) exports differently:
its graph takes the **molded** image (molding and unmolding stay outside, in :class:`OnnxDetector`),
and in ``"square"`` mode one graph takes images of any size; see :mod:`.export_onnx_matterport`.
:func:`export_onnx` and :class:`OnnxDetector` choose by the architecture (the ``maskrcnn.architecture``
metadata).

Needs the optional packages ``onnx`` and ``onnxruntime`` (``pip install "maskrcnn[onnx]"``).
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from ..errors import ImageError, MaskRCNNError
from .detector_protocol import InspectableDetector
from .onnx_file import DEFAULT_OPSET, META_PREFIX, check_size, default_input_size, require_onnx, write_graph

__all__ = ["DEFAULT_OPSET", "OnnxDetector", "OnnxGraph", "check_size", "default_input_size", "export_onnx",
           "require_onnx", "write_graph"]

INPUT_NAME = "image"
OUTPUT_NAMES = ("boxes", "labels", "scores", "mask_probs")
class OnnxGraph(nn.Module):
    """The traced part of the model: ``image uint8 [3,H,W]`` → ``(boxes, labels, scores, mask_probs)``.

    Runs the same stages as the network's inference forward (:class:`~maskrcnn.model.network.MaskRCNNNetwork`),
    with the detection thresholds of its config at export time, minus mask pasting.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, image: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        from ..model.preprocess import resize_boxes

        m = self.model
        batch, _ = m.preprocessor([image], None, training=False)
        features = m.backbone(batch.tensor)
        proposals, _ = m.rpn(batch.tensor.shape[-2:], batch.image_sizes, features, None)
        detections, _ = m.roi_heads(features, proposals, batch.image_sizes, detection=m.detection_settings())
        det = detections[0]
        boxes = resize_boxes(det["boxes"], batch.image_sizes[0], batch.original_sizes[0])
        return boxes, det["labels"], det["scores"], det["mask_probs"]


def export_onnx(
    model: InspectableDetector,
    out: str | os.PathLike[str],
    *,
    size: Sequence[int] | None = None,
    opset: int = DEFAULT_OPSET,
    check: bool = True,
) -> Path:
    """Write ``model`` (a :class:`~maskrcnn.detector.MaskRCNN`) as an ONNX graph for ``size = (H, W)``
    (a matterport-architecture model: :func:`.export_onnx_matterport.export_matterport`).

    The file is written under a temporary name and renamed when complete. Metadata (class
    names, input size, MASK_THRESHOLD, the config) is stored in the ONNX ``metadata_props``.
    ``check``: run ``onnx.checker`` on the result. Returns the path.
    """
    config = model.config
    if opset < 16:
        raise MaskRCNNError(f"--opset {opset}: RoIAlign with aligned=False needs opset >= 16")
    if model.network.architecture == "matterport":
        from .export_onnx_matterport import export_matterport

        return export_matterport(model, out, size=size, opset=opset, check=check)
    require_onnx()
    if config.IMAGE_RESIZE_MODE == "crop":
        raise MaskRCNNError("IMAGE_RESIZE_MODE='crop' is a training mode; export with 'square' resizing")
    height, width = check_size(config, size)
    example = torch.zeros((3, height, width), dtype=torch.uint8, device=model.network.device)
    meta = {"input_size": json.dumps([height, width])}
    return write_graph(model, OnnxGraph(model.network), (example,), out, input_names=[INPUT_NAME],
                       output_names=list(OUTPUT_NAMES), meta=meta, opset=opset, check=check)


class OnnxDetector:
    """Run an exported graph with onnxruntime; :meth:`detect` returns matterport's result dicts.

    A matterport graph (``architecture == "matterport"``) is run by
    :class:`~.export_onnx_matterport.MatterportOnnxRunner`: each image is molded as the PyTorch model
    molds it (any size in ``"square"`` mode) and its detections unmolded; ``letterbox`` does not apply.

    Args:
        path: the ``.onnx`` file written by :func:`export_onnx`.
        letterbox: accept images of any size (scaled to fit the export size, padded with black, the
            results mapped back); otherwise an image of another size raises
            :class:`~maskrcnn.errors.ImageError`.
        providers: onnxruntime execution providers (default: CPU).
        threads: onnxruntime intra-op threads (default: onnxruntime's choice).
    """

    def __init__(self, path: str | os.PathLike[str], *, letterbox: bool = False,
                 providers: Sequence[str] | None = None, threads: int | None = None) -> None:
        require_onnx()
        import onnxruntime as ort

        self.letterbox = bool(letterbox)
        self.path = Path(path)
        if not self.path.is_file():
            raise MaskRCNNError(f"{self.path}: ONNX file not found")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = int(threads)
        try:
            self.session = ort.InferenceSession(str(self.path), options,
                                                providers=list(providers or ["CPUExecutionProvider"]))
        except Exception as exc:  # onnxruntime raises its own exception types
            raise MaskRCNNError(f"{self.path}: not a loadable ONNX model ({exc})") from None
        meta = self.session.get_modelmeta().custom_metadata_map
        if META_PREFIX + "input_size" not in meta:
            raise MaskRCNNError(f"{self.path}: not written by maskrcnn export (no {META_PREFIX}input_size metadata)")
        self.input_size: tuple[int, int] = tuple(json.loads(meta[META_PREFIX + "input_size"]))
        self.class_names: list[str] = json.loads(meta.get(META_PREFIX + "class_names", "[]"))
        self.mask_threshold = float(json.loads(meta.get(META_PREFIX + "mask_threshold", "0.5")))
        self.architecture = meta.get(META_PREFIX + "architecture", "torchvision")
        self._matterport = None
        if self.architecture == "matterport":  # molding and unmolding outside the graph
            from .export_onnx_matterport import MatterportOnnxRunner

            if self.letterbox:
                raise MaskRCNNError(f"{self.path}: letterbox=True is for graphs of the project's network; a "
                                    f"matterport graph molds each image itself (any size in 'square' mode)")
            self._matterport = MatterportOnnxRunner(self.session, meta, prefix=META_PREFIX,
                                                    mask_threshold=self.mask_threshold)

    def run(self, image: np.ndarray) -> dict[str, np.ndarray]:
        """Raw outputs for one ``H×W×3`` uint8 RGB image of exactly the export size (a matterport graph:
        any image that molds to the export's molded size; outputs ``detections``, ``mask_probs``, ``window``)."""
        image = _check_image(image, 0)
        if self._matterport is not None:
            return self._matterport.run(image, 0)
        if tuple(image.shape[:2]) != self.input_size:
            raise ImageError(f"image of size {image.shape[0]}x{image.shape[1]}: this ONNX model was exported for "
                             f"{self.input_size[0]}x{self.input_size[1]} (re-export with --size "
                             f"{image.shape[0]} {image.shape[1]}, or use OnnxDetector(path, letterbox=True))")
        chw = np.ascontiguousarray(image.transpose(2, 0, 1))
        outputs = self.session.run(list(OUTPUT_NAMES), {INPUT_NAME: chw})
        return dict(zip(OUTPUT_NAMES, outputs))

    def detect(self, images: Sequence[np.ndarray], *, letterbox: bool | None = None) -> list[dict[str, np.ndarray]]:
        """matterport's results per image: ``rois [N,(y1,x1,y2,x2)]`` int32, ``class_ids`` int32,
        ``scores`` float32, ``masks`` H×W×N bool — as :meth:`MaskRCNN.detect` computes them (no
        detection: ``rois [0, 4]``, ``masks`` H×W×0).

        Images of another size than the export's need ``OnnxDetector(path, letterbox=True)``;
        ``letterbox`` here is the old place of that option (deprecated: it warns, then applies).
        """
        if letterbox is not None:
            warnings.warn("OnnxDetector.detect(letterbox=...) is deprecated: letterboxing is a property of the "
                          "detector, OnnxDetector(path, letterbox=True)", DeprecationWarning, stacklevel=2)
        else:
            letterbox = self.letterbox
        if isinstance(images, np.ndarray) and images.ndim == 3:
            raise ImageError("images: detect() takes a list of images; wrap a single image as [image]")
        results = []
        for index, image in enumerate(images):
            image = _check_image(image, index)
            if self._matterport is not None:
                results.append(self._matterport.detect(image, index))
                continue
            height, width = image.shape[:2]
            scale = (1.0, 1.0)
            if (height, width) != self.input_size:
                if not letterbox:
                    raise ImageError(
                        f"images[{index}]: size {height}x{width}, but this ONNX model was exported for "
                        f"{self.input_size[0]}x{self.input_size[1]}; re-export with --size {height} {width} or "
                        f"use OnnxDetector(path, letterbox=True)")
                image, scale = _letterbox(image, self.input_size)
            raw = self.run(image)
            boxes = torch.from_numpy(raw["boxes"]).float()
            if scale != (1.0, 1.0):  # back to the original image, cut off the black padding
                boxes = boxes / torch.tensor([scale[1], scale[0], scale[1], scale[0]])
                boxes = torch.stack([boxes[:, 0].clamp(0, width), boxes[:, 1].clamp(0, height),
                                     boxes[:, 2].clamp(0, width), boxes[:, 3].clamp(0, height)], dim=1)
            results.append(self._to_matterport(boxes, raw, (height, width)))
        return results

    def _to_matterport(self, boxes: Tensor, raw: dict[str, np.ndarray], size: tuple[int, int]) -> dict:
        from ..model.postprocess import paste_masks

        probs = torch.from_numpy(raw["mask_probs"]).float()
        masks = paste_masks(probs, boxes, size) if probs.shape[0] else torch.zeros((0,) + size)
        rois = np.around(boxes.numpy()[:, [1, 0, 3, 2]]).astype(np.int32).reshape(-1, 4)
        keep = (rois[:, 2] - rois[:, 0]) * (rois[:, 3] - rois[:, 1]) > 0  # as MaskRCNN.detect
        masks = (masks >= self.mask_threshold).numpy()[keep]
        return {
            "rois": rois[keep],
            "class_ids": raw["labels"].astype(np.int32)[keep],
            "scores": raw["scores"].astype(np.float32)[keep],
            "masks": np.ascontiguousarray(np.transpose(masks, (1, 2, 0))),
        }


def _check_image(image: Any, index: int) -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        what = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
        raise ImageError(f"images[{index}]: expected an H×W×3 uint8 RGB array, got {what}")
    return image


def _letterbox(image: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, tuple[float, float]]:
    """Scale ``image`` to fit ``size`` (aspect kept, bilinear), pad with black bottom/right.

    Returns the canvas and the ``(y, x)`` scale factors actually applied."""
    from PIL import Image

    height, width = image.shape[:2]
    scale = min(size[0] / height, size[1] / width)
    new_h, new_w = min(size[0], round(height * scale)), min(size[1], round(width * scale))
    resized = np.asarray(Image.fromarray(image).resize((new_w, new_h), Image.BILINEAR))
    canvas = np.zeros((size[0], size[1], 3), dtype=np.uint8)
    canvas[:new_h, :new_w] = resized
    return canvas, (new_h / height, new_w / width)
