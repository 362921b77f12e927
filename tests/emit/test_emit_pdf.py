"""The storyboard PDF: embedded CJK font, glyphs actually drawn (checked with poppler), every
panel's data on its page, deterministic bytes."""

from __future__ import annotations

import io
import os
import shutil
import subprocess

import pytest
from _emit_fixtures import images, make_result
from PIL import Image, ImageDraw

from kolorsc.emit import storyboard_pdf
from kolorsc.fonts import pil_font

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
    _Page(c).text(10, 35, text, SIZE)
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


def _preview_drafts(result) -> list[bytes]:
    from kolorsc.engines.base import RenderJob
    from kolorsc.engines.preview import PreviewEngine
    from kolorsc.build.stages.render import encode_png

    jobs = [RenderJob(pr.panel, pr.seed) for pr in result.panels]
    return [encode_png(image) for _, image in PreviewEngine().render(jobs, None)]


@needs_poppler
def test_preview_pdf_marks_the_cover_once_and_each_panel_once(tmp_path):
    result = make_result(tmp_path, preview=True)
    pdf = storyboard_pdf(result, _preview_drafts(result))
    text = subprocess.run(["pdftotext", "-", "-"], input=pdf, capture_output=True, check=True).stdout.decode()
    pages = [p for p in text.split("\f") if p.strip()]
    assert len(pages) == 9
    assert "PREVIEW" in pages[0]  # the cover's banner
    assert not any("PREVIEW" in p for p in pages[1:])  # a panel page adds no mark of its own...
    assert text.count("not computed") == 1  # ...nor the scores notice, said once on the cover
    cover = _render(pdf, 1, dpi=30, mode="RGB")
    assert _red_bands(cover, 0.5, edge_to_edge=True) == 1  # one band across the page
    assert _red_bands(cover, 0.1, edge_to_edge=False) == 2  # two rows of panels, one band each
    for page in (2, 9):  # ...and each panel page shows the one band its draft carries
        image = _render(pdf, page, dpi=30, mode="RGB")
        assert _red_bands(image, 0.3, edge_to_edge=False) == 1
        assert _red_bands(image, 0.3, edge_to_edge=True) == 0


def _red_bands(image, share: float, edge_to_edge: bool) -> int:
    """Horizontal red bands at least `share` of the page wide, running from edge to edge of
    the page or not (rows cut by a band's white text are bridged: rows up to 4 apart)."""
    def red_row(y: int) -> bool:
        edges = _is_red(image.getpixel((1, y))) and _is_red(image.getpixel((image.width - 2, y)))
        wide = sum(1 for x in range(image.width) if _is_red(image.getpixel((x, y)))) > share * image.width
        return wide and edges == edge_to_edge

    rows = [y for y in range(image.height) if red_row(y)]
    return sum(1 for a, b in zip([-10] + rows, rows) if b > a + 4)


def _is_red(p) -> bool:
    return p[0] > 150 and p[1] < 80 and p[2] < 80


def _words(pdf: bytes, page: int) -> list[tuple[str, float, float, float, float]]:
    """(text, xMin, yMin, xMax, yMax) of each word poppler finds on `page`, in points from the top."""
    import html
    import re

    out = subprocess.run(["pdftotext", "-f", str(page), "-l", str(page), "-bbox", "-", "-"],
                         input=pdf, capture_output=True, check=True).stdout.decode()
    pattern = r'<word xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" yMax="([\d.]+)">(.*?)</word>'
    return [(html.unescape(m[5]), *map(float, m.groups()[:4])) for m in re.finditer(pattern, out)]


def _with_panel(result, index: int, **changes):
    from dataclasses import replace

    panels = list(result.panels)
    panels[index] = replace(panels[index], panel=replace(panels[index].panel, **changes))
    return replace(result, panels=tuple(panels))


@needs_poppler
def test_pdf_draws_every_glyph_of_emoji_and_extension_b_captions(tmp_path):
    from _glyph_fixtures import glyph_scores

    caption = "小狐狸🦊在𠮷野家"
    pdf = storyboard_pdf(_with_panel(make_result(tmp_path, aesthetic=[6.2] * 8), 0, caption=caption), images())
    [(_, x0, y0, x1, y1)] = [w for w in _words(pdf, 2) if w[0] == caption]  # the text layer maps back too
    dpi = 288  # 4 px per point: a 14 pt caption is 56 px per em
    k = dpi / 72
    page = _render(pdf, 2, dpi=dpi)
    line = page.crop((round(x0 * k), round(y0 * k), round(x1 * k) + 8, round(y1 * k) + 8))
    for ch, same, box in glyph_scores(line, caption, round(14 * k)):
        # the PDF strokes the thin CJK faces a little bolder than Pillow's Regular: lower bar than the PNG's
        assert same > 0.55 and same > box + 0.25, (ch, same, box)


@needs_poppler
@pytest.mark.parametrize("size", [(1536, 640), (640, 1536)])
def test_pdf_panels_keep_their_aspect(tmp_path, size):
    from dataclasses import replace

    result = make_result(tmp_path)
    result = replace(result, panels=tuple(replace(pr, panel=replace(pr.panel, width=size[0], height=size[1]))
                                          for pr in result.panels))
    solid = []
    for i in range(8):
        out = io.BytesIO()
        Image.new("RGB", (size[0] // 8, size[1] // 8), (30 + 25 * i, 120, 200 - 20 * i)).save(out, format="PNG")
        solid.append(out.getvalue())
    pdf = storyboard_pdf(result, solid)
    for page in (1, 2):  # the cover's first cell and the first panel's page
        image = _render(pdf, page, dpi=72, mode="RGB")
        mask = image.convert("L").point(lambda v: 0)
        mask.putdata([255 if abs(p[0] - 30) < 12 and abs(p[1] - 120) < 12 and abs(p[2] - 200) < 12 else 0
                      for p in image.getdata()])
        x0, y0, x1, y1 = mask.getbbox()
        assert abs((x1 - x0) / (y1 - y0) / (size[0] / size[1]) - 1) < 0.05, (page, (x0, y0, x1, y1))
        assert (x1 - x0) * (y1 - y0) > 4_000  # a real picture, not a stamp


@needs_poppler
def test_pdf_long_caption_and_prompt_stay_above_the_footer(tmp_path):
    long = "晚上，她给小猫做了一个小窝，窗外的雨一直下个不停，灯光很温暖。" * 8
    result = _with_panel(make_result(tmp_path, aesthetic=[6.2] * 8), 0, caption=long, prompt=long, negative=long)
    pdf = storyboard_pdf(result, images())
    words = _words(pdf, 2)
    gate = [w for w in words if w[0].startswith("PASS")]
    assert gate, "the gate line is on the page"
    footer_top = gate[0][2]
    above = [w for w in words if w[2] < footer_top - 1]
    assert len(above) > 10 and all(w[4] < footer_top - 4 for w in above)  # nothing reaches into the footer


def test_storyboard_pdf_is_deterministic(tmp_path):
    result = make_result(tmp_path)
    a = storyboard_pdf(result, images())
    assert a == storyboard_pdf(result, images())
    assert a.startswith(b"%PDF")
    assert len(a) < 2_000_000
