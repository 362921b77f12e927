"""The storyboard PDF (reportlab): a cover with the title and the 2x4 grid, then one page
per panel with its caption, prompt, negative, seed, settings and scores.

Chinese text: the Noto Sans SC TTF is embedded as a subset (FontFile2). The variable font's
default glyphs are Thin, so text is drawn fill+stroke with a hairline stroke to read as
regular weight (reportlab cannot select a variable-font instance).
Deterministic: canvas `invariant=1` fixes the creation date and document id.
"""

from __future__ import annotations

import io

from kolorsc.emit.common import NOT_COMPUTED, engine_label, fmt_score, gate_line
from kolorsc.emit.storyboard import COLUMNS, PREVIEW_BANNER, thumbnail
from kolorsc.errors import BuildError
from kolorsc.fonts import register_reportlab_font, wrap_text
from kolorsc.results import PanelResult, StoryResult

IMAGE_PX = 768  # panel pixels kept in the PDF: sharp in print at ~15 cm, small file
MARGIN = 40.0
INK = (0.08, 0.08, 0.08)
MUTED = (0.35, 0.35, 0.35)
RED = (0.78, 0.12, 0.12)
GATE_COLOURS = {"PASS": (0.08, 0.5, 0.2), "FAIL": RED, "UNKNOWN": (0.6, 0.43, 0.0)}


class _Page:
    """A canvas plus the font, with helpers that draw wrapped text downwards from y."""

    def __init__(self, canvas, font: str):
        self.c = canvas
        self.font = font

    def text(self, x: float, y: float, s: str, size: float, colour=INK) -> None:
        c = self.c
        c.setFillColorRGB(*colour)
        c.setStrokeColorRGB(*colour)
        c.setLineWidth(size * 0.035)  # thickens the Thin default instance to about Regular
        t = c.beginText(x, y)
        t.setTextRenderMode(2)  # fill then stroke
        t.setFont(self.font, size)
        t.textOut(s)
        c.drawText(t)

    def paragraph(self, x: float, y: float, s: str, size: float, width: float, colour=INK, max_lines: int = 0) -> float:
        """Draw `s` wrapped to `width`; return the y below the last line."""
        from reportlab.pdfbase.pdfmetrics import stringWidth

        lines = wrap_text(s, width, lambda part: stringWidth(part, self.font, size))
        if max_lines and len(lines) > max_lines:
            lines = lines[:max_lines]
            lines[-1] = lines[-1][:-1] + "…"
        for line in lines:
            self.text(x, y, line, size, colour)
            y -= size * 1.4
        return y

    def banner(self, page_w: float, top: float) -> float:
        """The red PREVIEW band across the page; returns the y below it."""
        c = self.c
        c.setFillColorRGB(*RED)
        c.rect(0, top - 30, page_w, 30, stroke=0, fill=1)
        from reportlab.pdfbase.pdfmetrics import stringWidth

        w = stringWidth(PREVIEW_BANNER, self.font, 16)
        self.text((page_w - w) / 2, top - 21, PREVIEW_BANNER, 16, (1, 1, 1))
        return top - 42


def _reader(png: bytes):
    """The panel as an embedded JPEG (reportlab passes JPEG through as DCT: ~10x smaller
    than Flate for rendered images; Pillow's encoder is deterministic at fixed settings)."""
    from reportlab.lib.utils import ImageReader

    out = io.BytesIO()
    thumbnail(png, IMAGE_PX).save(out, format="JPEG", quality=90, optimize=False, progressive=False)
    out.seek(0)
    return ImageReader(out)


def _draw_image(c, reader, x: float, y_top: float, box: float) -> None:
    """Draw the image fitted inside a box x box square whose top-left is (x, y_top)."""
    iw, ih = reader.getSize()
    scale = min(box / iw, box / ih)
    w, h = iw * scale, ih * scale
    c.drawImage(reader, x + (box - w) / 2, y_top - box + (box - h) / 2, w, h)


def _cover(page: _Page, result: StoryResult, readers: list) -> None:
    from reportlab.lib.pagesizes import A4, landscape

    c = page.c
    pw, ph = landscape(A4)
    c.setPageSize((pw, ph))
    y = ph - MARGIN - 10
    page.paragraph(MARGIN, y, result.story.title, 22, pw - 2 * MARGIN, max_lines=1)
    y -= 14
    if result.preview:
        y = page.banner(pw, y)
    gap = 12.0
    cell = (pw - 2 * MARGIN - (COLUMNS - 1) * gap) / COLUMNS
    box = min(cell, 150.0)  # two rows of image + 3 caption lines fit above the footer
    for i, (pr, reader) in enumerate(zip(result.panels, readers)):
        row, col = divmod(i, COLUMNS)
        x = MARGIN + col * (cell + gap) + (cell - box) / 2
        top = y - 6 - row * (box + 56)
        _draw_image(c, reader, x, top, box)
        page.paragraph(x, top - box - 12, f"{pr.panel.index}. {pr.panel.caption}", 9, box, max_lines=3)
    page.text(MARGIN, MARGIN + 14, f"{result.story.team} · {result.story.id} · engine {engine_label(result)}", 9, MUTED)
    page.text(MARGIN, MARGIN, gate_line(result), 9, GATE_COLOURS.get(result.scores.gate, INK))
    c.showPage()


def _panel_page(page: _Page, result: StoryResult, pr: PanelResult, reader) -> None:
    from reportlab.lib.pagesizes import A4

    c = page.c
    pw, ph = A4
    c.setPageSize((pw, ph))
    width = pw - 2 * MARGIN
    p = pr.panel
    y = ph - MARGIN - 10
    page.paragraph(MARGIN, y, f"{p.index} / {len(result.panels)} — {result.story.title}", 12, width, MUTED, max_lines=1)
    y -= 12
    if result.preview:
        y = page.banner(pw, y)
    box = min(width, 360.0)
    _draw_image(c, reader, MARGIN + (width - box) / 2, y - 4, box)
    y -= box + 24
    y = page.paragraph(MARGIN, y, p.caption, 14, width) - 6

    def field(label: str, value: str, max_lines: int = 0) -> None:
        nonlocal y
        page.text(MARGIN, y, label, 9, MUTED)
        y = page.paragraph(MARGIN + 70, y, value or "—", 9, width - 70, max_lines=max_lines) - 3

    field("prompt", p.prompt, 8)
    field("negative", p.negative, 4)
    field("seed", str(pr.seed))
    refine = f", refine ×{p.refine.scale} strength {p.refine.strength}" if p.refine else ""
    lora = f", LoRA {result.lora.key[:12]} scale {result.lora.scale}" if result.lora else ", no LoRA"
    field("settings", f"steps {p.steps}, cfg {p.cfg}, {p.width}×{p.height}{refine}{lora}, engine {engine_label(result)}")
    ch = pr.chosen
    field("scores", f"aesthetic {fmt_score(ch.aesthetic)}, coherence {fmt_score(ch.coherence)}, alignment {fmt_score(ch.alignment)}")
    if len(pr.candidates) > 1:
        others = "; ".join(f"seed {c.seed}: {fmt_score(c.aesthetic)}" for c in pr.candidates)
        field("candidates", f"aesthetic per candidate — {others}", 3)
    if result.scores.aesthetic_mean is None and result.scores.note:
        field("note", result.scores.note, 2)
    page.text(MARGIN, MARGIN, gate_line(result), 9, GATE_COLOURS.get(result.scores.gate, INK))
    c.showPage()


def storyboard_pdf(result: StoryResult, images: list[bytes]) -> bytes:
    """The storyboard as PDF bytes; identical inputs give identical bytes."""
    from reportlab.pdfgen.canvas import Canvas

    if len(images) != len(result.panels):
        raise BuildError(f"storyboard PDF: {len(images)} images for {len(result.panels)} panels")
    font = register_reportlab_font()
    buf = io.BytesIO()
    c = Canvas(buf, invariant=1, pageCompression=1, initialFontName=font, initialFontSize=10)
    c.setTitle(result.story.title + (" (PREVIEW)" if result.preview else ""))
    c.setAuthor(result.story.team)
    c.setSubject(f"kolorsc storyboard {result.story.id}; gate {result.scores.gate}")
    c.setCreator("kolorsc")
    page = _Page(c, font)
    readers = [_reader(png) for png in images]
    _cover(page, result, readers)
    for pr, reader in zip(result.panels, readers):
        _panel_page(page, result, pr, reader)
    c.save()
    return buf.getvalue()


__all__ = ["storyboard_pdf", "NOT_COMPUTED"]
