"""Weight statistics of a torch model (matterport's ``display_weight_stats``) and tables.

One row per parameter: name, shape, min, max, std, and an alert when the tensor looks
dead (constant, not a bias), overflowing (|value| > 1000) or holds NaN/inf. As rows
(:func:`weight_stats`), plain text, HTML, or a Figure (PNG).
"""

from __future__ import annotations

import html
import math
import os
from collections.abc import Iterable, Sequence

__all__ = ["weight_stats", "weight_stats_text", "weight_stats_html", "display_weight_stats", "display_table"]

_HEADER = ("WEIGHT NAME", "SHAPE", "MIN", "MAX", "STD")


def _named_parameters(model):
    """``named_parameters()`` of an ``nn.Module`` or of a wrapper holding one in
    ``.model``/``.net``/``.module``."""
    for obj in (model, getattr(model, "model", None), getattr(model, "net", None), getattr(model, "module", None)):
        if obj is not None and hasattr(obj, "named_parameters"):
            return obj.named_parameters()
    raise TypeError(f"display_weight_stats needs a torch nn.Module (or a wrapper with .model), "
                    f"got {type(model).__name__}")


def weight_stats(model, *, trainable_only: bool = False) -> list[dict]:
    """One dict per parameter: ``name``, ``shape`` (tuple), ``min``, ``max``, ``std``
    (population std, like numpy), ``trainable`` and ``alert`` (``""`` when fine)."""
    import torch

    rows = []
    with torch.no_grad():
        for name, p in _named_parameters(model):
            if trainable_only and not p.requires_grad:
                continue
            w = p.detach().float()
            if w.numel() == 0:
                lo = hi = sd = float("nan")
            else:
                lo, hi = float(w.min()), float(w.max())
                sd = float(w.std(unbiased=False))
            alerts = []
            if not all(math.isfinite(v) for v in (lo, hi)) and w.numel():
                alerts.append("nan/inf!")
            elif lo == hi and not name.endswith("bias"):
                alerts.append("dead?")
            if w.numel() and (abs(lo) > 1000 or abs(hi) > 1000):
                alerts.append("overflow?")
            rows.append({"name": name, "shape": tuple(p.shape), "min": lo, "max": hi, "std": sd,
                         "trainable": bool(p.requires_grad), "alert": " ".join(alerts)})
    return rows


def _formatted(rows: Sequence[dict]) -> list[tuple[str, str, str, str, str]]:
    return [(r["name"] + (f"  *** {r['alert']}" if r["alert"] else ""), str(r["shape"]),
             f"{r['min']:+9.4f}", f"{r['max']:+10.4f}", f"{r['std']:+9.4f}") for r in rows]


def weight_stats_text(model, *, trainable_only: bool = False) -> str:
    """The weight table as aligned plain text (header + one line per parameter)."""
    table = [_HEADER, *_formatted(weight_stats(model, trainable_only=trainable_only))]
    widths = [max(len(row[c]) for row in table) for c in range(len(_HEADER))]
    return "\n".join("  ".join(cell.ljust(widths[c]) for c, cell in enumerate(row)).rstrip() for row in table)


def display_table(table: Iterable[Iterable]) -> str:
    """An HTML ``<table>`` of rows of values (matterport's ``display_table``). Returns the
    HTML string; wrap it in ``IPython.display.HTML`` to show it in a notebook."""
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(col))}</td>" for col in row) + "</tr>" for row in table)
    return "<table>" + body + "</table>"


def weight_stats_html(model, *, trainable_only: bool = False) -> str:
    """The weight table as HTML, alerts in red."""
    rows = weight_stats(model, trainable_only=trainable_only)
    out = ["<table>", "<tr>" + "".join(f"<th>{h}</th>" for h in _HEADER) + "</tr>"]
    for r, cells in zip(rows, _formatted(rows)):
        name = html.escape(r["name"])
        if r["alert"]:
            name += f" <span style='color:red'>*** {html.escape(r['alert'])}</span>"
        out.append("<tr>" + f"<td>{name}</td>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells[1:]) + "</tr>")
    out.append("</table>")
    return "".join(out)


def _monospace_cell(fig) -> tuple[float, float]:
    """(width, height) in inches of one character of the 9 pt monospace font as drawn."""
    probe = fig.text(0, 0, "M" * 40 + "\n" + "M" * 40, family="monospace", fontsize=9)
    extent = probe.get_window_extent(renderer=fig.canvas.get_renderer())
    probe.remove()
    return extent.width / 40 / fig.dpi, extent.height / 2 / fig.dpi


def display_weight_stats(model, *, trainable_only: bool = False, limit: int | None = None,
                         dpi: int = 100, save_path: str | os.PathLike | None = None,
                         html_path: str | os.PathLike | None = None):
    """The weight table of ``model`` as a Figure (alert rows in red); ``save_path`` writes
    a PNG, ``html_path`` the HTML table. ``limit`` keeps the first rows only."""
    from .evaluation.plots import new_figure, save_figure
    from .fileio import write_text

    rows = weight_stats(model, trainable_only=trainable_only)
    if html_path is not None:
        write_text(html_path, weight_stats_html(model, trainable_only=trainable_only))
    shown = rows if limit is None else rows[: max(int(limit), 0)]
    table = [_HEADER, *_formatted(shown)]
    widths = [max(len(row[c]) for row in table) for c in range(len(_HEADER))]
    lines = ["  ".join(cell.ljust(widths[c]) for c, cell in enumerate(row)) for row in table]
    if len(shown) < len(rows):
        lines.append(f"... {len(rows) - len(shown)} more parameters")
    fig = new_figure(figsize=(4.0, 1.0), dpi=dpi)
    char_w, line_h = _monospace_cell(fig)
    margin = 0.2
    width_in = max(4.0, char_w * max(len(line) for line in lines) + 2 * margin)
    height_in = max(1.0, line_h * len(lines) + 2 * margin)
    fig.set_size_inches(width_in, height_in)
    for i, line in enumerate(lines):
        alert = 0 < i <= len(shown) and bool(shown[i - 1]["alert"])
        fig.text(margin, height_in - margin - line_h * (i + 1), line, transform=fig.dpi_scale_trans,
                 family="monospace", fontsize=9, color="red" if alert else "black",
                 weight="bold" if i == 0 else "normal")
    if save_path is not None:
        save_figure(fig, save_path)
    return fig
