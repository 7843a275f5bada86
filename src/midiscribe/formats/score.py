"""Score pages from MusicXML: SVG with Verovio, PDF and PNG through CairoSVG (the ``score`` extra).

Verovio (LGPL-3.0) engraves the MusicXML we write to one SVG per A4 page; CairoSVG (LGPL-3.0, on the
system's Cairo) draws those pages into one PDF or into one PNG per page. Both are imported only here,
when a score is asked for, and fail with the ``pip install`` line that fixes them.
"""

from __future__ import annotations

import io
import os
from typing import Any

from midiscribe.errors import OptionsError

__all__ = ["SCORE_FORMATS", "render_pages", "score_available"]

SCORE_FORMATS = ("svg", "pdf", "png")
_PAGE = {"pageWidth": 2100, "pageHeight": 2970, "scale": 40, "adjustPageHeight": False}  # A4, tenths of mm
PNG_WIDTH_PX = 1654  # an A4 page at 200 dpi
_HINT = "rendered scores need the score extra: pip install 'midiscribe[score]'"


def score_available(fmt: str) -> str | None:
    """None if ``fmt`` pages can be made here, otherwise what to install."""
    try:
        import verovio  # noqa: F401

        if fmt in ("pdf", "png"):
            import cairosvg  # noqa: F401
    except (ImportError, OSError) as exc:  # OSError: the Cairo library itself is missing
        return f"{_HINT} ({exc})"
    return None


def _svg_pages(musicxml: bytes) -> list[str]:
    try:
        import verovio
    except ImportError as exc:
        raise OptionsError(_HINT) from exc
    toolkit: Any = verovio.toolkit(False)
    toolkit.setResourcePath(os.path.join(os.path.dirname(verovio.__file__), "data"))
    toolkit.setOptions(_PAGE)
    if not toolkit.loadData(musicxml.decode("utf-8")):
        raise OptionsError("Verovio could not read the MusicXML")
    return [toolkit.renderToSVG(page) for page in range(1, toolkit.getPageCount() + 1)]


def render_pages(musicxml: bytes, fmt: str) -> list[bytes]:
    """The score's pages: one SVG or PNG per page, or a single PDF holding them all."""
    if fmt not in SCORE_FORMATS:
        raise OptionsError(f"render_score must be one of {', '.join(SCORE_FORMATS)}; got {fmt!r}")
    pages = _svg_pages(musicxml)
    if fmt == "svg":
        return [page.encode("utf-8") for page in pages]
    try:
        import cairosvg
        from cairosvg.parser import Tree
        from cairosvg.surface import PDFSurface
    except (ImportError, OSError) as exc:
        raise OptionsError(f"{_HINT} ({exc})") from exc
    if fmt == "png":
        return [
            cairosvg.svg2png(bytestring=page.encode("utf-8"), output_width=PNG_WIDTH_PX, background_color="white")
            for page in pages
        ]
    out = io.BytesIO()
    surface = PDFSurface(Tree(bytestring=pages[0].encode("utf-8")), out, 96)
    for page in pages[1:]:  # one PDF, a page per SVG page: same size, so the surface is reused
        surface.context.show_page()
        surface.draw(Tree(bytestring=page.encode("utf-8")))
    surface.finish()
    return [out.getvalue()]
