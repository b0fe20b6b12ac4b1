"""matterport's Mask R-CNN computation in PyTorch (``Config.ARCHITECTURE = "matterport"``).

The same stages as the project's network (preprocess → backbone+FPN → RPN → ROI heads →
postprocess), computed as matterport's Keras code computes them, so that matterport's ``.h5``
weights give matterport's detections:

* :mod:`.layers`: Keras BatchNorm (eps 1e-3, moving statistics), TF ``"same"`` max-pooling;
* :mod:`.backbone`: matterport's ResNet-50/101 (bias-carrying convs, stride on each stage's
  first 1×1) + FPN, every module named after its Keras layer;
* :mod:`.geometry`: matterport's normalized ``(y1, x1, y2, x2)`` boxes, anchors, box deltas;
* :mod:`.preprocess`: ``resize_image`` (modes none/square/pad64/crop) and ``mold_image``;
* :mod:`.rpn`: the 2-way softmax RPN head and the proposal layer (global top-k, NMS);
* :mod:`.roi_align`: ``crop_and_resize`` ROI pooling with matterport's level assignment;
* :mod:`.heads`: the convolutional box head with BatchNorm and the BatchNorm mask head;
* :mod:`.detection`: the argmax detection layer (per-class NMS);
* :mod:`.roi_heads`: the stage that runs the heads (and their training targets and losses);
* :mod:`.unmold`: ``unmold_detections``: integer boxes, masks resized and thresholded at 0.5.

Box convention inside these stages: matterport's normalized ``(y1, x1, y2, x2)``
(:func:`.geometry.norm_boxes`), unless a docstring says pixels.
"""
