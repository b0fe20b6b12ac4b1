"""A tiny builder of self-contained HTML pages: sections, tables, figures as base64 PNG.

No JavaScript, no external resources: the page opens from a file, offline, in any
browser. Figures are matplotlib Figures (rendered to PNG in memory) or ``H×W×3`` uint8
arrays; every ``<img>`` carries a ``data:image/png;base64,…`` URI.
"""

from __future__ import annotations

import base64
import html
import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..fileio import write_text

_STYLE = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto; max-width: 1100px;
       color: #222; line-height: 1.45; padding: 0 1em; }
h1 { border-bottom: 2px solid #444; padding-bottom: .2em; }
h2 { border-bottom: 1px solid #bbb; margin-top: 2.2em; }
nav ol { columns: 2; }
figure { margin: 1em 0; display: inline-block; vertical-align: top; max-width: 100%; }
figure img { max-width: 100%; height: auto; border: 1px solid #ddd; }
figcaption { font-size: .9em; color: #555; }
table { border-collapse: collapse; margin: .8em 0; font-size: .9em; }
th, td { border: 1px solid #ccc; padding: .25em .6em; text-align: right; }
th { background: #f2f2f2; }
td.text, th.text { text-align: left; }
p.note { color: #666; font-style: italic; }
"""


#: Image arrays larger than this (pixels, longest side) are downscaled before embedding.
MAX_IMAGE_SIDE = 1024
#: Image arrays smaller than this are enlarged by an integer factor (pixels stay sharp squares).
MIN_IMAGE_SIDE = 384


def png_bytes(picture: Any, *, max_side: int = MAX_IMAGE_SIDE, min_side: int = MIN_IMAGE_SIDE) -> bytes:
    """PNG bytes of a matplotlib Figure or of an ``H×W`` / ``H×W×3`` array (uint8, or float in [0, 1]);
    arrays whose longest side exceeds ``max_side`` are downscaled (the page stays small), those below
    ``min_side`` enlarged by the integer factor that reaches it (nearest neighbour)."""
    if hasattr(picture, "savefig"):
        buffer = io.BytesIO()
        picture.savefig(buffer, format="png", dpi=picture.dpi)
        return buffer.getvalue()
    from PIL import Image

    array = np.asarray(picture)
    if array.dtype != np.uint8:
        array = (np.clip(array.astype(np.float64), 0.0, 1.0) * 255).round().astype(np.uint8)
    image = Image.fromarray(np.ascontiguousarray(array))
    if max(image.size) > max_side:
        scale = max_side / max(image.size)
        image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))),
                             Image.Resampling.LANCZOS)
    elif max(image.size) < min_side:
        factor = -(-min_side // max(image.size))
        image = image.resize((image.width * factor, image.height * factor), Image.Resampling.NEAREST)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def data_uri(picture: Any) -> str:
    """``data:image/png;base64,…`` of a Figure or an image array."""
    return "data:image/png;base64," + base64.b64encode(png_bytes(picture)).decode("ascii")


def escape(text: Any) -> str:
    return html.escape(str(text), quote=True)


def format_value(value: Any) -> str:
    """Numbers compactly (floats to 4 significant digits), everything else as text."""
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        value = float(value)
        if value != value:
            return "nan"
        return f"{value:.4g}"
    return str(value)


@dataclass
class Section:
    """One ``<section>``: a title, then blocks of HTML in order."""

    id: str
    title: str
    blocks: list[str] = field(default_factory=list)

    def text(self, paragraph: str, *, note: bool = False) -> "Section":
        cls = ' class="note"' if note else ""
        self.blocks.append(f"<p{cls}>{escape(paragraph)}</p>")
        return self

    def figure(self, picture: Any, caption: str, *, alt: str | None = None) -> "Section":
        """Embed a Figure (closed afterwards) or an image array, with a caption."""
        uri = data_uri(picture)
        if hasattr(picture, "clear"):
            picture.clear()
        self.blocks.append(
            f'<figure><img src="{uri}" alt="{escape(alt or caption)}">'
            f"<figcaption>{escape(caption)}</figcaption></figure>"
        )
        return self

    def table(self, header: Sequence[str], rows: Sequence[Sequence[Any]], *, text_columns: int = 1) -> "Section":
        """A table; the first ``text_columns`` columns are left-aligned text, the rest numbers."""
        def cell(tag: str, i: int, value: Any) -> str:
            cls = ' class="text"' if i < text_columns else ""
            return f"<{tag}{cls}>{escape(format_value(value))}</{tag}>"

        head = "".join(cell("th", i, h) for i, h in enumerate(header))
        body = "".join("<tr>" + "".join(cell("td", i, v) for i, v in enumerate(row)) + "</tr>" for row in rows)
        self.blocks.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        return self

    def raw(self, html_text: str) -> "Section":
        """Trusted HTML (e.g. a table made by another module)."""
        self.blocks.append(html_text)
        return self

    def render(self) -> str:
        return f'<section id="{escape(self.id)}">\n<h2>{escape(self.title)}</h2>\n' + "\n".join(self.blocks) + \
            "\n</section>"


@dataclass
class Page:
    """A page of :class:`Section` s with a table of contents."""

    title: str
    intro: list[str] = field(default_factory=list)
    sections: list[Section] = field(default_factory=list)

    def section(self, id: str, title: str) -> Section:
        section = Section(id=id, title=title)
        self.sections.append(section)
        return section

    def render(self) -> str:
        toc = "".join(f'<li><a href="#{escape(s.id)}">{escape(s.title)}</a></li>' for s in self.sections)
        intro = "".join(f"<p>{escape(p)}</p>" for p in self.intro)
        body = "\n".join(s.render() for s in self.sections)
        return (
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{escape(self.title)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
            f"<h1>{escape(self.title)}</h1>\n{intro}\n<nav><ol>{toc}</ol></nav>\n{body}\n</body>\n</html>\n"
        )

    def write(self, path: str | os.PathLike) -> Path:
        """Write the page atomically (:func:`maskrcnn.fileio.write_text`)."""
        return write_text(path, self.render())
