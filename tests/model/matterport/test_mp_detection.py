"""matterport's detection layer and unmolding on tiny hand-made cases."""

import torch

from maskrcnn.model.matterport.detection import refine_detections
from maskrcnn.model.matterport.unmold import unmold_detections


def _probs(rows):
    return torch.tensor(rows, dtype=torch.float32)


def test_refine_detections_argmax_threshold_nms_order_padding():
    rois = torch.tensor([[0.1, 0.1, 0.5, 0.5], [0.1, 0.1, 0.52, 0.5], [0.6, 0.6, 0.9, 0.9], [0.0, 0.0, 0.2, 0.2],
                         [0.6, 0.6, 0.9, 0.9]])
    probs = _probs([[0.1, 0.8, 0.1],    # class 1, 0.8
                    [0.05, 0.9, 0.05],  # class 1, 0.9: suppresses roi 0 (IoU > 0.3)
                    [0.2, 0.05, 0.75],  # class 2, 0.75
                    [0.6, 0.3, 0.1],    # background: dropped
                    [0.1, 0.25, 0.65]])  # class 2 but below 0.7: dropped
    deltas = torch.zeros(5, 3, 4)
    window = torch.tensor([0.0, 0.0, 1.0, 1.0])
    out = refine_detections(rois, probs, deltas, window, std_dev=[0.1, 0.1, 0.2, 0.2], min_confidence=0.7,
                            nms_threshold=0.3, max_instances=4)
    assert out.shape == (4, 6)
    assert torch.allclose(out[0], torch.tensor([0.1, 0.1, 0.52, 0.5, 1.0, 0.9]))
    assert torch.allclose(out[1], torch.tensor([0.6, 0.6, 0.9, 0.9, 2.0, 0.75]))
    assert torch.equal(out[2:], torch.zeros(2, 6))


def test_refine_detections_applies_class_deltas_and_clips_to_window():
    rois = torch.tensor([[0.2, 0.2, 0.6, 0.6]])
    probs = _probs([[0.0, 0.0, 1.0]])
    deltas = torch.zeros(1, 3, 4)
    deltas[0, 2] = torch.tensor([1.0, 0.0, 0.0, 0.0])  # dy = 1 * 0.1 * height(0.4) = 0.04
    out = refine_detections(rois, probs, deltas, torch.tensor([0.0, 0.0, 0.62, 1.0]), std_dev=[0.1, 0.1, 0.2, 0.2],
                            min_confidence=0.5, nms_threshold=0.3, max_instances=2)
    assert torch.allclose(out[0, :4], torch.tensor([0.24, 0.2, 0.62, 0.6]), atol=1e-6)


def test_unmold_detections_shifts_scales_rounds_and_pastes():
    # molded 64x64, image 32x64 placed at rows 16..48 (window), scale 1
    image_shape, window = (64, 64), (16, 0, 48, 64)
    det = torch.zeros(3, 6)
    # a box covering original pixels y 0..16, x 8..40 -> molded y 16..32 -> normalized
    det[0] = torch.tensor([16 / 63, 8 / 63, 31 / 63, 39 / 63, 1.0, 0.9])
    det[1] = torch.tensor([0.5, 0.5, 0.5, 0.5, 2.0, 0.8])  # zero area: dropped
    masks = torch.zeros(3, 3, 4, 4)
    masks[0, 1] = 1.0
    out = unmold_detections(det, masks, original_shape=(32, 64), image_shape=image_shape, window=window)
    assert out["rois"].tolist() == [[0, 8, 16, 40]]
    assert out["class_ids"].tolist() == [1]
    full = out["masks"][0]
    assert full.shape == (32, 64) and full[0:16, 8:40].all() and full.sum() == 16 * 32


def test_unmold_without_detections():
    out = unmold_detections(torch.zeros(2, 6), torch.zeros(2, 2, 28, 28), original_shape=(10, 20), image_shape=(64, 64),
                            window=(0, 0, 10, 20))
    assert out["rois"].shape == (0, 4) and out["masks"].shape == (0, 10, 20)
