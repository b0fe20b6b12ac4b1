"""Writing and checking an ONNX file of a Mask R-CNN: what both exports share (the project's network,
:mod:`.export_onnx`, and matterport's, :mod:`.export_onnx_matterport`).

* :func:`require_onnx`: a clear error when ``onnx`` / ``onnxruntime`` are missing;
* :func:`default_input_size` / :func:`check_size`: the export's input image size;
* :func:`write_graph`: traces a graph module into a file, written under a temporary name and renamed
  when complete, with the model's metadata (class names, MASK_THRESHOLD, config) under ``maskrcnn.*``.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import Tensor, nn

from ..errors import MaskRCNNError
from ..fileio import AtomicFile
from .detector_protocol import InspectableDetector

DEFAULT_OPSET = 17
#: Prefix of the metadata keys (``metadata_props``) the exports write and the runners read.
META_PREFIX = "maskrcnn."


def require_onnx() -> None:
    """Raise a clear :class:`MaskRCNNError` when ``onnx`` / ``onnxruntime`` are not installed."""
    missing = []
    for name in ("onnx", "onnxruntime"):
        try:
            __import__(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise MaskRCNNError(f"ONNX export/inference needs {' and '.join(missing)}: "
                            f"pip install 'maskrcnn[onnx]' (or pip install onnx onnxruntime)")


def default_input_size(config: Any) -> tuple[int, int]:
    """The export size when none is given: ``IMAGE_MAX_DIM²`` for ``square``/``pad64``/``none``
    resizing, ``IMAGE_MIN_DIM × IMAGE_MAX_DIM``-capped landscape 3:4 for ``shortest_edge``
    (``800 × 1067`` with torchvision's 800/1333)."""
    mode = config.IMAGE_RESIZE_MODE
    if mode == "shortest_edge":
        short = int(config.IMAGE_MIN_DIM)
        return short, min(int(config.IMAGE_MAX_DIM), int(round(short * 4 / 3)))
    side = int(config.IMAGE_MAX_DIM or config.IMAGE_MIN_DIM)
    return side, side


def check_size(config: Any, size: Sequence[int] | None) -> tuple[int, int]:
    """The export's input image size ``(H, W)``: ``size`` checked, or :func:`default_input_size`."""
    if size is None:
        size = default_input_size(config)
    if len(size) != 2 or min(int(s) for s in size) < 32:
        raise MaskRCNNError(f"--size: expected H W of at least 32 pixels, got {list(size)}")
    return int(size[0]), int(size[1])


def write_graph(model: InspectableDetector, graph: nn.Module, example: tuple[Tensor, ...],
                out: str | os.PathLike[str], *, input_names: list[str], output_names: list[str],
                meta: dict[str, str], opset: int, check: bool) -> Path:
    """Trace ``graph`` on ``example`` into ``out`` (written under a temporary name, renamed when complete).

    Every output's first axis is dynamic (``detections``). ``meta`` plus the class names,
    MASK_THRESHOLD and the config are stored in ``metadata_props`` under ``maskrcnn.*``.
    """
    import onnx

    config = model.config
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    network = model.network
    was_training = network.training
    network.eval()
    graph.eval()
    target = AtomicFile(out)
    tmp = str(target.tmp)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # TracerWarnings: shapes are constant by design (fixed size)
            torch.onnx.export(
                graph, example, tmp, dynamo=False, opset_version=opset, input_names=input_names,
                output_names=output_names, do_constant_folding=True,
                dynamic_axes={name: {0: "detections"} for name in output_names},
            )
        proto = onnx.load(tmp)
        meta = {
            **meta,
            "class_names": json.dumps(list(model.class_names)),
            "mask_threshold": json.dumps(float(config.MASK_THRESHOLD)),
            "config_class": type(config).__name__,
            "config": json.dumps(config.to_dict()),
        }
        for key, value in meta.items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = META_PREFIX + key, value
        if check:
            onnx.checker.check_model(proto)
        onnx.save(proto, tmp)
        target.commit()
    finally:
        network.train(was_training)
        target.discard()
    return out
