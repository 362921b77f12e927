"""The shipped CJK font: found, drawn by Pillow with real glyphs, embedded by reportlab, and
text wrapping that respects pixel widths for Chinese and Latin text."""

from __future__ import annotations

import re

import pytest
from hypothesis import assume, given, settings
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


def test_every_face_is_truetype_and_the_chain_starts_with_chinese():
    chain = fonts.faces()
    assert [f.name for f in chain[:4]] == ["NotoSansSC", "NotoSansTC", "NotoSansJP", "NotoSansKR"]
    assert any(f.emoji for f in chain)
    for face in chain:  # reportlab embeds TrueType outlines only
        assert face.path.read_bytes()[:4] == b"\x00\x01\x00\x00", face


def test_missing_glyphs_finds_only_what_no_face_has():
    assert fonts.missing_glyphs("课堂上的梦, a dream") == []
    assert fonts.missing_glyphs("小狐狸🦊和𠮷野家❤️👨\u200d👩\u200d👧") == []  # emoji, Extension B, ZWJ sequence
    assert fonts.missing_glyphs("雨\U000f0000天\U000f0001") == [(1, "\U000f0000"), (3, "\U000f0001")]


def test_runs_take_each_character_from_a_face_that_has_it():
    runs = fonts.font_runs("小狐狸🦊和𠮷野家")
    assert [(f.name, text) for f, text in runs][:3] == [("NotoSansSC", "小狐狸"), ("NotoEmoji", "🦊"), ("NotoSansSC", "和")]
    ext_b = next(f for f, text in runs if text == "𠮷")
    assert ext_b.name != "NotoSansSC"
    # an emoji ZWJ sequence stays one run in one face; U+FE0F asks for the emoji face
    assert [(f.name, t) for f, t in fonts.font_runs("👨\u200d👩\u200d👧")] == [("NotoEmoji", "👨\u200d👩\u200d👧")]
    assert fonts.font_runs("❤\ufe0f")[0][0].emoji
    # a variation selector the face lacks is dropped rather than drawn as a box
    assert "".join(t for _, t in fonts.font_runs("雨\ufe00天")) == "雨天"


def test_pillow_draws_the_fallback_glyph_not_a_box():
    from PIL import Image, ImageDraw

    def drawn(text):
        image = Image.new("L", (200, 80), 0)
        fonts.draw_text(ImageDraw.Draw(image), (4, 4), text, 40, fill=255)
        return image.tobytes()

    assert len({drawn("🦊"), drawn("𠮷"), drawn("\U000f0000"), drawn("\U000f0001")}) == 3  # the two boxes match


def test_tofu_warnings_point_at_the_character_in_the_file():
    source = "title: 小狐狸\nscenes:\n  - caption: 雨天\U000f0000的猫\n"
    [warning] = fonts.tofu_warnings("s.yaml", source, [("title", "小狐狸"), ("scenes[0].caption", "雨天\U000f0000的猫")])
    assert (warning.file, warning.line, warning.col, warning.path) == ("s.yaml", 3, 16, "scenes[0].caption")
    assert "U+F0000" in warning.message and warning.severity == "warning"
    assert warning.format().startswith("s.yaml:3:16: warning: scenes[0].caption: no installed font")
    # from a style file (not in this source): reported without a position
    [other] = fonts.tofu_warnings("s.yaml", source, [("style", "\U000f0001")])
    assert other.line is None


HANAZONO = fonts.SYSTEM_FACES[1][0]
# Skipped on a laptop without Debian's fonts-hanazono; in CI (CI=true) a missing font fails instead.
needs_hanazono = pytest.mark.skipif(
    not __import__("pathlib").Path(HANAZONO).is_file() and not __import__("os").environ.get("CI"),
    reason="fonts-hanazono not installed",
)


@needs_hanazono
def test_rare_extension_b_ideographs_come_from_hanazono():
    rare = "\U0002a6a5\U00020001"  # 𪚥 (four dragons), 𠀁: in no Noto face
    assert fonts.missing_glyphs(rare) == []
    assert {face.name for face, _ in fonts.font_runs(rare)} <= {"HanaMinA", "HanaMinB"}
    assert any(face.name.startswith("HanaMin") for face in fonts.faces())


def test_identity_lists_the_faces():
    assert [name for name, _ in fonts.identity()] == [f.name for f in fonts.faces()]


def test_wrap_breaks_chinese_between_characters_and_latin_at_spaces():
    measure = len  # one unit per character keeps the expectations readable
    assert fonts.wrap_text("清晨女孩在窗边醒来啊", 4, measure) == ["清晨女孩", "在窗边醒", "来啊"]
    assert fonts.wrap_text("the quick brown fox", 10, measure) == ["the quick", "brown fox"]
    assert fonts.wrap_text("她说 hello world 再见", 8, measure) == ["她说 hello", "world 再见"]
    assert fonts.wrap_text("abcdefghij", 4, measure) == ["abcd", "efgh", "ij"]
    assert fonts.wrap_text("一\n二", 10, measure) == ["一", "二"]


def test_wrap_keeps_punctuation_with_its_character():
    # closing punctuation never starts a line: "孩，" moves down together
    assert fonts.wrap_text("清晨女孩，在窗边醒来", 4, len) == ["清晨女", "孩，在窗", "边醒来"]
    # opening punctuation never ends a line: "「你" moves down together
    assert fonts.wrap_text("他说：「你好」", 4, len) == ["他说：", "「你好」"]


def test_wrap_leaves_no_single_character_on_the_last_line():
    assert fonts.wrap_text("清晨女孩在窗边醒来", 4, len) == ["清晨女孩", "在窗边", "醒来"]
    assert fonts.wrap_text("清晨女孩在窗边醒来。", 4, len) == ["清晨女孩", "在窗边", "醒来。"]


# “” and ‘’ are left out: UAX #14 calls them ambiguous (a ” after a space may open a quote)
CLOSING = set("，。、；：！？）」』》〉】〕…")
OPENING = set("（「『《〈【〔")


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet="雨天的小猫 abc，。！？（）「」“”、\n", max_size=60), st.integers(min_value=6, max_value=12))
def test_wrap_keeps_lines_within_width_respects_punctuation_and_loses_no_text(text, width):
    # a run of three or more punctuation marks inside a word too long for a line may have no
    # break that keeps the rule ("a、”””””" in 6 columns): only text that has one is asked to
    assume(not re.search(r"[^\w\s]{3,}", text.replace("\n", " ")))
    lines = fonts.wrap_text(text, width, len)
    assert all(len(line) <= width for line in lines)
    for paragraph in text.split("\n"):  # at every break the wrapping made:
        wrapped = fonts.wrap_text(paragraph, width, len)
        for before, after in zip(wrapped, wrapped[1:]):
            assert before[-1:] not in OPENING and after[:1] not in CLOSING, wrapped
    squash = lambda s: s.replace(" ", "").replace("\n", "")  # noqa: E731
    assert squash("".join(lines)) == squash(text)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="雨天的猫𠮷ぁゃー한 ab1.-/%$ ，。、！？…—“”‘’「」（）《》\t🦊👨🏻\u200d\ufe0f🇨🇳", max_size=40))
def test_break_units_piece_by_piece_equal_uniseg_on_the_whole_paragraph(text):
    from uniseg.linebreak import line_break_units

    assert fonts.break_units(text) == list(line_break_units(text))


def test_wrap_pil_respects_pixel_width():
    text = "晚上，她给小猫做了一个小窝，窗外的雨一直下个不停🦊 and the lamp glows warmly"
    lines = fonts.wrap_pil(text, 20, 150)
    assert len(lines) > 2
    assert all(fonts.text_length(line, 20) <= 150 for line in lines)
