"""Ground truth and detections in COCO form: dataset_to_coco, detections_to_coco_results."""

from __future__ import annotations

import json

import numpy as np
import pytest
from eval_fakes import StandInDataset, ground_truth_detections, rect_masks
from pycocotools import mask as mask_utils

from maskrcnn.errors import DatasetError, MaskRCNNError
from maskrcnn.evaluation.coco_format import dataset_to_coco, detections_to_coco_results, encode_masks

# pycocotools (<= 2.0.11) decodes RLEs in a way numpy 2 deprecates; not our code.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def test_dataset_to_coco_images_categories_annotations(shapes):
    coco = dataset_to_coco(shapes)
    ds = coco.dataset
    assert [c["id"] for c in ds["categories"]] == [1, 2, 3]
    assert [c["name"] for c in ds["categories"]] == ["circle", "square", "triangle"]
    assert [(im["id"], im["height"], im["width"]) for im in ds["images"]] == [(0, 40, 50), (1, 40, 50), (2, 40, 50)]
    assert ds["images"][1]["source_id"] == "img1.png" and ds["images"][1]["file_name"] == "img1.png"
    # the empty mask of image 0 is left out; the crowd of image 1 kept with iscrowd=1
    anns = ds["annotations"]
    got = [(a["image_id"], a["category_id"], a["iscrowd"], a["area"], a["bbox"]) for a in anns]
    assert got == [
        (0, 1, 0, 150.0, [5.0, 5.0, 15.0, 10.0]),
        (0, 2, 0, 300.0, [25.0, 20.0, 20.0, 15.0]),
        (1, 1, 0, 100.0, [0.0, 0.0, 10.0, 10.0]),
        (1, 2, 1, 1250.0, [0.0, 15.0, 50.0, 25.0]),
        (1, 2, 0, 144.0, [30.0, 30.0, 18.0, 8.0]),
    ]
    assert len({a["id"] for a in anns}) == len(anns)
    # RLE decodes back to the mask, and the whole thing is JSON-serializable
    masks, _ = shapes.load_mask(1)
    np.testing.assert_array_equal(mask_utils.decode(anns[3]["segmentation"]).astype(bool), masks[..., 1])
    json.dumps(ds)


def test_dataset_to_coco_subset(shapes):
    coco = dataset_to_coco(shapes, image_ids=[1])
    assert coco.getImgIds() == [1]
    assert len(coco.dataset["annotations"]) == 3


def test_dataset_to_coco_names_bad_class_ids_and_sizes():
    image = np.zeros((10, 10, 3), np.uint8)
    masks = rect_masks((10, 10), [(0, 0, 5, 5)])
    with pytest.raises(DatasetError, match=r"image 0 .*class id 3"):
        dataset_to_coco(StandInDataset([(image, masks, [3])], ["BG", "a"]))
    ds = StandInDataset([(image, masks, [1])], ["BG", "a"])
    ds.image_info[0]["height"] = 12
    with pytest.raises(DatasetError, match=r"10x10 but image_info says height=12"):
        dataset_to_coco(ds)
    with pytest.raises(DatasetError, match=r"shape \(10, 10, 1\) for 2 class ids"):
        dataset_to_coco(StandInDataset([(image, masks, [1, 1])], ["BG", "a"]))


def test_detections_to_coco_results_internal_ids(shapes):
    r = ground_truth_detections(shapes, 0)
    out = detections_to_coco_results([r, ground_truth_detections(shapes, 2)], [0, 2])
    assert len(out) == 2  # image 2 has no detections
    first = out[0]
    assert first["image_id"] == 0 and first["category_id"] == 1
    assert first["bbox"] == [5.0, 5.0, 15.0, 10.0]  # rois (5, 5, 15, 20) -> x, y, w, h
    assert first["score"] == pytest.approx(0.95)
    np.testing.assert_array_equal(mask_utils.decode(first["segmentation"]).astype(bool), r["masks"][..., 0])
    json.dumps(out)


def test_detections_to_coco_results_source_ids_and_category_map(shapes):
    ds = StandInDataset(shapes._items, shapes.class_names, source="coco", source_ids=[101, 102, 103],
                        source_class_ids={1: 11, 2: 22, 3: 33})
    r = ground_truth_detections(ds, 0)
    out = detections_to_coco_results([r], [0], dataset=ds)
    assert [(d["image_id"], d["category_id"]) for d in out] == [(101, 11), (101, 22)]
    out = detections_to_coco_results([r], [0], category_map={1: 7, 2: 8})
    assert [(d["image_id"], d["category_id"]) for d in out] == [(0, 7), (0, 8)]
    out = detections_to_coco_results([r], [0], category_map=lambda c: c * 100)
    assert [d["category_id"] for d in out] == [100, 200]
    # box-only detections: no segmentation key
    box_only = {k: v for k, v in r.items() if k != "masks"}
    assert "segmentation" not in detections_to_coco_results([box_only], [0])[0]


def test_detections_to_coco_results_errors(shapes):
    r = ground_truth_detections(shapes, 0)
    with pytest.raises(DatasetError, match="not a COCO \\(integer\\) image id"):
        detections_to_coco_results([r], [0], dataset=shapes)  # ids are file names
    with pytest.raises(MaskRCNNError, match="1 results for 2 image ids"):
        detections_to_coco_results([r], [0, 1])
    bad = dict(r, scores=np.array([0.5]))
    with pytest.raises(MaskRCNNError, match="image 0: .*disagree"):
        detections_to_coco_results([bad], [0])
    bad = dict(r, masks=r["masks"][..., :1])
    with pytest.raises(MaskRCNNError, match=r"expected \[H, W, 2\]"):
        detections_to_coco_results([bad], [0])
    with pytest.raises(MaskRCNNError, match="no entry for class id 2"):
        detections_to_coco_results([r], [0], category_map={1: 1})


def test_encode_masks_roundtrip():
    rng = np.random.default_rng(0)
    masks = rng.random((7, 9, 3)) > 0.5
    rles = encode_masks(masks)
    assert all(isinstance(r["counts"], str) for r in rles)
    np.testing.assert_array_equal(mask_utils.decode(rles).astype(bool), masks)
    assert encode_masks(np.zeros((7, 9, 0), bool)) == []
