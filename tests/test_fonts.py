"""The shipped CJK font: found, drawn by Pillow with real glyphs, embedded by reportlab, and
text wrapping that respects pixel widths for Chinese and Latin text."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kolorsc import fonts
from kolorsc.errors import KolorscError


def test_font_path_is_the_noto_sans_sc_ttf():
    path = fonts.font_path()
    assert path.name == "NotoSansSC[wght].ttf"
    assert path.read_bytes()[:4] == b"\x00\x01\x00\x00"  # TrueType outlines, which reportlab needs


def test_missing_font_package_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(fonts.importlib.util, "find_spec", lambda name: None)
    fonts.font_path.cache_clear()
    try:
        with pytest.raises(KolorscError, match="justmytype"):
            fonts.font_path()
    finally:
        monkeypatch.undo()
        fonts.font_path.cache_clear()


def _mask(text: str, size: int = 32):
    from PIL import Image

    font = fonts.pil_font(size)
    image = Image.new("L", (size * (len(text) + 1), size * 2), 0)
    from PIL import ImageDraw

    ImageDraw.Draw(image).text((4, 4), text, font=font, fill=255)
    return image


def test_pillow_draws_distinct_chinese_glyphs_not_the_missing_glyph_box():
    notdef = _mask("\U000f0000")  # a private-use code point: no glyph, the font draws .notdef
    rain, sky = _mask("雨"), _mask("天")
    assert rain.getbbox() is not None and sky.getbbox() is not None
    assert rain.tobytes() != sky.tobytes()
    assert rain.tobytes() != notdef.tobytes()


def test_regular_weight_is_heavier_than_the_variable_fonts_thin_default():
    thin = fonts.pil_font(40, 100).getmask("雨天的小猫")
    regular = fonts.pil_font(40).getmask("雨天的小猫")
    ink = lambda m: sum(m)  # noqa: E731
    assert ink(bytes(regular)) > 1.3 * ink(bytes(thin))


def test_reportlab_font_registers_once():
    from reportlab.pdfbase import pdfmetrics

    name = fonts.register_reportlab_font()
    assert fonts.register_reportlab_font() == name
    assert pdfmetrics.stringWidth("雨天", name, 10) == pytest.approx(20, abs=0.5)  # CJK glyphs are 1 em wide


def test_wrap_breaks_chinese_anywhere_and_latin_at_spaces():
    measure = len  # one unit per character keeps the expectations readable
    assert fonts.wrap_text("清晨女孩在窗边醒来", 4, measure) == ["清晨女孩", "在窗边醒", "来"]
    assert fonts.wrap_text("the quick brown fox", 10, measure) == ["the quick", "brown fox"]
    assert fonts.wrap_text("她说 hello world 再见", 8, measure) == ["她说 hello", "world 再见"]
    assert fonts.wrap_text("abcdefghij", 4, measure) == ["abcd", "efgh", "ij"]
    assert fonts.wrap_text("一\n二", 10, measure) == ["一", "二"]


def test_wrap_never_starts_a_line_with_closing_punctuation():
    assert fonts.wrap_text("清晨女孩，在窗边", 4, len) == ["清晨女孩，", "在窗边"]


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet="雨天的小猫 abcdefg，。\n", max_size=60), st.integers(min_value=1, max_value=12))
def test_wrap_keeps_every_line_within_width_and_loses_no_text(text, width):
    lines = fonts.wrap_text(text, width, len)
    # within the width, except one closing mark allowed to overhang
    assert all(len(line) <= width or (len(line) == width + 1 and line[-1] in fonts.NO_LINE_START) for line in lines)
    squash = lambda s: s.replace(" ", "").replace("\n", "")  # noqa: E731
    assert squash("".join(lines)) == squash(text)


def test_wrap_pil_respects_pixel_width():
    text = "晚上，她给小猫做了一个小窝，窗外的雨一直下个不停 and the lamp glows warmly"
    font = fonts.pil_font(20)
    lines = fonts.wrap_pil(text, 20, 150)
    assert len(lines) > 2
    assert all(font.getlength(line) <= 150 for line in lines)
