"""The model on CUDA: the numbers of torchvision on CUDA, of our model on the CPU, and AMP inference.

Marked ``gpu`` (out of the default run): ``pytest -m gpu`` on a machine with CUDA; skipped without
one. TF32 is switched off inside these tests, so that float32 means float32 on both sides of each
comparison (PyTorch lets cuDNN convolutions use TF32 by default).
"""

from __future__ import annotations

import copy
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_overfit import overfit, synthetic_scene, tiny_config  # noqa: E402
from torchvision.ops import box_iou  # noqa: E402

from maskrcnn.model.fuse import prepare_for_inference  # noqa: E402
from maskrcnn.detector import MaskRCNN  # noqa: E402
from maskrcnn.model.network import MaskRCNNNetwork  # noqa: E402

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]


@pytest.fixture(autouse=True)
def _strict_float32():
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


@pytest.fixture(scope="module")
def pair(tmp_path_factory, shared_data, parity_report):
    """``(report module, torchvision model, ours, two balloon val images)``, models on the CPU."""
    report = parity_report
    tv, ours = report.build_pair(tmp_path_factory.mktemp("cuda") / "tv_maskrcnn.pth", seed=0)
    images = report.load_images(report.DEFAULT_IMAGES, shared_data / "balloon" / "val")
    return report, tv, ours, images


def _on_cuda(model):
    """A copy on CUDA: torchvision's model in eval mode, or our detector (whose calls set eval mode)."""
    if isinstance(model, MaskRCNN):
        return copy.deepcopy(model).to("cuda")
    return copy.deepcopy(model).cuda().eval()


def _cpu(outputs: list[dict]) -> list[dict]:
    return [{k: v.cpu() for k, v in out.items()} for out in outputs]


def test_parity_with_torchvision_on_cuda(pair):
    report, tv, ours, images = pair
    result = report.run_parity(_on_cuda(tv), _on_cuda(ours), images)
    print(report.format_report(result))
    for stage in result.stages:
        assert math.isfinite(stage.max_abs_diff), f"{stage.stage}: {stage.note}"
        tolerance = 1e-3 * max(1.0, stage.ref_max_abs)
        assert stage.max_abs_diff <= tolerance, f"{stage.stage}: {stage.max_abs_diff} > {tolerance}"
    assert sum(m.matched for m in result.matches) >= 20
    for m in result.matches:
        assert m.n_ours == m.n_torchvision and m.matched == m.n_torchvision, m


def _match(got: dict, ref: dict, *, box_px: float, score: float) -> tuple[list[tuple[int, int]], list[int]]:
    """``(pairs (ref index, got index), unmatched ref indices)``: each of ``ref``'s detections paired with a
    detection of ``got`` of the same label, every box coordinate within ``box_px`` and the score within
    ``score`` (greedy, one to one). Coordinates rather than IoU: random weights make sliver boxes,
    whose IoU a 0.01 px shift ruins."""
    used: set[int] = set()
    pairs, missing = [], []
    for i in range(ref["boxes"].shape[0]):
        close = ((got["boxes"] - ref["boxes"][i]).abs().amax(dim=1) <= box_px) & (got["labels"] == ref["labels"][i])
        close &= (got["scores"] - ref["scores"][i]).abs() <= score
        candidates = [j for j in torch.where(close)[0].tolist() if j not in used]
        if candidates:
            used.add(candidates[0])
            pairs.append((i, candidates[0]))
        else:
            missing.append(i)
    return pairs, missing


def test_cuda_detections_equal_cpu_detections(pair):
    _report, _tv, ours, images = pair
    inputs = [torch.from_numpy(img).permute(2, 0, 1).contiguous() for img in images]
    with torch.inference_mode():
        on_cpu = ours.network.eval()(inputs)
        on_cuda = _cpu(_on_cuda(ours).network.eval()([x.cuda() for x in inputs]))
    for got, ref in zip(on_cuda, on_cpu):
        n = ref["boxes"].shape[0]
        assert got["boxes"].shape[0] == n >= 10
        pairs, missing = _match(got, ref, box_px=0.1, score=1e-3)
        # cuDNN and the CPU sum in other orders: of the random weights' 100 near-tied detections, an NMS
        # decision or two may flip (2 of 100 seen on an H200); the rest are the same detections
        assert len(missing) <= 0.03 * n, missing
        # their pasted masks agree except at pixels whose probability is within rounding of 0.5
        i, j = (list(t) for t in zip(*pairs))
        differ = (got["masks"][j] >= 0.5) != (ref["masks"][i] >= 0.5)
        assert float(differ.float().mean()) < 1e-3


@pytest.fixture(scope="module")
def trained_tiny():
    """The tiny model trained on the synthetic scene on CUDA (float32): detections worth comparing."""
    torch.manual_seed(0)
    model = MaskRCNN(tiny_config(), device="cuda")
    overfit(model.network)
    return model


@pytest.mark.parametrize("amp", ["fp16", "bf16"])
def test_optimized_amp_inference_matches_float32(trained_tiny, amp):
    image = synthetic_scene()[0]
    fast = prepare_for_inference(trained_tiny, amp=amp)  # BN folded (none: GroupNorm), channels-last, autocast
    assert fast.inference_amp == amp and trained_tiny.inference_amp is None
    x = torch.from_numpy(image).permute(2, 0, 1).contiguous().cuda()
    with torch.inference_mode():
        (ref,) = _cpu(trained_tiny.network.eval()([x]))
        (got,) = _cpu(fast.network([x]))
    assert all(got[k].dtype == torch.float32 for k in ("boxes", "scores", "masks"))
    assert got["masks"].shape[1:] == image.shape[:2]
    top_ref, top_got = ref["scores"].argsort(descending=True)[:2], got["scores"].argsort(descending=True)[:2]
    assert sorted(ref["labels"][top_ref].tolist()) == sorted(got["labels"][top_got].tolist()) == [1, 2]
    for i in top_ref:
        j = top_got[got["labels"][top_got] == ref["labels"][i]][0]
        assert float(box_iou(got["boxes"][j:j + 1], ref["boxes"][i:i + 1])) > 0.95
        assert abs(float(got["scores"][j] - ref["scores"][i])) < 0.05
        a, b = got["masks"][j] >= 0.5, ref["masks"][i] >= 0.5
        assert float((a & b).sum() / (a | b).sum()) > 0.9
    # and detect() goes through the same path
    (result,) = fast.detect([image])
    assert sorted(result["class_ids"][np.argsort(-result["scores"])[:2]].tolist()) == [1, 2]


def _exhaustive_config():
    """The tiny model with every anchor and every proposal sampled: no random draw decides the losses,
    so CPU and CUDA (whose generators differ) compute the same function."""
    return tiny_config(RPN_TRAIN_ANCHORS_PER_IMAGE=100_000, PRE_NMS_LIMIT=100_000, POST_NMS_ROIS_TRAINING=100_000,
                       TRAIN_ROIS_PER_IMAGE=100_000, ROI_POSITIVE_RATIO=1.0)


def _training_step(model: MaskRCNNNetwork) -> tuple[dict[str, float], dict[str, torch.Tensor]]:
    image, masks, boxes, class_ids = synthetic_scene()
    x = torch.from_numpy(image).permute(2, 0, 1)
    target = {"boxes": torch.from_numpy(boxes), "labels": torch.from_numpy(class_ids),
              "masks": torch.from_numpy(masks)}
    model.train()
    model.zero_grad()
    losses = model([x], [target])
    sum(losses.values()).backward()
    grads = {name: p.grad.detach().cpu() for name, p in model.named_parameters() if p.grad is not None}
    return {k: float(v.detach()) for k, v in losses.items()}, grads


@pytest.mark.parametrize("sampled_head_grad", [True, False])
def test_training_losses_and_gradients_on_cuda_equal_cpu(sampled_head_grad):
    torch.manual_seed(0)
    model = MaskRCNNNetwork(_exhaustive_config())
    model.rpn.sampled_head_grad = sampled_head_grad
    cpu_losses, cpu_grads = _training_step(model)
    cuda_losses, cuda_grads = _training_step(copy.deepcopy(model).cuda())
    assert set(cuda_losses) == set(cpu_losses) and cpu_losses["mrcnn_mask_loss"] > 0
    for name, value in cpu_losses.items():
        assert cuda_losses[name] == pytest.approx(value, rel=1e-4, abs=1e-6), name
    assert set(cuda_grads) == set(cpu_grads)
    for name, grad in cpu_grads.items():
        scale = float(grad.abs().max())
        assert float((cuda_grads[name] - grad).abs().max()) <= 1e-3 * max(scale, 1e-3), name


def test_detect_runs_on_the_default_device():
    torch.manual_seed(0)
    model = MaskRCNN(tiny_config(DETECTION_MIN_CONFIDENCE=0.0))  # no device: CUDA when available
    assert model.device.type == "cuda"
    image = synthetic_scene()[0]
    (result,) = model.detect([image])
    assert result["masks"].shape[:2] == image.shape[:2] and isinstance(result["masks"], np.ndarray)
    assert result["rois"].dtype == np.int32 and len(result["class_ids"]) == result["masks"].shape[2]


def test_detect_union_on_cuda_is_the_union_of_detect_masks(trained_tiny):
    images = [synthetic_scene()[0]] * 2
    result = trained_tiny.detect(images)[0]
    for class_ids in (None, [1], [2]):
        unions = trained_tiny.detect_union(images, class_ids=class_ids)
        keep = np.isin(result["class_ids"], class_ids if class_ids is not None else result["class_ids"])
        expected = result["masks"][..., keep].any(axis=2)
        assert expected.any() and all(np.array_equal(u, expected) for u in unions)
