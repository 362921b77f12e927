"""Panel PNGs carry their generation parameters; the storyboard PNG is a legible 2x4 grid."""

from __future__ import annotations

import io
import json

from PIL import Image

from _emit_fixtures import CAPTIONS, images, make_png, make_result
from kolorsc.emit import panel_png, read_png_text, storyboard_png
from kolorsc.emit.storyboard import Layout


def test_panel_png_embeds_every_parameter(tmp_path):
    result = make_result(tmp_path)
    pr = result.panels[2]
    out = panel_png(make_png(3), pr, result)
    text = read_png_text(out)
    assert text["prompt"] == pr.panel.prompt  # Chinese survives (iTXt, UTF-8)
    assert text["negative"] == pr.panel.negative
    assert text["seed"] == str(pr.seed) and text["steps"] == "30" and text["cfg"] == "4.0"
    assert text["size"] == "1024x1024"
    assert json.loads(text["engine"]) == result.engine
    assert json.loads(text["lora"]) == {"name": "watercolor.safetensors", "scale": 2.0, "key": result.lora.key}
    record = json.loads(text["kolorsc"])
    assert record["seed"] == pr.seed and record["prompt"] == pr.panel.prompt and record["preview"] is False
    assert "kolorsc:preview" not in text
    # the A1111 layout: prompt line, "Negative prompt:" line, settings line
    lines = text["parameters"].split("\n")
    assert lines[0] == pr.panel.prompt
    assert lines[1] == "Negative prompt: " + pr.panel.negative
    assert f"Seed: {pr.seed}" in lines[2] and "Steps: 30" in lines[2] and "Size: 1024x1024" in lines[2]


def test_panel_png_keeps_the_pixels_and_drops_foreign_chunks(tmp_path):
    result = make_result(tmp_path)
    src = Image.open(io.BytesIO(make_png(1)))
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("Software", "someone else")
    raw = io.BytesIO()
    src.save(raw, format="PNG", pnginfo=info)
    out = Image.open(io.BytesIO(panel_png(raw.getvalue(), result.panels[0], result)))
    assert out.tobytes() == src.convert("RGB").tobytes()
    assert "Software" not in out.text


def test_preview_panels_are_marked(tmp_path):
    result = make_result(tmp_path, preview=True)
    text = read_png_text(panel_png(make_png(1), result.panels[0], result))
    assert text["kolorsc:preview"] == "true"
    assert "Preview: true" in text["parameters"]


def test_panel_png_is_deterministic_and_has_no_time_chunk(tmp_path):
    result = make_result(tmp_path)
    a = panel_png(make_png(1), result.panels[0], result)
    b = panel_png(make_png(1), result.panels[0], result)
    assert a == b
    assert b"tIME" not in a
    other = panel_png(make_png(1), result.panels[1], result)  # different seed and prompt
    assert other != a


def _dark(image, box) -> int:
    region = image.crop(box).convert("L")
    return sum(1 for v in region.getdata() if v < 128)


def test_storyboard_png_layout_captions_and_gate(tmp_path):
    result = make_result(tmp_path, aesthetic=[6.5] * 8)
    png = storyboard_png(result, images())
    board = Image.open(io.BytesIO(png))
    L = Layout()
    assert board.width == L.width
    # every panel thumbnail sits in its cell: row r, column c; panel 1's colour at the centre of cell 0
    top = board.height  # find the first grid row by the colour of panel 1
    p1 = Image.open(io.BytesIO(make_png(1))).getpixel((50, 70))
    for y in range(board.height):
        if board.getpixel((L.margin + L.cell // 2 + 30, y)) == p1:
            top = y
            break
    assert top < board.height // 2
    # the caption strip under each of the first row's panels has ink (text drawn), the gap between cells none
    caption_top = top + (L.cell - 10) + 10
    for col in range(4):
        x0 = L.margin + col * (L.cell + L.gap)
        assert _dark(board, (x0, caption_top, x0 + L.cell, caption_top + L.caption_height)) > 100
    gap_x = L.margin + L.cell + 2
    assert _dark(board, (gap_x, caption_top, gap_x + L.gap - 4, caption_top + L.caption_height)) == 0
    assert len(png) < 1_500_000


def test_storyboard_png_preview_banner_is_red_and_big(tmp_path):
    plain = Image.open(io.BytesIO(storyboard_png(make_result(tmp_path), images())))
    preview = Image.open(io.BytesIO(storyboard_png(make_result(tmp_path, preview=True), images())))
    red = lambda im: sum(1 for p in im.convert("RGB").getdata() if p == (200, 30, 30))  # noqa: E731
    assert red(preview) > 40_000  # a full-width band
    assert red(plain) < 1_000
    assert preview.height > plain.height


def test_storyboard_png_is_deterministic_and_depends_on_captions(tmp_path):
    result = make_result(tmp_path)
    a = storyboard_png(result, images())
    assert a == storyboard_png(result, images())
    from dataclasses import replace

    panels = list(result.panels)
    panels[0] = replace(panels[0], panel=replace(panels[0].panel, caption=CAPTIONS[0] + "！"))
    assert storyboard_png(replace(result, panels=tuple(panels)), images()) != a


def test_storyboard_png_needs_one_image_per_panel(tmp_path):
    import pytest

    from kolorsc.errors import BuildError

    with pytest.raises(BuildError, match="7 images for 8 panels"):
        storyboard_png(make_result(tmp_path), images()[:7])


def _ink(image):
    mask = image.convert("L").point(lambda v: 255 if v < 140 else 0)
    return mask.crop(mask.getbbox())


def _iou(a, b) -> float:
    b = b.resize(a.size)
    both = sum(1 for x, y in zip(a.getdata(), b.getdata()) if x and y)
    either = sum(1 for x, y in zip(a.getdata(), b.getdata()) if x or y)
    return both / either


def test_storyboard_caption_is_the_chinese_text_drawn_with_real_glyphs(tmp_path):
    from PIL import ImageDraw

    from kolorsc.fonts import pil_font

    result = make_result(tmp_path)
    board = Image.open(io.BytesIO(storyboard_png(result, images())))
    L = Layout()
    top = next(y for y in range(board.height) if board.getpixel((L.margin + 2, y)) != (255, 255, 255) and y > 60)
    strip = board.crop((L.margin, top + L.cell + 2, L.margin + L.cell, top + L.cell + L.caption_height))

    def drawn(text):
        im = Image.new("RGB", strip.size, "white")
        ImageDraw.Draw(im).text((0, 6), text, font=pil_font(L.caption_size), fill="black")
        return _ink(im)

    caption = _ink(strip)
    assert _iou(caption, drawn("1. " + CAPTIONS[0])) > 0.8
    assert _iou(caption, drawn("1. " + "口" * len(CAPTIONS[0]))) < 0.5  # boxes would look like this
