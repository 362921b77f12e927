"""The storyboard PDF: embedded CJK font, glyphs actually drawn (checked with poppler), every
panel's data on its page, deterministic bytes."""

from __future__ import annotations

import io
import os
import shutil
import subprocess

import pytest
from PIL import Image, ImageDraw

from _emit_fixtures import images, make_result
from kolorsc.emit import storyboard_pdf
from kolorsc.fonts import pil_font, register_reportlab_font

# Skipped on a laptop without poppler-utils; in CI (CI=true) a missing pdftoppm fails the tests instead.
needs_poppler = pytest.mark.skipif(
    shutil.which("pdftoppm") is None and not os.environ.get("CI"), reason="poppler-utils not installed"
)

LINE = "雨天的小猫回家了"
SIZE = 40  # points; rendered at 72 dpi, so 40 px per em


def _render(pdf: bytes, page: int = 1, dpi: int = 72, mode: str = "L") -> Image.Image:
    out = subprocess.run(
        ["pdftoppm", "-r", str(dpi), "-f", str(page), "-l", str(page), "-png", "-"],
        input=pdf, capture_output=True, check=True,
    ).stdout
    return Image.open(io.BytesIO(out)).convert(mode)


def _ink_mask(image: Image.Image) -> Image.Image:
    """Binary mask of the ink, cropped to its bounding box."""
    mask = image.point(lambda v: 255 if v < 140 else 0)
    box = mask.getbbox()
    assert box is not None, "nothing drawn"
    return mask.crop(box)


def _iou(a: Image.Image, b: Image.Image) -> float:
    b = b.resize(a.size)
    both = sum(1 for x, y in zip(a.getdata(), b.getdata()) if x and y)
    either = sum(1 for x, y in zip(a.getdata(), b.getdata()) if x or y)
    return both / either


def _pdf_with_line(text: str) -> bytes:
    """A page with one line drawn exactly as storyboard_pdf draws text."""
    from reportlab.pdfgen.canvas import Canvas

    from kolorsc.emit.pdf import _Page

    buf = io.BytesIO()
    c = Canvas(buf, pagesize=(400, 100), invariant=1)
    _Page(c, register_reportlab_font()).text(10, 35, text, SIZE)
    c.showPage()
    c.save()
    return buf.getvalue()


def _pillow_line(text: str, boxes: bool = False) -> Image.Image:
    image = Image.new("L", (400, 100), 255)
    draw = ImageDraw.Draw(image)
    if boxes:  # what a missing font looks like: one hollow box per character
        for i in range(len(text)):
            draw.rectangle((10 + i * SIZE + 3, 25, 10 + (i + 1) * SIZE - 3, 70), outline=0, width=3)
    else:
        draw.text((10, 20), text, font=pil_font(SIZE), fill=0)
    return image


@needs_poppler
def test_pdf_draws_the_chinese_glyphs_not_boxes():
    drawn = _ink_mask(_render(_pdf_with_line(LINE)))
    same = _ink_mask(_pillow_line(LINE))
    tofu = _ink_mask(_pillow_line(LINE, boxes=True))
    squares = _ink_mask(_pillow_line("口口口口口口口口"))
    other = _ink_mask(_pillow_line("晴天的大狗出门了"))
    # poppler's rendering of the PDF matches Pillow's rendering of the same string with the same TTF
    # (measured: 0.69; the PDF strokes its glyphs a little bolder)...
    assert _iou(drawn, same) > 0.55
    # ...far better than a row of empty boxes (0.15), squares (0.18) or other characters (0.38)
    assert _iou(drawn, same) > _iou(drawn, tofu) + 0.3
    assert _iou(drawn, same) > _iou(drawn, squares) + 0.3
    assert _iou(drawn, same) > _iou(drawn, other) + 0.15
    assert abs(drawn.width - same.width) <= 0.1 * same.width  # same advance widths: 8 ems


@needs_poppler
def test_storyboard_pdf_embeds_the_font_and_holds_every_panel(tmp_path):
    result = make_result(tmp_path, aesthetic=[6.0 + i / 10 for i in range(8)])
    pdf = storyboard_pdf(result, images())
    assert b"/FontFile2" in pdf and b"STSong" not in pdf
    fonts = subprocess.run(["pdffonts", "-"], input=pdf, capture_output=True, check=False)
    if fonts.returncode == 0 and fonts.stdout:  # older poppler cannot read stdin
        assert b"NotoSansSC" in fonts.stdout
    text = subprocess.run(["pdftotext", "-layout", "-", "-"], input=pdf, capture_output=True, check=True).stdout.decode()
    pages = text.split("\f")
    assert len([p for p in pages if p.strip()]) == 9  # cover + 8 panels
    assert result.story.title in pages[0] and "PASS" in pages[0]
    for pr, page in zip(result.panels, pages[1:]):
        squashed = "".join(page.split())
        assert "".join(pr.panel.caption.split()) in squashed
        assert f"seed{pr.seed}" in squashed.replace(":", "")
        assert f"aesthetic{pr.chosen.aesthetic:.3f}" in squashed
        assert pr.panel.prompt[:10] in squashed


@needs_poppler
def test_preview_pdf_is_marked_on_every_page_and_scores_say_not_computed(tmp_path):
    pdf = storyboard_pdf(make_result(tmp_path, preview=True), images())
    pages = subprocess.run(["pdftotext", "-", "-"], input=pdf, capture_output=True, check=True).stdout.decode().split("\f")
    pages = [p for p in pages if p.strip()]
    assert len(pages) == 9
    assert all("PREVIEW" in p for p in pages)
    assert all("not computed" in p for p in pages[1:])
    # the red band runs across the cover
    cover = _render(pdf, 1, dpi=30, mode="RGB")
    red_rows = [y for y in range(cover.height) if sum(1 for x in range(cover.width) if _is_red(cover.getpixel((x, y)))) > 0.6 * cover.width]
    assert red_rows, "no full-width red band"


def _is_red(p) -> bool:
    return p[0] > 150 and p[1] < 80 and p[2] < 80


def test_storyboard_pdf_is_deterministic(tmp_path):
    result = make_result(tmp_path)
    a = storyboard_pdf(result, images())
    assert a == storyboard_pdf(result, images())
    assert a.startswith(b"%PDF")
    assert len(a) < 2_000_000
