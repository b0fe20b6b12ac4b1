"""Annotation formats, one module each: ``via``, ``coco``, ``labelme``, ``masks`` (DSB 2018
folders) and ``shapes`` (synthetic). Each ``add_<format>(dataset, path, ...)`` adds classes
and images to any :class:`~maskrcnn.data.dataset.Dataset`, so one dataset can mix sources;
:func:`maskrcnn.data.loading.load_dataset` picks the format and returns a prepared dataset.
"""

FORMATS = ("via", "coco", "labelme", "masks", "shapes")
