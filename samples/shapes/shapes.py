"""
Mask R-CNN
Train on the synthetic Shapes dataset (squares, circles, triangles).

A port of matterport's samples/shapes/train_shapes.ipynb (MIT, Waleed Abdulla) to a
program: the same configuration, dataset and two-stage training, then the notebook's
evaluation (mAP @ IoU 0.5 over held-out images).

Usage:

    # Train from scratch (or --weights coco / imagenet / last / FILE)
    python3 shapes.py train --weights none

    # Evaluate the last trained model on 50 held-out images
    python3 shapes.py evaluate --weights last --limit 50

    # Detect on a new random image and save the picture
    python3 shapes.py detect --weights last

Add ``--smoke`` for a seconds-long CPU run (tiny model, 1 step per epoch, few images).
"""

import os
import sys

from maskrcnn import Config, MaskRCNN, MaskRCNNError
from maskrcnn.data.formats.shapes import ShapesDataset

# Root directory of the project
ROOT_DIR = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

# Directory to save logs and trained model
DEFAULT_LOGS_DIR = os.path.join(ROOT_DIR, "logs")

CLASS_NAMES = ["BG", "square", "circle", "triangle"]


############################################################
#  Configurations
############################################################

class ShapesConfig(Config):
    """Configuration for training on the toy shapes dataset.
    Derives from the base Config class and overrides values specific
    to the toy shapes dataset.
    """
    # Give the configuration a recognizable name
    NAME = "shapes"

    # Train on 1 GPU and 8 images per GPU. We can put multiple images on each
    # GPU because the images are small. Batch size is 8 (GPUs * images/GPU).
    GPU_COUNT = 1
    IMAGES_PER_GPU = 8

    # Number of classes (including background)
    NUM_CLASSES = 1 + 3  # background + 3 shapes

    # Use small images for faster training. Set the limits of the small side
    # the large side, and that determines the image shape.
    IMAGE_MIN_DIM = 128
    IMAGE_MAX_DIM = 128

    # Use smaller anchors because our image and objects are small
    RPN_ANCHOR_SCALES = (8, 16, 32, 64, 128)  # anchor side in pixels

    # Reduce training ROIs per image because the images are small and have
    # few objects. Aim to allow ROI sampling to pick 33% positive ROIs.
    TRAIN_ROIS_PER_IMAGE = 32

    # Use a small epoch since the data is simple
    STEPS_PER_EPOCH = 100

    # use small validation steps since the epoch is small
    VALIDATION_STEPS = 5


class InferenceConfig(ShapesConfig):
    GPU_COUNT = 1
    IMAGES_PER_GPU = 1


def smoke_overrides():
    """A tiny CPU model and 1 step per epoch: checks that every command runs, in seconds."""
    from maskrcnn.apps.demo import SMALL_CPU_OVERRIDES

    return dict(SMALL_CPU_OVERRIDES, IMAGES_PER_GPU=2, STEPS_PER_EPOCH=1, VALIDATION_STEPS=0)


############################################################
#  Commands
############################################################

def train(model, args):
    """The notebook's schedule: the heads for one epoch, then every layer for one more (one run)."""
    # Training and validation datasets (different seeds: different images)
    dataset_train = ShapesDataset(16 if args.smoke else 500, 128, 128, seed=0)
    dataset_val = ShapesDataset(4 if args.smoke else 50, 128, 128, seed=1)
    options = dict(progress="plain" if args.smoke else "bar", eval_every=0 if args.smoke else None,
                   tensorboard=not args.smoke)

    # Train the head branches
    # Passing layers="heads" freezes all layers except the head
    # layers. You can also pass a regular expression to select
    # which layers to train by name pattern.
    print("Training network heads")
    model.train(dataset_train, dataset_val, learning_rate=model.config.LEARNING_RATE,
                epochs=1, layers="heads", **options)

    # Fine tune all layers
    # Passing layers="all" trains all layers. You can also
    # pass a regular expression to select which layers to
    # train by name pattern. The same run goes on: epoch 2 (epochs is absolute).
    print("Fine tune all layers")
    return model.train(dataset_train, dataset_val, learning_rate=model.config.LEARNING_RATE / 10,
                       epochs=2, layers="all", **options)


def evaluate(model, args):
    """mAP @ IoU=0.5 over held-out images (the notebook's evaluation, matterport's compute_ap)."""
    from maskrcnn.evaluation.voc_eval import evaluate_voc

    dataset_val = ShapesDataset(args.limit, 128, 128, seed=1)
    metrics = evaluate_voc(model, dataset_val, iou=0.5, progress=not args.smoke)
    print("mAP (masks): ", metrics["mAP_mask"])
    print("mAP (boxes): ", metrics["mAP_box"])
    return metrics


def detect(model, args):
    """Detect on a random held-out image and save the picture with masks and boxes."""
    from maskrcnn.visualize import display_instances

    dataset = ShapesDataset(1, 128, 128, seed=args.seed)
    image = dataset.load_image(0)
    r = model.detect([image], verbose=1)[0]
    path = os.path.join(args.logs, "shapes_detection_{}.png".format(args.seed))
    display_instances(image, r['rois'], r['masks'], r['class_ids'], CLASS_NAMES, r['scores'],
                      figsize=(6, 6), save_path=path)
    print("Saved to ", path)
    return path


def main(argv=None):
    import argparse

    parser = argparse.ArgumentParser(description='Train Mask R-CNN on the synthetic shapes dataset.')
    parser.add_argument("command", metavar="<command>", choices=["train", "evaluate", "detect"],
                        help="'train', 'evaluate' or 'detect'")
    parser.add_argument('--weights', required=True, metavar="/path/to/weights.pth",
                        help="Path to weights file, or 'coco', 'imagenet', 'last', 'none'")
    parser.add_argument('--logs', default=DEFAULT_LOGS_DIR, metavar="/path/to/logs/",
                        help='Logs and checkpoints directory (default=logs/)')
    parser.add_argument('--limit', type=int, default=50, help='held-out images to evaluate (default 50)')
    parser.add_argument('--seed', type=int, default=100, help='seed of the image to detect on')
    parser.add_argument('--smoke', action='store_true', help='tiny CPU model and 1 step: check that it runs')
    args = parser.parse_args(argv)

    overrides = smoke_overrides() if args.smoke else {}
    if args.command == "train":
        config = ShapesConfig(**overrides)
    else:
        config = InferenceConfig(**dict(overrides, IMAGES_PER_GPU=1))
    config.display()
    model = MaskRCNN(config, class_names=CLASS_NAMES, device="cpu" if args.smoke else None, model_dir=args.logs)

    # Which weights to start with? imagenet, coco, last, none or a file (one rule: model.load_weights;
    # "last" continues the last run of this NAME in --logs)
    init_with = args.weights
    exclude = None
    if init_with == "coco":
        # Load weights trained on MS COCO, but skip layers that
        # are different due to the different number of classes
        exclude = ["mrcnn_class_logits", "mrcnn_bbox_fc", "mrcnn_bbox", "mrcnn_mask"]
    print("Loading weights ", init_with)
    print(model.load_weights(init_with, exclude=exclude))

    {"train": train, "evaluate": evaluate, "detect": detect}[args.command](model, args)
    return 0


if __name__ == '__main__':
    try:
        sys.exit(main())
    except MaskRCNNError as exc:
        print(f"shapes.py: error: {exc}", file=sys.stderr)
        sys.exit(1)
