"""Instance masks → polygons an annotation tool can open (VIA, labelme), and back.

Coordinates follow the annotation tools' convention: ``x`` is the column, ``y`` the row,
and pixel ``(row r, column c)`` is the unit square centred on ``(x=c, y=r)`` — the
convention of ``skimage.draw.polygon`` and ``PIL.ImageDraw.polygon`` that the tutorial's
loaders use to turn polygons back into masks.

The outline is the 0.5 iso-line of the mask sampled at pixel centres (``contourpy``,
installed with matplotlib), snapped back onto the pixel edges: a rectangle of pixels
``c0..c1`` gets edges at ``c0 - 0.5`` and ``c1 + 0.5``, and with ``tolerance=0`` the polygon
rasterizes back to exactly the mask (holes aside). Rings are then simplified with
Ramer–Douglas–Peucker at ``tolerance`` pixels. Holes cannot be
expressed by VIA or labelme polygons, so they are dropped: a polygon covers its hole.
Parts are 4-connected: pixels touching only diagonally become separate polygons.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

import numpy as np

from ..errors import ImageError

Parts = Literal["all", "largest"]


def polygon_area(points: np.ndarray) -> float:
    """Absolute area of a ring ``[K,2]`` of ``(x, y)`` points (shoelace formula; open or closed)."""
    return abs(_signed_area(np.asarray(points, dtype=np.float64)))


def _signed_area(points: np.ndarray) -> float:
    if len(points) < 3:
        return 0.0
    x, y = points[:, 0], points[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y))


def _rdp_open(points: np.ndarray, tolerance: float) -> np.ndarray:
    """Ramer–Douglas–Peucker on an open polyline ``[K,2]``: keeps both end points."""
    keep = np.zeros(len(points), dtype=bool)
    keep[0] = keep[-1] = True
    stack = [(0, len(points) - 1)]
    while stack:
        start, end = stack.pop()
        if end - start < 2:
            continue
        a, b = points[start], points[end]
        inner = points[start + 1 : end]
        ab = b - a
        norm = float(np.hypot(ab[0], ab[1]))
        if norm == 0.0:
            dist = np.hypot(inner[:, 0] - a[0], inner[:, 1] - a[1])
        else:
            dist = np.abs(ab[0] * (inner[:, 1] - a[1]) - ab[1] * (inner[:, 0] - a[0])) / norm
        i = int(np.argmax(dist))
        if dist[i] > tolerance:
            mid = start + 1 + i
            keep[mid] = True
            stack.append((start, mid))
            stack.append((mid, end))
    return points[keep]


def simplify_polygon(points: np.ndarray, tolerance: float) -> np.ndarray:
    """Simplify a closed ring ``[K,2]`` (first point not repeated) to within ``tolerance`` pixels.

    Ramer–Douglas–Peucker, split at the vertex farthest from the first one so that the
    ring's shape does not depend on where it starts. The ring is rotated to start at its
    lowest-x (then lowest-y) vertex; ``tolerance=0`` removes only collinear vertices.
    Returns at least 3 points when given at least 3.
    """
    points = np.asarray(points, dtype=np.float64)
    if len(points) <= 3:
        return points.copy()
    # Start at the lowest-x (then lowest-y) vertex: a corner of the convex hull, which any
    # good simplification keeps (a start in the middle of a straight edge would survive).
    start = int(np.lexsort((points[:, 1], points[:, 0]))[0])
    points = np.roll(points, -start, axis=0)
    far = int(np.argmax(np.hypot(points[:, 0] - points[0, 0], points[:, 1] - points[0, 1])))
    if far == 0:
        return points[:1].copy()
    first = _rdp_open(points[: far + 1], tolerance)
    second = _rdp_open(np.concatenate([points[far:], points[:1]]), tolerance)
    ring = np.concatenate([first, second[1:-1]])
    if len(ring) < 3:
        # A sliver thinner than the tolerance: keep the vertex farthest from the chord
        # so that the result is still a polygon.
        a, b = points[0], points[far]
        ab = b - a
        dist = np.abs(ab[0] * (points[:, 1] - a[1]) - ab[1] * (points[:, 0] - a[0]))
        ring = points[sorted({0, far, int(np.argmax(dist))})]
    return ring


@lru_cache(maxsize=1)
def _outer_sign() -> float:
    """The sign of the signed area that contourpy gives outer boundaries (holes get the other)."""
    import contourpy

    z = np.zeros((3, 3))
    z[1, 1] = 1.0
    line = contourpy.contour_generator(z=z, line_type="Separate").lines(0.5)[0]
    return 1.0 if _signed_area(line[:-1]) > 0 else -1.0


def _to_pixel_edges(ring: np.ndarray) -> np.ndarray:
    """Turn the iso-line of a 0/1 field into the exact outline along pixel edges.

    Every vertex of the 0.5 iso-line is the midpoint of a pixel edge: on a vertical edge
    (``x`` half-integer) or a horizontal one (``y`` half-integer). Where two consecutive
    vertices lie on perpendicular edges the iso-line cuts a pixel corner diagonally;
    inserting that grid corner restores the staircase, which rasterizes (pixel centres
    inside) back to exactly the mask.
    """
    out = []
    count = len(ring)
    for i in range(count):
        a, b = ring[i], ring[(i + 1) % count]
        out.append(a)
        if a[0] != b[0] and a[1] != b[1]:
            on_vertical_edge = abs((a[0] % 1.0) - 0.5) < 1e-6
            out.append(np.array([a[0], b[1]]) if on_vertical_edge else np.array([b[0], a[1]]))
    return np.asarray(out, dtype=np.float64)


def mask_to_polygons(
    mask: np.ndarray,
    *,
    tolerance: float = 1.0,
    parts: Parts = "all",
    min_area: float = 1.0,
) -> list[np.ndarray]:
    """Outer outlines of a binary mask as polygons.

    Args:
        mask: ``[H,W]`` bool (or 0/1, or probabilities thresholded at 0.5).
        tolerance: simplification tolerance in pixels (0: one vertex per pixel edge crossing).
        parts: ``"all"`` every connected part (largest first), ``"largest"`` only the biggest.
        min_area: parts whose polygon area (pixels²) is below this are dropped.

    Returns:
        a list of ``[K,2]`` float64 arrays of ``(x, y)`` vertices, ``K >= 3``, ring not
        closed (first point not repeated), largest area first; empty for an empty mask.
    """
    import contourpy

    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ImageError(f"mask_to_polygons: expected a [H,W] mask, got shape {tuple(mask.shape)}")
    if parts not in ("all", "largest"):
        raise ValueError(f"parts={parts!r}: choose 'all' or 'largest'")
    binary = mask > 0.5 if mask.dtype.kind == "f" else mask.astype(bool)
    if not binary.any():
        return []
    # Crop to the mask's bounding box (plus a zero border) so big images stay cheap.
    rows = np.flatnonzero(binary.any(axis=1))
    cols = np.flatnonzero(binary.any(axis=0))
    r0, r1, c0, c1 = rows[0], rows[-1], cols[0], cols[-1]
    z = np.pad(binary[r0 : r1 + 1, c0 : c1 + 1].astype(np.float64), 1)
    x = np.arange(c0 - 1, c1 + 2, dtype=np.float64)
    y = np.arange(r0 - 1, r1 + 2, dtype=np.float64)
    lines = contourpy.contour_generator(x=x, y=y, z=z, line_type="Separate").lines(0.5)
    sign = _outer_sign()
    rings = []
    for line in lines:
        ring = np.asarray(line, dtype=np.float64)
        if len(ring) > 1 and np.array_equal(ring[0], ring[-1]):
            ring = ring[:-1]
        if len(ring) < 3 or _signed_area(ring) * sign <= 0:
            continue  # a hole (or degenerate)
        ring = simplify_polygon(_to_pixel_edges(ring), tolerance)
        area = polygon_area(ring)
        if len(ring) >= 3 and area >= min_area and area > 0:
            rings.append((area, ring))
    rings.sort(key=lambda item: -item[0])
    result = [ring for _, ring in rings]
    return result[:1] if parts == "largest" else result


def polygons_to_mask(polygons: list[np.ndarray], height: int, width: int) -> np.ndarray:
    """Rasterize polygons (``[K,2]`` ``(x, y)``, pixel centres at integers) into one ``[H,W]`` bool mask.

    A pixel is set when its centre lies inside a polygon (even-odd rule per polygon, the
    union over polygons) — ``skimage.draw.polygon``'s rule. It inverts
    :func:`mask_to_polygons` at ``tolerance=0`` exactly, holes aside.
    """
    height, width = int(height), int(width)
    mask = np.zeros((height, width), dtype=bool)
    cols = np.arange(width, dtype=np.float64)
    for poly in polygons:
        poly = np.asarray(poly, dtype=np.float64)
        if len(poly) < 3:
            continue
        x0, y0 = poly[:, 0], poly[:, 1]
        x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
        top = max(0, int(np.ceil(y0.min())))
        bottom = min(height - 1, int(np.floor(y0.max())))
        for row in range(top, bottom + 1):
            yc = float(row)
            # Half-open rule: an edge counts when the row lies in [min(y), max(y)).
            crosses = (y0 <= yc) != (y1 <= yc)
            if not crosses.any():
                continue
            t = (yc - y0[crosses]) / (y1[crosses] - y0[crosses])
            xs = x0[crosses] + t * (x1[crosses] - x0[crosses])
            inside = (xs[None, :] > cols[:, None]).sum(axis=1) % 2 == 1
            mask[row] |= inside
    return mask
