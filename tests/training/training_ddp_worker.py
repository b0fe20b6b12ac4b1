"""Worker processes of the distributed tests (spawned; importable by module name)."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from maskrcnn.config import Config
from maskrcnn.data.formats.shapes import ShapesDataset


class TinyShapesConfig(Config):
    """A 64 px ResNet-18 GN Mask R-CNN whose anchor and ROI sampling keeps everything (no RNG choice)."""

    NAME = "ddp"
    NUM_CLASSES = 4
    BACKBONE = "resnet18"
    BACKBONE_NORM = "gn"
    IMAGES_PER_GPU = 2
    IMAGE_RESIZE_MODE = "square"
    IMAGE_MIN_DIM = 64
    IMAGE_MAX_DIM = 64
    RPN_ANCHOR_SCALES = (8, 16, 32, 64, 128)
    TOP_DOWN_PYRAMID_SIZE = 16
    MASK_HEAD_CONV_CHANNELS = 16
    MASK_HEAD_NUM_CONVS = 1
    FPN_CLASSIF_FC_LAYERS_SIZE = 32
    RPN_TRAIN_ANCHORS_PER_IMAGE = 2048  # > the 1023 anchors of a 64 px image: every anchor is sampled
    PRE_NMS_LIMIT = 1000
    POST_NMS_ROIS_TRAINING = 32
    TRAIN_ROIS_PER_IMAGE = 256  # > proposals + ground truth: every ROI is sampled
    ROI_POSITIVE_RATIO = 0.5
    MINI_MASK_SHAPE = (14, 14)
    STEPS_PER_EPOCH = 2
    VALIDATION_STEPS = 1
    LEARNING_RATE = 0.01


class RepeatedShapes(ShapesDataset):
    """Every image is image 0 of the shapes dataset (so batch means equal per-image means)."""

    def load_image(self, image_id):
        return super().load_image(0)

    def load_mask(self, image_id):
        return super().load_mask(0)


def real_model_run(out: Path, *, images_per_gpu: int, repeated: bool = True, accumulation: int = 1,
                   seed: int = 0) -> dict[str, torch.Tensor]:
    """One epoch of the tiny model; ``repeated``: every image is the same, else 4 different shapes images."""
    from maskrcnn.detector import MaskRCNN

    torch.manual_seed(seed)
    config = TinyShapesConfig(IMAGES_PER_GPU=images_per_gpu)
    dataset = (RepeatedShapes if repeated else ShapesDataset)(4, 64, 64, seed=0)
    model = MaskRCNN(config, class_names=dataset.class_names, device="cpu", model_dir=out)
    model.train(dataset, None, epochs=1, layers="all", seed=seed, progress="none", eval_every=0, tensorboard=False,
                attributes={"GRADIENT_ACCUMULATION": accumulation}, device="cpu")
    return {k: v.detach().clone() for k, v in model.network.state_dict().items()}


def standin_run(out: Path, *, images_per_gpu: int, seed: int = 0) -> dict[str, torch.Tensor]:
    from training_standin import StandInModel, StandInSamples, collate

    from maskrcnn.training.api import fit
    from maskrcnn.training.options import TrainOptions

    torch.manual_seed(seed)
    model = StandInModel()
    opts = TrainOptions(learning_rate=0.05, steps_per_epoch=3, validation_steps=1, images_per_gpu=images_per_gpu,
                        seed=seed, eval_every=0, accumulation=2)
    fit(model, StandInSamples(13), collate, epochs=2, options=opts, val_samples=StandInSamples(4, seed=1),
        logs_dir=out, name="standin", progress="none", tensorboard=False, device="cpu")
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def worker(rank: int, world_size: int, port: int, out: str) -> None:
    """One rank: the stand-in run, then the real-model run, each rank saving its final weights."""
    torch.set_num_threads(1)
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world_size),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    out_dir = Path(out)
    try:
        state = standin_run(out_dir / "standin", images_per_gpu=4 // world_size)
        torch.save(state, out_dir / f"standin_rank{rank}.pth")
        state = real_model_run(out_dir / "real", images_per_gpu=2 // world_size)
        torch.save(state, out_dir / f"real_rank{rank}.pth")
        state = real_model_run(out_dir / "real_diff", images_per_gpu=1, repeated=False)
        torch.save(state, out_dir / f"real_diff_rank{rank}.pth")
    finally:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()
