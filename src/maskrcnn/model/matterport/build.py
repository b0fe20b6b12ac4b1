"""Config → matterport stages (``ARCHITECTURE = "matterport"``); the counterpart of :mod:`..build`."""

from __future__ import annotations

from typing import Any

from ...config import Config
from .backbone import MatterportResNetFPN
from .heads import MatterportBoxHead, MatterportBoxPredictor, MatterportMaskHead, MatterportMaskPredictor
from .preprocess import MatterportPreprocessor
from .roi_align import MatterportPyramidRoIAlign
from .roi_heads import MatterportRoIHeads
from .rpn import MatterportRPN, MatterportRPNHead


def build_matterport_preprocessor(config: Config) -> MatterportPreprocessor:
    """matterport's ``mold_inputs`` for ``config`` (IMAGE_RESIZE_MODE, IMAGE_MIN/MAX_DIM, IMAGE_MIN_SCALE,
    MEAN_PIXEL)."""
    return MatterportPreprocessor(mean=config.MEAN_PIXEL, resize_mode=config.IMAGE_RESIZE_MODE,
                                  min_dim=config.IMAGE_MIN_DIM, max_dim=config.IMAGE_MAX_DIM,
                                  min_scale=config.IMAGE_MIN_SCALE)


def build_matterport_parts(config: Config) -> dict[str, Any]:
    """The stages of matterport's Mask R-CNN for ``config`` (keys as :func:`..build.build_model_parts`)."""
    channels = config.TOP_DOWN_PYRAMID_SIZE
    head = MatterportRPNHead(in_channels=channels, anchors_per_location=len(config.RPN_ANCHOR_RATIOS),
                             anchor_stride=config.RPN_ANCHOR_STRIDE)
    rpn = MatterportRPN(
        head=head, scales=config.RPN_ANCHOR_SCALES, ratios=config.RPN_ANCHOR_RATIOS, strides=config.BACKBONE_STRIDES,
        anchor_stride=config.RPN_ANCHOR_STRIDE, bbox_std_dev=config.RPN_BBOX_STD_DEV, pre_nms_limit=config.PRE_NMS_LIMIT,
        pre_nms_limit_inference=config.pre_nms_limit_inference, post_nms_rois_training=config.POST_NMS_ROIS_TRAINING,
        post_nms_rois_inference=config.POST_NMS_ROIS_INFERENCE, nms_threshold=config.RPN_NMS_THRESHOLD,
        positive_iou=config.RPN_POSITIVE_IOU, negative_iou=config.RPN_NEGATIVE_IOU,
        anchors_per_image=config.RPN_TRAIN_ANCHORS_PER_IMAGE,
    )
    box_head = MatterportBoxHead(in_channels=channels, pool_size=config.POOL_SIZE,
                                 fc_size=config.FPN_CLASSIF_FC_LAYERS_SIZE)
    mask_head = MatterportMaskHead(in_channels=channels, conv_channels=config.MASK_HEAD_CONV_CHANNELS,
                                   num_convs=config.MASK_HEAD_NUM_CONVS)
    roi_heads = MatterportRoIHeads(
        box_roi_pool=MatterportPyramidRoIAlign(output_size=config.POOL_SIZE), box_head=box_head,
        box_predictor=MatterportBoxPredictor(in_features=box_head.out_features, num_classes=config.NUM_CLASSES),
        mask_roi_pool=MatterportPyramidRoIAlign(output_size=config.MASK_POOL_SIZE), mask_head=mask_head,
        mask_predictor=MatterportMaskPredictor(in_channels=mask_head.out_channels, num_classes=config.NUM_CLASSES),
        bbox_std_dev=config.BBOX_STD_DEV, rois_per_image=config.TRAIN_ROIS_PER_IMAGE,
        positive_ratio=config.ROI_POSITIVE_RATIO, mask_shape=config.MASK_SHAPE,
    )
    return {
        "preprocessor": build_matterport_preprocessor(config),
        "backbone": MatterportResNetFPN(depth=int(str(config.BACKBONE).replace("resnet", "")), fpn_channels=channels),
        "anchor_generator": rpn.anchor_generator,  # pixel anchors (no state), as the generic network offers
        "rpn": rpn,
        "roi_heads": roi_heads,
    }
