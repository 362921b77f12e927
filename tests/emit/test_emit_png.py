"""Panel PNGs carry their generation parameters; the storyboard PNG is a legible 2x4 grid."""

from __future__ import annotations

import io
import json

import pytest
from _emit_fixtures import CAPTIONS, images, make_png, make_result
from _glyph_fixtures import glyph_scores, ink
from PIL import Image

from kolorsc.emit import panel_png, read_png_text, storyboard_png
from kolorsc.emit.storyboard import Layout, board_layout


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
    geo = board_layout(result, L)
    assert board.size == (geo.width, geo.height) and board.width == L.width  # square panels: 4 x 384 px
    assert (geo.grid.columns, geo.grid.cell_w, geo.grid.cell_h) == (4, 384, 384)
    # panel i's pixels fill cell i: row i // 4, column i % 4
    for i in range(8):
        x0, y0, x1, y1 = geo.cell(i, (96, 96), L)
        want = Image.open(io.BytesIO(make_png(i + 1))).getpixel((60, 30))
        assert board.getpixel((x0 + (x1 - x0) * 60 // 96, y0 + (y1 - y0) * 30 // 96)) == want
    # the caption strip under each of the first row's panels has ink, the gap between cells none
    for col in range(4):
        x0, y0 = geo.slot(col, L)
        strip = (x0, y0 + geo.grid.cell_h + 4, x0 + geo.grid.cell_w, y0 + geo.grid.cell_h + geo.caption_h)
        assert _dark(board, strip) > 100
    gap_x = L.margin + geo.grid.cell_w + 2
    top = geo.slot(0, L)[1] + geo.grid.cell_h + 4
    assert _dark(board, (gap_x, top, gap_x + L.gap - 4, top + geo.caption_h - 4)) == 0
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


def _with_panels(result, size, captions=None):
    """`result` with every panel rendered at `size` (and other captions, when given)."""
    from dataclasses import replace

    panels = []
    for i, pr in enumerate(result.panels):
        caption = captions[i] if captions else pr.panel.caption
        panels.append(replace(pr, panel=replace(pr.panel, width=size[0], height=size[1], caption=caption)))
    return replace(result, panels=tuple(panels))


def _solid(index: int, size: tuple[int, int]) -> bytes:
    image = Image.new("RGB", size, (40 + index * 20, 200 - index * 15, 90 + index * 7))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def _colour_bbox(image, colour):
    """Bounding box of the pixels of exactly `colour`."""
    from PIL import ImageChops

    bands = [band.point(lambda v, c=c: 255 if v == c else 0) for band, c in zip(image.convert("RGB").split(), colour)]
    return ImageChops.multiply(ImageChops.multiply(bands[0], bands[1]), bands[2]).getbbox()


@pytest.mark.parametrize("panel", [(1536, 640), (640, 1536), (1024, 1024)])
def test_storyboard_cells_have_the_panels_aspect(tmp_path, panel):
    result = _with_panels(make_result(tmp_path), panel)
    small = (panel[0] // 4, panel[1] // 4)  # the images keep the panel's aspect at any size
    board = Image.open(io.BytesIO(storyboard_png(result, [_solid(i, small) for i in range(8)])))
    want = panel[0] / panel[1]
    for i in range(8):
        colour = Image.open(io.BytesIO(_solid(i, small))).getpixel((0, 0))
        x0, y0, x1, y1 = _colour_bbox(board, colour)
        assert abs((x1 - x0) / (y1 - y0) / want - 1) < 0.02, (i, (x0, y0, x1, y1))
        assert (x1 - x0) * (y1 - y0) > 60_000  # not a sliver: wide panels get two columns
    columns = {(1536, 640): 2, (640, 1536): 4, (1024, 1024): 4}[panel]
    assert board_layout(result).grid.columns == columns


def test_long_captions_stay_above_the_footer(tmp_path):
    long = ["清晨，女孩在窗边醒来，" * 20] * 8
    result = _with_panels(make_result(tmp_path, aesthetic=[6.5] * 8), (1536, 640), long)
    board = Image.open(io.BytesIO(storyboard_png(result, images()))).convert("L")
    geo = board_layout(result)
    assert max(len(c) for c in geo.captions) == Layout().caption_lines and geo.captions[0][-1].endswith("…")
    band = board.crop((0, geo.footer_top - 14, board.width, geo.footer_top))
    assert ink(band) is None  # blank between the last caption line and the footer
    assert ink(board.crop((0, geo.footer_top, board.width, board.height))) is not None  # the footer is drawn
    last_row = geo.slot(6, Layout())[1] + geo.grid.cell_h
    assert ink(board.crop((0, last_row + 4, board.width, geo.footer_top - 14))) is not None  # captions drawn


def test_preview_storyboard_has_one_banner(tmp_path):
    board = Image.open(io.BytesIO(storyboard_png(make_result(tmp_path, preview=True), images()))).convert("RGB")
    red_rows = [y for y in range(board.height)
                if sum(1 for x in range(0, board.width, 8) if board.getpixel((x, y)) == (200, 30, 30)) > board.width / 8 * 0.6]
    bands = sum(1 for a, b in zip([-2] + red_rows, red_rows) if b != a + 1)
    assert bands == 1


def test_storyboard_draws_every_glyph_of_emoji_and_extension_b_captions(tmp_path):
    caption = "小狐狸🦊在𠮷野家"
    result = _with_panels(make_result(tmp_path), (1024, 1024), [caption] + list(CAPTIONS[1:]))
    board = Image.open(io.BytesIO(storyboard_png(result, images()))).convert("L")
    L = Layout()
    geo = board_layout(result, L)
    x0, y0 = geo.slot(0, L)
    top = y0 + geo.grid.cell_h + 8  # where the first caption line is drawn (its ascender line)
    text = f"1. {caption}"
    line = board.crop((x0, top - 4, x0 + geo.grid.cell_w, top + L.caption_size * 3 // 2))  # below the panel
    scores = glyph_scores(line, text, L.caption_size)
    assert [ch for ch, _, _ in scores] == [c for c in text if c != " "]
    for ch, same, box in scores:
        if ch == ".":
            continue
        assert same > 0.75 and same > box + 0.3, (ch, same, box)
