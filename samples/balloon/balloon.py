"""
Mask R-CNN
Train on the toy Balloon dataset and implement color splash effect.

A port of matterport's samples/balloon/balloon.py (MIT, Waleed Abdulla) to this package:
same commands, same configuration, same dataset class, PyTorch underneath.

------------------------------------------------------------

Usage: import the module, or run from the command line as such:

    # Train a new model starting from pre-trained COCO weights
    python3 balloon.py train --dataset=/path/to/balloon/dataset --weights=coco

    # Resume training a model that you had trained earlier
    python3 balloon.py train --dataset=/path/to/balloon/dataset --weights=last

    # Train a new model starting from ImageNet weights
    python3 balloon.py train --dataset=/path/to/balloon/dataset --weights=imagenet

    # Apply color splash to an image
    python3 balloon.py splash --weights=/path/to/weights/file.pth --image=<path to file>

    # Apply color splash to video using the last weights you trained
    python3 balloon.py splash --weights=last --video=<path to file>

Add ``--smoke`` to any command for a seconds-long run on CPU (tiny model, 1 step per epoch).
"""

import os
import sys

from maskrcnn import Config, MaskRCNN, MaskRCNNError
from maskrcnn.data.dataset import Dataset
from maskrcnn.data.formats.via import add_via

# Root directory of the project
ROOT_DIR = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

# Directory to save logs and model checkpoints, if not provided
# through the command line argument --logs
DEFAULT_LOGS_DIR = os.path.join(ROOT_DIR, "logs")

############################################################
#  Configurations
############################################################


class BalloonConfig(Config):
    """Configuration for training on the toy  dataset.
    Derives from the base Config class and overrides some values.
    """
    # Give the configuration a recognizable name
    NAME = "balloon"

    # We use a GPU with 12GB memory, which can fit two images.
    # Adjust down if you use a smaller GPU.
    IMAGES_PER_GPU = 2

    # Number of classes (including background)
    NUM_CLASSES = 1 + 1  # Background + balloon

    # Number of training steps per epoch
    STEPS_PER_EPOCH = 100

    # Skip detections with < 90% confidence
    DETECTION_MIN_CONFIDENCE = 0.9


def smoke_overrides():
    """A tiny CPU model and 1 step per epoch: checks that every command runs, in seconds."""
    from maskrcnn.apps.demo import SMALL_CPU_OVERRIDES

    return dict(SMALL_CPU_OVERRIDES, IMAGES_PER_GPU=1, STEPS_PER_EPOCH=1, VALIDATION_STEPS=0)


############################################################
#  Dataset
############################################################

class BalloonDataset(Dataset):

    def load_balloon(self, dataset_dir, subset):
        """Load a subset of the Balloon dataset.
        dataset_dir: Root directory of the dataset.
        subset: Subset to load: train or val
        """
        # Train or validation dataset?
        assert subset in ["train", "val"]
        dataset_dir = os.path.join(dataset_dir, subset)

        # VGG Image Annotator saves each image in the form:
        # { 'filename': '28503151_5b5b7ec140_b.jpg',
        #   'regions': {
        #       '0': {
        #           'region_attributes': {},
        #           'shape_attributes': {
        #               'all_points_x': [...],
        #               'all_points_y': [...],
        #               'name': 'polygon'}},
        #       ... more regions ...
        #   },
        #   'size': 100202
        # }
        # The VIA loader adds the class "balloon" (one implicit class: the region
        # attributes are empty), skips unannotated images and keeps each image's
        # polygons; load_mask() rasterizes them. The image size is read from the
        # file header (VIA does not store it).
        add_via(self, os.path.join(dataset_dir, "via_region_data.json"), class_name="balloon",
                source="balloon", keep_negatives=False)

    def image_reference(self, image_id):
        """Return the path of the image."""
        info = self.image_info[image_id]
        if info["source"] == "balloon":
            return info["path"]
        else:
            return super().image_reference(image_id)


def train(model, args):
    """Train the model."""
    # Training dataset.
    dataset_train = BalloonDataset()
    dataset_train.load_balloon(args.dataset, "train")
    dataset_train.prepare()

    # Validation dataset
    dataset_val = BalloonDataset()
    dataset_val.load_balloon(args.dataset, "val")
    dataset_val.prepare()

    # *** This training schedule is an example. Update to your needs ***
    # Since we're using a very small dataset, and starting from
    # COCO trained weights, we don't need to train too long. Also,
    # no need to train all layers, just the heads should do it.
    print("Training network heads")
    return model.train(dataset_train, dataset_val,
                       learning_rate=model.config.LEARNING_RATE,
                       epochs=1 if args.smoke else 30,
                       layers='heads',
                       progress="plain" if args.smoke else "bar",
                       eval_every=0 if args.smoke else None,
                       tensorboard=not args.smoke)


def detect_and_color_splash(model, image_path=None, video_path=None):
    from maskrcnn.apps.splash import detect_and_color_splash as splash

    assert image_path or video_path
    path = splash(model, image_path=image_path, video_path=video_path)
    print("Saved to ", path)
    return path


############################################################
#  Training
############################################################

def main(argv=None):
    import argparse

    # Parse command line arguments
    parser = argparse.ArgumentParser(
        description='Train Mask R-CNN to detect balloons.')
    parser.add_argument("command",
                        metavar="<command>",
                        help="'train' or 'splash'")
    parser.add_argument('--dataset', required=False,
                        metavar="/path/to/balloon/dataset/",
                        help='Directory of the Balloon dataset')
    parser.add_argument('--weights', required=True,
                        metavar="/path/to/weights.pth",
                        help="Path to weights file, or 'coco', 'imagenet', 'last', 'none'")
    parser.add_argument('--logs', required=False,
                        default=DEFAULT_LOGS_DIR,
                        metavar="/path/to/logs/",
                        help='Logs and checkpoints directory (default=logs/)')
    parser.add_argument('--image', required=False,
                        metavar="path to image",
                        help='Image to apply the color splash effect on')
    parser.add_argument('--video', required=False,
                        metavar="path to video",
                        help='Video to apply the color splash effect on')
    parser.add_argument('--smoke', action='store_true',
                        help='tiny CPU model and 1 step: check that the command runs')
    args = parser.parse_args(argv)

    # Validate arguments
    if args.command == "train":
        assert args.dataset, "Argument --dataset is required for training"
    elif args.command == "splash":
        assert args.image or args.video,\
               "Provide --image or --video to apply color splash"
    else:
        parser.error("'{}' is not recognized. Use 'train' or 'splash'".format(args.command))

    print("Weights: ", args.weights)
    print("Dataset: ", args.dataset)
    print("Logs: ", args.logs)

    # Configurations
    overrides = smoke_overrides() if args.smoke else {}
    if args.command == "train":
        config = BalloonConfig(**overrides)
    else:
        class InferenceConfig(BalloonConfig):
            # Set batch size to 1 since we'll be running inference on
            # one image at a time. Batch size = GPU_COUNT * IMAGES_PER_GPU
            GPU_COUNT = 1
            IMAGES_PER_GPU = 1
        config = InferenceConfig(**dict(overrides, IMAGES_PER_GPU=1))
    config.display()

    # Create model
    model = MaskRCNN(config, class_names=["BG", "balloon"], device="cpu" if args.smoke else None,
                     model_dir=args.logs)

    # Load weights: "coco", "imagenet", "last" (the last run of this NAME in --logs: training
    # continues it), "none" (random weights) or a file -- one rule, model.load_weights
    exclude = None
    if args.weights.lower() == "coco":
        # Exclude the last layers because they require a matching
        # number of classes
        exclude = ["mrcnn_class_logits", "mrcnn_bbox_fc", "mrcnn_bbox", "mrcnn_mask"]
    print("Loading weights ", args.weights)
    print(model.load_weights(args.weights, exclude=exclude))

    # Train or evaluate
    if args.command == "train":
        train(model, args)
    elif args.command == "splash":
        detect_and_color_splash(model, image_path=args.image, video_path=args.video)
    return 0


if __name__ == '__main__':
    try:
        sys.exit(main())
    except MaskRCNNError as exc:
        print(f"balloon.py: error: {exc}", file=sys.stderr)
        sys.exit(1)
