"""Instance geometry: the canonical shapes of every format, and their rasterization.

**Coordinate convention** (the same for every format, and COCO's): coordinates are
continuous pixels; pixel ``(row i, column j)`` covers ``[j, j+1) x [i, i+1)`` and its
center is ``(j + 0.5, i + 0.5)``. A pixel belongs to a shape when its *center* is inside
(even-odd rule for polygons). So the polygon ``(0,0) (4,0) (4,4) (0,4)`` covers exactly
the 4x4 pixels ``0..3``. Polygons are rasterized with pycocotools' own algorithm
(``frPyObjects``: the same rule with vertices snapped to a 1/5-pixel grid), reimplemented
in numpy, so a polygon gives the same pixels whichever format it came from and whether
or not it went through pycocotools. Ellipses use the exact center rule. Points outside
the image are fine: the raster is clipped to the image.

Canonical shapes (plain dicts, picklable, stored in ``image_info["instances"][k]["shapes"]``):

- ``{"type": "polygon", "points": float64 [K, 2] (x, y)}`` — closed implicitly;
- ``{"type": "ellipse", "cx", "cy", "rx", "ry", "theta"}`` — ``theta`` in radians (circles: rx == ry);
- ``{"type": "rle", "rle": {"counts": str | list[int], "size": [h, w]}}`` — COCO RLE;
- ``{"type": "mask_file", "path": str}`` — a PNG whose non-zero pixels are the instance;
- ``{"type": "bitmap", "x": int, "y": int, "mask": bool [h, w]}`` — a mask patch at (x, y).

An instance is the union of its shapes. Nothing here loops over pixels in Python.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from ..errors import DatasetError

Shape = dict[str, Any]


# ----------------------------------------------------------------------------- constructors
def polygon(points: Any) -> Shape:
    """A polygon shape from ``[[x, y], ...]`` or ``[K, 2]`` points."""
    return {"type": "polygon", "points": np.asarray(points, dtype=np.float64).reshape(-1, 2)}


def rectangle(x1: float, y1: float, x2: float, y2: float) -> Shape:
    """The axis-aligned rectangle with corners ``(x1, y1)`` and ``(x2, y2)``, as a polygon."""
    xa, xb = sorted((float(x1), float(x2)))
    ya, yb = sorted((float(y1), float(y2)))
    return polygon([[xa, ya], [xb, ya], [xb, yb], [xa, yb]])


def ellipse(cx: float, cy: float, rx: float, ry: float, theta: float = 0.0) -> Shape:
    return {"type": "ellipse", "cx": float(cx), "cy": float(cy), "rx": float(rx), "ry": float(ry),
            "theta": float(theta)}


# ----------------------------------------------------------------------------- measures
def polygon_area(points: np.ndarray) -> float:
    """Absolute shoelace area of a ``[K, 2]`` polygon (pixels²)."""
    x, y = points[:, 0], points[:, 1]
    return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2.0)


def shape_bounds(shape: Shape) -> tuple[float, float, float, float] | None:
    """``(x1, y1, x2, y2)`` continuous extent of a geometric shape; None for rle/mask_file/bitmap."""
    kind = shape["type"]
    if kind == "polygon":
        pts = shape["points"]
        return float(pts[:, 0].min()), float(pts[:, 1].min()), float(pts[:, 0].max()), float(pts[:, 1].max())
    if kind == "ellipse":
        c, s = math.cos(shape["theta"]), math.sin(shape["theta"])
        hx = math.hypot(shape["rx"] * c, shape["ry"] * s)
        hy = math.hypot(shape["rx"] * s, shape["ry"] * c)
        return shape["cx"] - hx, shape["cy"] - hy, shape["cx"] + hx, shape["cy"] + hy
    return None


def shape_area(shape: Shape) -> float | None:
    """Geometric area of a polygon or ellipse (pixels²); None for raster shapes."""
    if shape["type"] == "polygon":
        return polygon_area(shape["points"])
    if shape["type"] == "ellipse":
        return math.pi * abs(shape["rx"] * shape["ry"])
    return None


# ----------------------------------------------------------------------------- rasterization
def _polygon_patch(points: np.ndarray, height: int, width: int) -> tuple[int, int, np.ndarray] | None:
    """Rasterize one polygon exactly as pycocotools' ``rleFrPoly`` does, vectorized.

    pycocotools walks the boundary on a 5x finer integer grid, keeps the points where the
    boundary crosses a column center, and toggles the mask at the first pixel center below
    each crossing; the result is the pixel-center rule up to that 1/5-pixel quantization.
    Returns ``(row0, col0, patch)`` with ``patch`` bool ``[rows, cols]`` (full image height,
    the polygon's columns), or None when no pixel is covered.
    """
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    if len(pts) < 3 or not np.isfinite(pts).all():
        return None
    scale = 5.0
    qx = np.trunc(scale * pts[:, 0] + 0.5).astype(np.int64)  # C's (int) cast truncates toward zero
    qy = np.trunc(scale * pts[:, 1] + 0.5).astype(np.int64)
    xs, ys = qx, qy
    xe, ye = np.roll(qx, -1), np.roll(qy, -1)
    dx, dy = np.abs(xe - xs), np.abs(ys - ye)
    keep = (dx > 0) | (dy > 0)  # a repeated vertex adds nothing
    if not keep.any():
        return None
    xs, ys, xe, ye, dx, dy = xs[keep], ys[keep], xe[keep], ye[keep], dx[keep], dy[keep]
    major = dx >= dy
    flip = (major & (xs > xe)) | (~major & (ys > ye))
    xs, xe = np.where(flip, xe, xs), np.where(flip, xs, xe)
    ys, ye = np.where(flip, ye, ys), np.where(flip, ys, ye)
    steps = np.where(major, dx, dy)
    slope = np.where(major, (ye - ys) / np.maximum(dx, 1), (xe - xs) / np.maximum(dy, 1))
    counts = steps + 1
    edge = np.repeat(np.arange(len(steps)), counts)
    d = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
    t = np.where(flip[edge], steps[edge] - d, d)
    along = np.trunc(slope[edge] * t + 0.5 + np.where(major[edge], ys[edge], xs[edge])).astype(np.int64)
    u = np.where(major[edge], t + xs[edge], along)
    v = np.where(major[edge], along, t + ys[edge])
    j = np.nonzero(u[1:] != u[:-1])[0] + 1
    if len(j) == 0:
        return None
    xd = (np.where(u[j] < u[j - 1], u[j], u[j] - 1) + 0.5) / scale - 0.5
    valid = (np.floor(xd) == xd) & (xd >= 0) & (xd <= width - 1)
    yd = (np.minimum(v[j], v[j - 1]) + 0.5) / scale - 0.5
    yd = np.ceil(np.clip(yd, 0, height))
    cols, rows = xd[valid].astype(np.int64), yd[valid].astype(np.int64)
    if len(cols) == 0:
        return None
    c0, c1 = int(cols.min()), int(cols.max()) + 1
    toggles = np.zeros((c1 - c0) * height + 1, dtype=np.int32)  # column-major, like an RLE
    np.add.at(toggles, (cols - c0) * height + rows, 1)
    inside = (np.cumsum(toggles[:-1]) & 1).astype(bool)
    patch = inside.reshape(c1 - c0, height).T
    rows_any = np.nonzero(patch.any(axis=1))[0]
    if len(rows_any) == 0:
        return None
    r0, r1 = int(rows_any[0]), int(rows_any[-1]) + 1
    return r0, c0, patch[r0:r1]


def _ellipse_patch(shape: Shape, height: int, width: int) -> tuple[int, int, np.ndarray] | None:
    bounds = shape_bounds(shape)
    rx, ry = abs(shape["rx"]), abs(shape["ry"])
    if bounds is None or rx <= 0 or ry <= 0:
        return None
    x1, y1, x2, y2 = bounds
    r0, r1 = max(0, math.floor(y1 - 0.5)), min(height, math.ceil(y2 + 0.5))
    c0, c1 = max(0, math.floor(x1 - 0.5)), min(width, math.ceil(x2 + 0.5))
    if r1 <= r0 or c1 <= c0:
        return None
    dy = np.arange(r0, r1, dtype=np.float64)[:, None] + 0.5 - shape["cy"]
    dx = np.arange(c0, c1, dtype=np.float64)[None, :] + 0.5 - shape["cx"]
    c, s = math.cos(shape["theta"]), math.sin(shape["theta"])
    u = (dx * c + dy * s) / rx
    v = (-dx * s + dy * c) / ry
    return r0, c0, (u * u + v * v) <= 1.0


def decode_rle(rle: dict, height: int, width: int, *, where: str = "RLE") -> np.ndarray:
    """A COCO RLE (compressed ``counts`` string or uncompressed list) as bool ``[height, width]``."""
    from pycocotools import mask as mask_utils

    size = rle.get("size")
    if size is None or [int(v) for v in size] != [height, width]:
        raise DatasetError(f"{where}: RLE size {size} does not match the image ({height}x{width}, [h, w])")
    counts = rle.get("counts")
    try:
        if isinstance(counts, list):
            rle = mask_utils.frPyObjects({"counts": counts, "size": [height, width]}, height, width)
        elif isinstance(counts, str):
            rle = {"counts": counts.encode("ascii"), "size": [height, width]}
        elif not isinstance(counts, bytes):
            raise DatasetError(f"{where}: RLE 'counts' must be a string or a list of integers")
        return mask_utils.decode(rle).astype(bool)
    except DatasetError:
        raise
    except Exception as exc:  # pycocotools raises bare exceptions on malformed counts
        raise DatasetError(f"{where}: invalid RLE ({exc})") from None


def read_mask_file(path: str, *, where: str = "mask") -> np.ndarray:
    """Non-zero pixels of a mask image (any PIL mode; color masks use their max channel) as bool [H, W]."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img.load()
            arr = np.asarray(img)
    except FileNotFoundError:
        raise DatasetError(f"{where}: mask file {path} not found") from None
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise DatasetError(f"{where}: mask file {path} is unreadable ({exc})") from None
    if arr.ndim == 3:
        arr = arr[..., :3].max(axis=-1) if arr.shape[-1] >= 3 else arr[..., 0]
    return arr > 0


def paint(canvas: np.ndarray, shape: Shape, *, where: str = "shape") -> None:
    """OR the pixels of ``shape`` into ``canvas`` (bool ``[H, W]``), clipping to the canvas."""
    height, width = canvas.shape
    kind = shape.get("type")
    if kind == "polygon":
        patch = _polygon_patch(shape["points"], height, width)
    elif kind == "ellipse":
        patch = _ellipse_patch(shape, height, width)
    elif kind == "rle":
        canvas |= decode_rle(shape["rle"], height, width, where=where)
        return
    elif kind == "mask_file":
        mask = read_mask_file(shape["path"], where=where)
        if mask.shape != canvas.shape:
            raise DatasetError(f"{where}: mask file {shape['path']} is {mask.shape[1]}x{mask.shape[0]} "
                               f"but the image is {width}x{height} (WxH)")
        canvas |= mask
        return
    elif kind == "bitmap":
        mask = np.asarray(shape["mask"], dtype=bool)
        x, y = int(shape["x"]), int(shape["y"])
        ys, xs = max(0, y), max(0, x)
        ye, xe = min(height, y + mask.shape[0]), min(width, x + mask.shape[1])
        if ye > ys and xe > xs:
            canvas[ys:ye, xs:xe] |= mask[ys - y:ye - y, xs - x:xe - x]
        return
    else:
        raise DatasetError(f"{where}: unknown shape type {kind!r}")
    if patch is not None:
        r0, c0, m = patch
        canvas[r0:r0 + m.shape[0], c0:c0 + m.shape[1]] |= m


def rasterize(shapes: Sequence[Shape], height: int, width: int, *, where: str = "instance") -> np.ndarray:
    """The union of ``shapes`` as a bool mask ``[height, width]``."""
    canvas = np.zeros((int(height), int(width)), dtype=bool)
    for shape in shapes:
        paint(canvas, shape, where=where)
    return canvas


def rasterize_polygon(points: Any, height: int, width: int) -> np.ndarray:
    """One polygon ``[[x, y], ...]`` as a bool mask ``[height, width]`` (pixel-center rule)."""
    return rasterize([polygon(points)], height, width)


def pixel_count(shapes: Sequence[Shape], height: int, width: int, *, where: str = "instance") -> int:
    """Number of image pixels the union of ``shapes`` covers (cheap for polygons and ellipses)."""
    if all(s["type"] in ("polygon", "ellipse") for s in shapes) and len(shapes) == 1:
        shape = shapes[0]
        patch = (_polygon_patch(shape["points"], height, width) if shape["type"] == "polygon"
                 else _ellipse_patch(shape, height, width))
        return 0 if patch is None else int(patch[2].sum())
    return int(rasterize(shapes, height, width, where=where).sum())
