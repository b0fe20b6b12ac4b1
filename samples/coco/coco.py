"""
Mask R-CNN
Configurations and data loading code for MS COCO.

A port of matterport's samples/coco/coco.py (MIT, Waleed Abdulla) to this package: the same
commands, configuration, dataset class, three-stage training schedule and official COCO
evaluation (pycocotools), PyTorch underneath.

------------------------------------------------------------

Usage: import the module, or run from the command line as such:

    # Train a new model starting from pre-trained COCO weights
    python3 coco.py train --dataset=/path/to/coco/ --model=coco

    # Train a new model starting from ImageNet weights
    python3 coco.py train --dataset=/path/to/coco/ --model=imagenet

    # Continue training a model that you had trained earlier
    python3 coco.py train --dataset=/path/to/coco/ --model=/path/to/weights.pth

    # Continue training the last model you trained
    python3 coco.py train --dataset=/path/to/coco/ --model=last

    # Run COCO evaluation on the last model you trained
    python3 coco.py evaluate --dataset=/path/to/coco/ --model=last --limit=500

The dataset folder has COCO's layout (``annotations/instances_val2017.json`` and
``val2017/``), or is a folder with one ``annotations.json`` (and its images beside it or in
``images/``), which then serves every subset. Nothing is downloaded: fetch COCO from
https://cocodataset.org/#download. ``--smoke`` runs a seconds-long CPU check.
"""

import contextlib
import io
import os
import sys
import time

import numpy as np

from maskrcnn import Config, MaskRCNN, MaskRCNNError
from maskrcnn.data.dataset import Dataset
from maskrcnn.data.formats.coco import add_coco
from maskrcnn.errors import DatasetError

# Root directory of the project
ROOT_DIR = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

# Directory to save logs and model checkpoints, if not provided
# through the command line argument --logs
DEFAULT_LOGS_DIR = os.path.join(ROOT_DIR, "logs")
DEFAULT_DATASET_YEAR = "2014"

############################################################
#  Configurations
############################################################


class CocoConfig(Config):
    """Configuration for training on MS COCO.
    Derives from the base Config class and overrides values specific
    to the COCO dataset.
    """
    # Give the configuration a recognizable name
    NAME = "coco"

    # We use a GPU with 12GB memory, which can fit two images.
    # Adjust down if you use a smaller GPU.
    IMAGES_PER_GPU = 2

    # Uncomment to train on 8 GPUs (default is 1)
    # GPU_COUNT = 8

    # Number of classes (including background)
    NUM_CLASSES = 1 + 80  # COCO has 80 classes


def smoke_overrides():
    """A tiny CPU model and one step per epoch: checks that every command runs, in seconds."""
    from maskrcnn.apps.demo import SMALL_CPU_OVERRIDES

    return dict(SMALL_CPU_OVERRIDES, IMAGES_PER_GPU=1, STEPS_PER_EPOCH=1, VALIDATION_STEPS=0)


############################################################
#  Dataset
############################################################

class CocoDataset(Dataset):
    def load_coco(self, dataset_dir, subset, year=DEFAULT_DATASET_YEAR, class_ids=None,
                  class_map=None, return_coco=False):
        """Load a subset of the COCO dataset.
        dataset_dir: The root directory of the COCO dataset.
        subset: What to load (train, val, minival, valminusminival)
        year: What dataset year to load (2014, 2017) as a string, not an integer
        class_ids: If provided, only loads the given classes (COCO category ids).
        class_map: Not implemented (as in matterport).
        return_coco: If True, returns the pycocotools COCO object.
        """
        annotation_file, image_dir = self.find_files(dataset_dir, subset, year)
        names = None
        if class_ids:
            coco = _quiet_coco(annotation_file)
            names = [coco.loadCats(i)[0]["name"] for i in sorted(class_ids)]
        # Classes are added in COCO category id order with source "coco", so
        # get_source_class_id(class_id, "coco") gives the category id back;
        # load_mask() rasterizes polygons and RLEs and negates crowd class ids.
        add_coco(self, annotation_file, image_dir=image_dir, classes=names, source="coco")
        if return_coco:
            return _quiet_coco(annotation_file)

    @staticmethod
    def find_files(dataset_dir, subset, year):
        """``(annotation file, image folder or None)`` of a subset: COCO's layout, else ``annotations.json``."""
        annotation_file = os.path.join(dataset_dir, "annotations", "instances_{}{}.json".format(subset, year))
        if subset in ("minival", "valminusminival"):
            subset = "val"
        if os.path.isfile(annotation_file):
            return annotation_file, os.path.join(dataset_dir, "{}{}".format(subset, year))
        single = os.path.join(dataset_dir, "annotations.json")
        if os.path.isfile(single):
            return single, None  # the loader finds the images beside it or in images/
        raise DatasetError("{}: no COCO annotations for subset {!r} of {} (expected {} or {})".format(
            dataset_dir, subset, year, annotation_file, single))

    def image_reference(self, image_id):
        """Return a link to the image in the COCO Website."""
        info = self.image_info[image_id]
        if info["source"] == "coco":
            return "http://cocodataset.org/#explore?id={}".format(info["id"])
        else:
            return super().image_reference(image_id)


def _quiet_coco(annotation_file):
    from pycocotools.coco import COCO

    with contextlib.redirect_stdout(io.StringIO()):
        return COCO(annotation_file)


############################################################
#  COCO Evaluation
############################################################

def build_coco_results(dataset, image_ids, results):
    """Arrange results to match COCO specs in http://cocodataset.org/#format
    (COCO image ids and category ids, RLE masks)."""
    from maskrcnn.evaluation.coco_format import detections_to_coco_results

    return detections_to_coco_results(results, image_ids, dataset=dataset)


def evaluate_coco(model, dataset, coco, eval_type="bbox", limit=0, image_ids=None):
    """Runs official COCO evaluation.
    dataset: A Dataset object with validation data
    eval_type: "bbox" or "segm" for bounding box or segmentation evaluation
    limit: if not 0, it's the number of images to use for evaluation
    """
    from pycocotools.cocoeval import COCOeval

    # Pick COCO images from the dataset
    image_ids = list(image_ids if image_ids is not None else dataset.image_ids)

    # Limit to a subset
    if limit:
        image_ids = image_ids[:limit]

    # Get corresponding COCO image IDs.
    coco_image_ids = [dataset.image_info[id]["id"] for id in image_ids]

    t_prediction = 0
    t_start = time.time()

    results = []
    for image_id in image_ids:
        # Load image
        image = dataset.load_image(image_id)

        # Run detection
        t = time.time()
        r = model.detect([image], verbose=0)[0]
        t_prediction += (time.time() - t)

        # Convert results to COCO format
        results.extend(build_coco_results(dataset, [image_id], [r]))

    stats = {}
    for kind in ([eval_type] if isinstance(eval_type, str) else eval_type):
        if not results:
            print("No detections on {} images: {} AP is 0".format(len(image_ids), kind))
            stats[kind] = np.zeros(12)
            continue
        # Load results. This modifies results with additional attributes.
        with contextlib.redirect_stdout(io.StringIO()):
            coco_results = coco.loadRes([dict(r) for r in results])

        # Evaluate
        cocoEval = COCOeval(coco, coco_results, kind)
        cocoEval.params.imgIds = coco_image_ids
        cocoEval.evaluate()
        cocoEval.accumulate()
        print("Evaluation of {}:".format(kind))
        cocoEval.summarize()
        stats[kind] = cocoEval.stats

    print("Prediction time: {}. Average {}/image".format(
        t_prediction, t_prediction / max(len(image_ids), 1)))
    print("Total time: ", time.time() - t_start)
    return stats


############################################################
#  Training
############################################################

def train(model, args, dataset_val):
    from torchvision.transforms import v2

    config = model.config
    # Training dataset. Use the training set and 35K from the
    # validation set, as as in the Mask RCNN paper.
    dataset_train = CocoDataset()
    dataset_train.load_coco(args.dataset, "train", year=args.year)
    if args.year in '2014':
        dataset_train.load_coco(args.dataset, "valminusminival", year=args.year)
    dataset_train.prepare()

    # Image Augmentation
    # Right/Left flip 50% of the time
    augmentation = v2.RandomHorizontalFlip(0.5)
    options = dict(augmentation=augmentation, progress="plain" if args.smoke else "bar",
                   eval_every=0 if args.smoke else None, tensorboard=not args.smoke)
    epochs = (1, 2, 3) if args.smoke else (40, 120, 160)

    # *** This training schedule is an example. Update to your needs ***

    # Training - Stage 1
    print("Training network heads")
    model.train(dataset_train, dataset_val, learning_rate=config.LEARNING_RATE,
                epochs=epochs[0], layers='heads', **options)

    # Training - Stage 2
    # Finetune layers from ResNet stage 4 and up
    print("Fine tune Resnet stage 4 and up")
    model.train(dataset_train, dataset_val, learning_rate=config.LEARNING_RATE,
                epochs=epochs[1], layers='4+', **options)

    # Training - Stage 3
    # Fine tune all layers
    print("Fine tune all layers")
    return model.train(dataset_train, dataset_val, learning_rate=config.LEARNING_RATE / 10,
                       epochs=epochs[2], layers='all', **options)


def main(argv=None):
    import argparse

    # Parse command line arguments
    parser = argparse.ArgumentParser(
        description='Train Mask R-CNN on MS COCO.')
    parser.add_argument("command",
                        metavar="<command>",
                        choices=["train", "evaluate"],
                        help="'train' or 'evaluate' on MS COCO")
    parser.add_argument('--dataset', required=True,
                        metavar="/path/to/coco/",
                        help='Directory of the MS-COCO dataset')
    parser.add_argument('--year', required=False,
                        default=DEFAULT_DATASET_YEAR,
                        metavar="<year>",
                        help='Year of the MS-COCO dataset (2014 or 2017) (default=2014)')
    parser.add_argument('--model', '--weights', required=True, dest="model",
                        metavar="/path/to/weights.pth",
                        help="Path to weights file, or 'coco', 'imagenet', 'last', 'none'")
    parser.add_argument('--logs', required=False,
                        default=DEFAULT_LOGS_DIR,
                        metavar="/path/to/logs/",
                        help='Logs and checkpoints directory (default=logs/)')
    parser.add_argument('--limit', required=False,
                        default=500, type=int,
                        metavar="<image count>",
                        help='Images to use for evaluation (default=500)')
    parser.add_argument('--eval-type', default="bbox,segm",
                        help="comma-separated COCO evaluation types (default bbox,segm)")
    parser.add_argument('--smoke', action='store_true',
                        help='tiny CPU model and one step per stage: check that the command runs')
    args = parser.parse_args(argv)
    print("Command: ", args.command)
    print("Model: ", args.model)
    print("Dataset: ", args.dataset)
    print("Year: ", args.year)
    print("Logs: ", args.logs)

    # Configurations
    overrides = smoke_overrides() if args.smoke else {}
    if args.command == "train":
        config = CocoConfig(**overrides)
    else:
        class InferenceConfig(CocoConfig):
            # Set batch size to 1 since we'll be running inference on
            # one image at a time. Batch size = GPU_COUNT * IMAGES_PER_GPU
            GPU_COUNT = 1
            IMAGES_PER_GPU = 1
            DETECTION_MIN_CONFIDENCE = 0
        config = InferenceConfig(**dict(overrides, IMAGES_PER_GPU=1))
    config.display()

    # Validation dataset (its class names name the model's classes)
    dataset_val = CocoDataset()
    val_type = "val" if args.year in '2017' else "minival"
    coco = dataset_val.load_coco(args.dataset, val_type, year=args.year, return_coco=True)
    dataset_val.prepare()
    class_names = dataset_val.class_names if len(dataset_val.class_names) == config.NUM_CLASSES else None

    # Create model
    model = MaskRCNN(config, class_names=class_names, device="cpu" if args.smoke else None, model_dir=args.logs)

    # Load weights: "coco", "imagenet", "last" (the last run of this NAME in --logs: training
    # continues it, as matterport's "continue training the last model"), "none" or a file --
    # one rule, model.load_weights
    print("Loading weights ", args.model)
    print(model.load_weights(args.model))

    # Train or evaluate
    if args.command == "train":
        train(model, args, dataset_val)
    elif args.command == "evaluate":
        print("Running COCO evaluation on {} images.".format(args.limit))
        evaluate_coco(model, dataset_val, coco, args.eval_type.split(","), limit=int(args.limit))
    return 0


if __name__ == '__main__':
    try:
        sys.exit(main())
    except MaskRCNNError as exc:
        print(f"coco.py: error: {exc}", file=sys.stderr)
        sys.exit(1)
