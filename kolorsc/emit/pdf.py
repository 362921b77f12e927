"""The storyboard PDF (reportlab): a cover with the title, the character sheets (when the
story generates them) and the panels in a grid, then one page per panel with its caption,
prompt, negative, seed, settings and scores. The cover's footer says, under the gate, how
alike each character looks across its panels, when that was measured.

Layout: panels keep their aspect ratio (wide panels in two columns on the cover); each
page measures its text first and gives the image the room left, so long captions and
prompts never run into the footer. Things said once: the PREVIEW banner on the cover (each
preview panel carries its own band), the gate and why scores are missing on the cover
(panel pages repeat the gate only when there are scores).

Text: kolorsc.fonts' faces are embedded as subsets (FontFile2), one run per face, so emoji
and rare ideographs are drawn too. The CJK faces' default instance is Thin, so their text
is drawn fill+stroke with a hairline stroke to read as Regular (reportlab cannot select a
variable-font instance). Images are JPEG passed through (DCT); streams are binary, not
ASCII85 (smaller, and reportlab's pure-Python ASCII85 encoder was most of the PDF's time).
Deterministic: canvas `invariant=1` fixes the creation date and document id.
"""

from __future__ import annotations

import io
import re
import threading
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from kolorsc.emit.common import any_score, consistency_line, engine_label, fmt_score, gate_line
from kolorsc.emit.prepared import PreparedPanel, PreparedPanels, prepare_panels
from kolorsc.emit.storyboard import PREVIEW_BANNER, story_aspect
from kolorsc.errors import BuildError
from kolorsc.fonts import pdf_runs, pdf_width, register_reportlab_font, wrap_text
from kolorsc.i18n import _
from kolorsc.results import PanelResult, StoryResult

MARGIN = 40.0
LEADING = 1.4  # line height / font size
INK = (0.08, 0.08, 0.08)
MUTED = (0.35, 0.35, 0.35)
RED = (0.78, 0.12, 0.12)
GATE_COLOURS = {"PASS": (0.08, 0.5, 0.2), "FAIL": RED, "UNKNOWN": (0.6, 0.43, 0.0)}

_RL_CONFIG = threading.Lock()


@contextmanager
def _reportlab_settings():
    """Two global settings of reportlab, changed only while a storyboard PDF is made (a lock
    keeps two threads from interleaving) and restored after:
    - rl_config.useA85 off: reportlab ASCII85-encodes every stream otherwise, and its
      pure-Python encoder took most of the PDF's time;
    - ttfonts.makeToUnicodeCMap wrapped: reportlab 5.1 writes a character beyond U+FFFF
      (emoji, Extension B) as 5-6 hex digits where a ToUnicode CMap needs UTF-16, so
      copying the text or searching it found other characters."""
    from reportlab import rl_config
    from reportlab.pdfbase import ttfonts

    with _RL_CONFIG:
        before, original = rl_config.useA85, ttfonts.makeToUnicodeCMap
        rl_config.useA85 = 0
        ttfonts.makeToUnicodeCMap = lambda name, subset: _utf16_cmap(original(name, subset))
        try:
            yield
        finally:
            rl_config.useA85, ttfonts.makeToUnicodeCMap = before, original


_WIDE_ENTRY = re.compile(r"<([0-9A-F]{2})> <([0-9A-F]{5,6})>")


def _utf16_cmap(cmap: str) -> str:
    """bfchar entries whose Unicode value is beyond U+FFFF rewritten as UTF-16 (surrogates)."""
    return _WIDE_ENTRY.sub(lambda m: f"<{m[1]}> <{chr(int(m[2], 16)).encode('utf-16-be').hex().upper()}>", cmap)


class _Page:
    """A canvas with helpers that draw (wrapped) text, one run per font face."""

    def __init__(self, canvas):
        self.c = canvas

    def text(self, x: float, y: float, s: str, size: float, colour=INK) -> None:
        c = self.c
        c.setFillColorRGB(*colour)
        c.setStrokeColorRGB(*colour)
        c.setLineWidth(size * 0.035)  # thickens a Thin default instance to about Regular
        t = c.beginText(x, y)
        for name, run, stroke in pdf_runs(s):
            t.setTextRenderMode(2 if stroke else 0)  # 2: fill then stroke
            t.setFont(name, size)
            t.textOut(run)
        c.drawText(t)

    @staticmethod
    def lines(s: str, size: float, width: float, max_lines: int = 0) -> list[str]:
        lines = wrap_text(s, width, lambda part: pdf_width(part, size))
        if max_lines and len(lines) > max_lines:
            lines = lines[:max_lines]
            lines[-1] = lines[-1][:-1] + "…"
        return lines

    def paragraph(self, x: float, y: float, lines: list[str], size: float, colour=INK) -> float:
        """Draw `lines` downwards from y; return the y below the last line."""
        for line in lines:
            self.text(x, y, line, size, colour)
            y -= size * LEADING
        return y

    def banner(self, page_w: float, top: float) -> float:
        """The red PREVIEW band across the page; returns the y below it."""
        self.c.setFillColorRGB(*RED)
        self.c.rect(0, top - 30, page_w, 30, stroke=0, fill=1)
        w = pdf_width(PREVIEW_BANNER, 16)
        self.text((page_w - w) / 2, top - 21, PREVIEW_BANNER, 16, (1, 1, 1))
        return top - 42


def _reader(panel: PreparedPanel):
    """A reportlab ImageReader of the panel's JPEG, which goes into the PDF as it is."""
    from reportlab.lib.utils import ImageReader

    return ImageReader(io.BytesIO(panel.jpeg()))


def _fit(iw: float, ih: float, box_w: float, box_h: float) -> tuple[float, float]:
    scale = min(box_w / iw, box_h / ih)
    return iw * scale, ih * scale


def _draw_image(c, reader, x: float, y_top: float, box_w: float, box_h: float) -> tuple[float, float]:
    """Draw the image fitted in the box whose top-left is (x, y_top), centred; returns its size."""
    w, h = _fit(*reader.getSize(), box_w, box_h)
    c.drawImage(reader, x + (box_w - w) / 2, y_top - box_h + (box_h - h) / 2, w, h)
    return w, h


# --- cover ----------------------------------------------------------------------------------

COVER_CAPTION = 9.0
COVER_CAPTION_LINES = 4
COVER_GAP = 12.0
COVER_FOOTER = MARGIN + 30  # the footer's two lines and a gap above them
COVER_LINE = 14.0  # one more footer line (the consistency line)
CAST = 72.0  # a character sheet's square on the cover


@dataclass(frozen=True)
class _CoverGrid:
    page: tuple[float, float]
    columns: int
    col_w: float
    cell_w: float
    cell_h: float
    captions: list[list[str]]
    caption_h: float


def _cover_grid(result: StoryResult, title_h: float, footer: float = COVER_FOOTER) -> _CoverGrid:
    """The cover's page orientation and column count that give the panels the most room:
    square panels fit best on landscape A4 in four columns, wide ones on portrait in two."""
    from reportlab.lib.pagesizes import A4, landscape

    aspect = story_aspect(result)
    best = None
    for page in (landscape(A4), A4):
        for columns in (4, 2):
            rows = -(-len(result.panels) // columns)
            col_w = (page[0] - 2 * MARGIN - (columns - 1) * COVER_GAP) / columns
            captions = [_Page.lines(f"{pr.panel.index}. {pr.panel.caption}", COVER_CAPTION, col_w, COVER_CAPTION_LINES)
                        for pr in result.panels]
            caption_h = max(len(lines) for lines in captions) * COVER_CAPTION * LEADING + 8
            room = page[1] - MARGIN - title_h - 6 - footer - rows * caption_h - (rows - 1) * COVER_GAP
            cell_h = max(1.0, min(col_w / aspect, room / rows))
            grid = _CoverGrid(page, columns, col_w, min(col_w, cell_h * aspect), cell_h, captions, caption_h)
            if best is None or grid.cell_w * grid.cell_h > best.cell_w * best.cell_h + 1:
                best = grid
    return best


def _cover(page: _Page, result: StoryResult, readers: list, sheets: list) -> None:
    from reportlab.lib.pagesizes import A4

    c = page.c
    # 1. Page and grid first (the title's height as on the narrower, portrait page)
    title = page.lines(result.story.title, 22, A4[0] - 2 * MARGIN, 2)
    n = len(sheets)  # the cast fits the narrower (portrait) page's width
    cast = min(CAST, (A4[0] - 2 * MARGIN - (n - 1) * COVER_GAP) / n) if n else 0.0
    cast_h = cast + COVER_CAPTION * LEADING + 10 if n else 0
    title_h = 10 + len(title) * 22 * LEADING + 8 + (42 if result.preview else 0) + cast_h
    consistency = consistency_line(result)
    g = _cover_grid(result, title_h, COVER_FOOTER + (COVER_LINE if consistency else 0))
    pw, ph = g.page
    c.setPageSize(g.page)
    # 2. Title, the preview banner, and the cast: each character sheet with its name
    y = page.paragraph(MARGIN, ph - MARGIN - 10, page.lines(result.story.title, 22, pw - 2 * MARGIN, 2), 22) + 8
    if result.preview:
        y = page.banner(pw, y)
    for i, (sheet, reader) in enumerate(zip(result.sheets, sheets)):
        x = MARGIN + i * (cast + COVER_GAP)
        _draw_image(c, reader, x, y - 6, cast, cast)
        page.text(x, y - 6 - cast - COVER_CAPTION - 2, page.lines(sheet.name, COVER_CAPTION, cast, 1)[0], COVER_CAPTION)
    y -= cast_h
    # 3. The grid: cells at the story's aspect, centred in their column, captions below
    for i, (caption, reader) in enumerate(zip(g.captions, readers)):
        row, col = divmod(i, g.columns)
        x = MARGIN + col * (g.col_w + COVER_GAP)
        top = y - 6 - row * (g.cell_h + g.caption_h + COVER_GAP)
        _draw_image(c, reader, x + (g.col_w - g.cell_w) / 2, top, g.cell_w, g.cell_h)
        page.paragraph(x, top - g.cell_h - COVER_CAPTION - 4, caption, COVER_CAPTION)
    # 4. Footer: who, the gate (with why scores are missing: said here, once), and consistency
    bottom = MARGIN + (COVER_LINE if consistency else 0)
    page.text(MARGIN, bottom + 14, f"{result.story.team} · {result.story.id} · engine {engine_label(result)}", 9, MUTED)
    page.text(MARGIN, bottom, gate_line(result), 9, GATE_COLOURS.get(result.scores.gate, INK))
    if consistency:
        page.text(MARGIN, MARGIN, page.lines(consistency, 9, pw - 2 * MARGIN, 1)[0], 9)
    c.showPage()


# --- one page per panel ---------------------------------------------------------------------

LABEL_W = 70.0
FIELD = 9.0
CAPTION = 14.0
IMAGE_MAX_H = 420.0


def _fields(result: StoryResult, pr: PanelResult, width: float) -> list[tuple[str, list[str]]]:
    """(label, wrapped lines) of the panel's text fields, in page order."""
    p = pr.panel
    w = width - LABEL_W

    def wrap(s: str, max_lines: int = 0) -> list[str]:
        return _Page.lines(s or "—", FIELD, w, max_lines)

    refine = f", refine ×{p.refine.scale} strength {p.refine.strength}" if p.refine else ""
    lora = f", LoRA {result.lora.key[:12]} scale {result.lora.scale}" if result.lora else ", no LoRA"
    fields = [
        ("prompt", wrap(p.prompt, 8)),
        ("negative", wrap(p.negative, 4)),
        ("seed", wrap(str(pr.seed))),
        ("settings", wrap(f"steps {p.steps}, cfg {p.cfg}, {p.width}×{p.height}{refine}{lora}, engine {engine_label(result)}")),
    ]
    if any_score(result):  # else the cover's gate line already says scores were not computed
        ch = pr.chosen
        fields.append(("scores", wrap(f"aesthetic {fmt_score(ch.aesthetic)}, coherence {fmt_score(ch.coherence)}, "
                                      f"alignment {fmt_score(ch.alignment)}")))
        if len(pr.candidates) > 1:
            others = "; ".join(f"seed {c.seed}: {fmt_score(c.aesthetic)}" for c in pr.candidates)
            fields.append(("candidates", wrap(f"aesthetic per candidate — {others}", 3)))
    return fields


def _panel_page(page: _Page, result: StoryResult, pr: PanelResult, reader) -> None:
    from reportlab.lib.pagesizes import A4

    c = page.c
    pw, ph = A4
    c.setPageSize((pw, ph))
    width = pw - 2 * MARGIN
    p = pr.panel
    # 1. Measure the text first: the image gets the room that is left
    header = page.lines(f"{p.index} / {len(result.panels)} — {result.story.title}", 12, width, 1)
    caption = page.lines(p.caption, CAPTION, width, 6)
    fields = _fields(result, pr, width)
    text_h = len(caption) * CAPTION * LEADING + 6 + sum(len(lines) * FIELD * LEADING + 3 for _, lines in fields)
    gated = result.scores.aesthetic_mean is not None
    footer_h = 24 if gated else 0
    top = ph - MARGIN - 10 - 12 * LEADING
    box_h = min(IMAGE_MAX_H, top - 4 - 24 - text_h - MARGIN - footer_h)
    # 2. Header, image, caption, fields, footer
    page.paragraph(MARGIN, ph - MARGIN - 10, header, 12, MUTED)
    _, h = _fit(*reader.getSize(), width, box_h)
    _draw_image(c, reader, MARGIN, top - 4, width, h)  # top-aligned: the text follows the image
    y = top - 4 - h - 6 - CAPTION
    y = page.paragraph(MARGIN, y, caption, CAPTION) - 6
    for label, lines in fields:
        page.text(MARGIN, y, label, FIELD, MUTED)
        y = page.paragraph(MARGIN + LABEL_W, y, lines, FIELD) - 3
    if gated:
        page.text(MARGIN, MARGIN, gate_line(result), FIELD, GATE_COLOURS.get(result.scores.gate, INK))
    c.showPage()


def storyboard_pdf(result: StoryResult, images: Sequence[bytes] | PreparedPanels, sheets: Sequence[bytes] = ()) -> bytes:
    """The storyboard as PDF bytes from the panels (PNG bytes or prepared) and the character
    sheets' PNG bytes (one per `result.sheets`); identical inputs give identical bytes."""
    from reportlab.pdfgen.canvas import Canvas

    if len(images) != len(result.panels):
        raise BuildError(_("storyboard PDF: {n} images for {n2} panels").format(n=len(images), n2=len(result.panels)))
    if len(sheets) != len(result.sheets):
        raise BuildError(_("storyboard PDF: {n} pictures for {n2} character sheets").format(
            n=len(sheets), n2=len(result.sheets)))
    panels = prepare_panels(images)
    with _reportlab_settings():
        font = register_reportlab_font()
        buf = io.BytesIO()
        c = Canvas(buf, invariant=1, pageCompression=1, initialFontName=font, initialFontSize=10)
        c.setTitle(result.story.title + (" (PREVIEW)" if result.preview else ""))
        c.setAuthor(result.story.team)
        c.setSubject(f"kolorsc storyboard {result.story.id}; gate {result.scores.gate}")
        c.setCreator("kolorsc")
        page = _Page(c)
        readers = [_reader(panel) for panel in panels]
        _cover(page, result, readers, [_reader(sheet) for sheet in prepare_panels(list(sheets))] if sheets else [])
        for pr, reader in zip(result.panels, readers):
            _panel_page(page, result, pr, reader)
        c.save()
    return buf.getvalue()


__all__ = ["storyboard_pdf"]
