"""matterport's samples/balloon/balloon.py, with the four lines the README's "Coming from matterport" changes.

The body below is matterport's code (config, dataset class, training call, detection) as it stands in
balloon.py, at toy size; only the imports and the weights name differ. It must run unchanged.
"""

import json
import os

import numpy as np
import pytest
from PIL import Image, ImageDraw

import maskrcnn as modellib                       # was: from mrcnn import model as modellib, utils
from maskrcnn import Dataset                      # was: utils.Dataset
from maskrcnn import MatterportConfig as Config  # was: from mrcnn.config import Config
from maskrcnn.matterport_h5_write import write_h5


def _polygon(height, width, xs, ys):
    """skimage.draw.polygon's role in balloon.py (skimage is not a dependency of this project)."""
    canvas = Image.new("L", (width, height), 0)
    ImageDraw.Draw(canvas).polygon(list(zip(xs, ys)), fill=1)
    return np.nonzero(np.array(canvas))


class BalloonConfig(Config):
    NAME = "balloon"
    IMAGES_PER_GPU = 1
    NUM_CLASSES = 1 + 1  # Background + balloon
    STEPS_PER_EPOCH = 1
    DETECTION_MIN_CONFIDENCE = 0.9
    # toy size for the test (balloon.py keeps matterport's defaults)
    BACKBONE = "resnet50"
    IMAGE_MIN_DIM = 128
    IMAGE_MAX_DIM = 128
    VALIDATION_STEPS = 1
    POST_NMS_ROIS_TRAINING = 200
    TRAIN_ROIS_PER_IMAGE = 32


class BalloonDataset(Dataset):
    def load_balloon(self, dataset_dir, subset, limit):
        self.add_class("balloon", 1, "balloon")
        dataset_dir = os.path.join(dataset_dir, subset)
        annotations = json.load(open(os.path.join(dataset_dir, "via_region_data.json")))
        annotations = [a for a in list(annotations.values()) if a["regions"]][:limit]
        for a in annotations:
            if type(a["regions"]) is dict:
                polygons = [r["shape_attributes"] for r in a["regions"].values()]
            else:
                polygons = [r["shape_attributes"] for r in a["regions"]]
            image_path = os.path.join(dataset_dir, a["filename"])
            width, height = Image.open(image_path).size  # balloon.py: skimage.io.imread(image_path).shape[:2]
            self.add_image("balloon", image_id=a["filename"], path=image_path, width=width, height=height,
                           polygons=polygons)

    def load_mask(self, image_id):
        image_info = self.image_info[image_id]
        if image_info["source"] != "balloon":
            return super(self.__class__, self).load_mask(image_id)
        info = self.image_info[image_id]
        mask = np.zeros([info["height"], info["width"], len(info["polygons"])], dtype=np.uint8)
        for i, p in enumerate(info["polygons"]):
            rr, cc = _polygon(info["height"], info["width"], p["all_points_x"], p["all_points_y"])
            mask[rr, cc, i] = 1
        return mask.astype(bool), np.ones([mask.shape[-1]], dtype=np.int32)


def test_balloon_py_runs_with_four_lines_changed(shared_data, tmp_path):
    balloon = shared_data / "balloon"
    coco_like = tmp_path / "mask_rcnn_coco.h5"  # a matterport .h5 (81 classes) stands in for the COCO file
    write_h5(modellib.MaskRCNN(mode="inference", config=BalloonConfig(NUM_CLASSES=81),
                               model_dir=str(tmp_path)).network, coco_like)
    weights_path = str(coco_like)                 # was: COCO_WEIGHTS_PATH (the README: "matterport-coco")

    config = BalloonConfig()
    model = modellib.MaskRCNN(mode="training", config=config, model_dir=str(tmp_path / "logs"))
    model.load_weights(weights_path, by_name=True, exclude=[
        "mrcnn_class_logits", "mrcnn_bbox_fc",
        "mrcnn_bbox", "mrcnn_mask"])
    dataset_train = BalloonDataset()
    dataset_train.load_balloon(str(balloon), "train", limit=2)
    dataset_train.prepare()
    dataset_val = BalloonDataset()
    dataset_val.load_balloon(str(balloon), "val", limit=1)
    dataset_val.prepare()
    model.train(dataset_train, dataset_val, learning_rate=config.LEARNING_RATE, epochs=1, layers="heads")
    assert model.find_last().name == "mask_rcnn_balloon_0001.pth"

    image = np.array(Image.open(dataset_val.image_info[0]["path"]).convert("RGB"))
    r = model.detect([image], verbose=1)[0]
    assert set(r) >= {"rois", "class_ids", "scores", "masks"} and r["masks"].shape[:2] == image.shape[:2]
