"""The one place where Config values become the model stages' keyword arguments.

``build_model_parts(config)`` returns ``{"preprocessor", "backbone", "anchor_generator",
"rpn", "roi_heads"}``. Box coder weights come from matterport's standard deviations
(``weights_from_std_dev(RPN_BBOX_STD_DEV)`` / ``(BBOX_STD_DEV)``), so TorchvisionConfig's
``[1, 1, 1, 1]`` and ``[0.1, 0.1, 0.2, 0.2]`` give torchvision's (1, 1, 1, 1) and (10, 10, 5, 5).

Two kinds of values, listed here because this module is where they are read:

* :data:`NETWORK_ATTRIBUTES`: what the stages are built from (layer sizes, anchors, resizing,
  sampling). A built network keeps them; changing one on the config afterwards is refused by the
  network (:meth:`~maskrcnn.model.network.MaskRCNNNetwork.check_config`), and a resumed run keeps
  them (the checkpoint's values);
* :data:`CALL_ATTRIBUTES`: what the network reads from its config at every call
  (:func:`detection_settings`, ``LOSS_WEIGHTS``), so changing them on a built model takes effect.
"""

from __future__ import annotations

from typing import Any

from ..config import Config
from .anchors import AnchorGenerator
from .backbone import ResNetFPN
from .box_head import BoxHead, BoxPredictor
from .boxes import weights_from_std_dev
from .mask_head import MaskHead, MaskPredictor
from .matterport.build import build_matterport_parts, build_matterport_preprocessor
from .matterport.generic import MatterportAnchorGenerator
from .preprocess import ImagePreprocessor
from .roi_align import PyramidRoIAlign
from .roi_heads import DetectionSettings, RoIHeads
from .rpn import RPN, RPNHead

#: Config attributes the network's stages are built from (read by this module only).
NETWORK_ATTRIBUTES: tuple[str, ...] = (
    "ARCHITECTURE", "MEAN_PIXEL", "PIXEL_STD", "IMAGE_RESIZE_MODE", "IMAGE_MIN_DIM", "IMAGE_MAX_DIM", "IMAGE_MIN_SCALE",
    "IMAGE_PAD_DIVISOR", "BACKBONE", "BACKBONE_NORM", "TRAIN_BN", "TOP_DOWN_PYRAMID_SIZE", "NUM_CLASSES",
    "BACKBONE_STRIDES", "RPN_ANCHOR_SCALES", "RPN_ANCHOR_RATIOS", "RPN_ANCHOR_STRIDE", "RPN_BBOX_STD_DEV",
    "PRE_NMS_LIMIT", "PRE_NMS_LIMIT_INFERENCE", "POST_NMS_ROIS_TRAINING", "POST_NMS_ROIS_INFERENCE",
    "RPN_NMS_THRESHOLD", "RPN_NMS_PER_LEVEL", "RPN_MIN_SIZE", "RPN_POSITIVE_IOU", "RPN_NEGATIVE_IOU",
    "RPN_TRAIN_ANCHORS_PER_IMAGE", "POOL_SIZE", "MASK_POOL_SIZE", "MASK_SHAPE", "ROI_ALIGN_SAMPLING_RATIO",
    "ROI_ALIGN_ALIGNED", "FPN_CLASSIF_FC_LAYERS_SIZE", "MASK_HEAD_CONV_CHANNELS", "MASK_HEAD_NUM_CONVS",
    "BBOX_STD_DEV", "TRAIN_ROIS_PER_IMAGE", "ROI_POSITIVE_RATIO", "ROI_POSITIVE_IOU", "ROI_NEGATIVE_IOU",
)
#: Config attributes the network reads at every call.
CALL_ATTRIBUTES: tuple[str, ...] = (
    "DETECTION_MIN_CONFIDENCE", "DETECTION_NMS_THRESHOLD", "DETECTION_MAX_INSTANCES", "DETECTION_MIN_SIZE",
    "LOSS_WEIGHTS",
)


def detection_settings(config: Config) -> DetectionSettings:
    """The detection layer's thresholds from the config's current values."""
    return DetectionSettings(
        min_confidence=float(config.DETECTION_MIN_CONFIDENCE), nms_threshold=float(config.DETECTION_NMS_THRESHOLD),
        max_instances=int(config.DETECTION_MAX_INSTANCES), min_size=float(config.DETECTION_MIN_SIZE),
    )


def build_preprocessor(config: Config) -> ImagePreprocessor:
    """The config's image preprocessor (``ARCHITECTURE = "matterport"``: matterport's molding, centred padding)."""
    if _is_matterport(config):
        return build_matterport_preprocessor(config)
    return ImagePreprocessor(
        mean=config.MEAN_PIXEL, std=config.PIXEL_STD, resize_mode=config.IMAGE_RESIZE_MODE,
        min_dim=config.IMAGE_MIN_DIM, max_dim=config.IMAGE_MAX_DIM, min_scale=config.IMAGE_MIN_SCALE,
        pad_divisor=config.IMAGE_PAD_DIVISOR,
    )


def build_anchor_generator(config: Config) -> AnchorGenerator:
    """The config's anchors, xyxy pixels of the network input (``ARCHITECTURE = "matterport"``: matterport's
    anchors, :class:`~.matterport.generic.MatterportAnchorGenerator`)."""
    if _is_matterport(config):
        return MatterportAnchorGenerator(scales=config.RPN_ANCHOR_SCALES, ratios=config.RPN_ANCHOR_RATIOS,
                                         strides=config.BACKBONE_STRIDES, anchor_stride=config.RPN_ANCHOR_STRIDE)
    return AnchorGenerator(
        scales=config.RPN_ANCHOR_SCALES, ratios=config.RPN_ANCHOR_RATIOS, strides=config.BACKBONE_STRIDES,
        anchor_stride=config.RPN_ANCHOR_STRIDE,
    )


def _is_matterport(config: Config) -> bool:
    return getattr(config, "ARCHITECTURE", "torchvision") == "matterport"


def build_backbone(config: Config) -> ResNetFPN:
    depth = int(str(config.BACKBONE).replace("resnet", ""))
    return ResNetFPN(depth=depth, norm=config.backbone_norm, fpn_channels=config.TOP_DOWN_PYRAMID_SIZE)


def build_rpn(config: Config, anchor_generator: AnchorGenerator) -> RPN:
    head = RPNHead(in_channels=config.TOP_DOWN_PYRAMID_SIZE, num_anchors=anchor_generator.num_anchors_per_location,
                   anchor_stride=config.RPN_ANCHOR_STRIDE)
    return RPN(
        head=head, anchor_generator=anchor_generator,
        box_coder_weights=weights_from_std_dev(config.RPN_BBOX_STD_DEV),
        pre_nms_top_n_train=config.PRE_NMS_LIMIT, pre_nms_top_n_test=config.pre_nms_limit_inference,
        post_nms_top_n_train=config.POST_NMS_ROIS_TRAINING, post_nms_top_n_test=config.POST_NMS_ROIS_INFERENCE,
        nms_thresh=config.RPN_NMS_THRESHOLD, per_level_nms=config.RPN_NMS_PER_LEVEL, min_size=config.RPN_MIN_SIZE,
        fg_iou=config.RPN_POSITIVE_IOU, bg_iou=config.RPN_NEGATIVE_IOU,
        batch_size_per_image=config.RPN_TRAIN_ANCHORS_PER_IMAGE, positive_fraction=0.5,
    )


def build_roi_heads(config: Config) -> RoIHeads:
    channels = config.TOP_DOWN_PYRAMID_SIZE
    pool = {"sampling_ratio": config.ROI_ALIGN_SAMPLING_RATIO, "aligned": config.ROI_ALIGN_ALIGNED}
    box_head = BoxHead(in_channels=channels, pool_size=config.POOL_SIZE, fc_size=config.FPN_CLASSIF_FC_LAYERS_SIZE)
    mask_head = MaskHead(in_channels=channels, conv_channels=config.MASK_HEAD_CONV_CHANNELS,
                         num_convs=config.MASK_HEAD_NUM_CONVS)
    return RoIHeads(
        box_roi_pool=PyramidRoIAlign(output_size=config.POOL_SIZE, **pool),
        box_head=box_head,
        box_predictor=BoxPredictor(in_features=box_head.out_features, num_classes=config.NUM_CLASSES),
        mask_roi_pool=PyramidRoIAlign(output_size=config.MASK_POOL_SIZE, **pool),
        mask_head=mask_head,
        mask_predictor=MaskPredictor(in_channels=mask_head.out_channels, num_classes=config.NUM_CLASSES),
        box_coder_weights=weights_from_std_dev(config.BBOX_STD_DEV),
        score_thresh=config.DETECTION_MIN_CONFIDENCE, nms_thresh=config.DETECTION_NMS_THRESHOLD,
        detections_per_img=config.DETECTION_MAX_INSTANCES, min_size=config.DETECTION_MIN_SIZE,  # defaults only
        batch_size_per_image=config.TRAIN_ROIS_PER_IMAGE, positive_fraction=config.ROI_POSITIVE_RATIO,
        fg_iou=config.ROI_POSITIVE_IOU, bg_iou=config.ROI_NEGATIVE_IOU, mask_size=int(config.MASK_SHAPE[0]),
    )


def build_model_parts(config: Config) -> dict[str, Any]:
    """The stages of a Mask R-CNN for ``config`` (not validated here; the network validates).

    ``ARCHITECTURE = "matterport"``: matterport's computation (:mod:`.matterport.build`).
    """
    if _is_matterport(config):
        return build_matterport_parts(config)
    anchor_generator = build_anchor_generator(config)
    return {
        "preprocessor": build_preprocessor(config),
        "backbone": build_backbone(config),
        "anchor_generator": anchor_generator,
        "rpn": build_rpn(config, anchor_generator),
        "roi_heads": build_roi_heads(config),
    }
