"""The one CJK font every rendered output uses: Noto Sans SC from the justmytype-intl-cjk wheel.

Why a shipped font: system fonts differ per machine (and a fresh container has none with
Chinese glyphs), so storyboards would show empty boxes or change bytes between machines.
The wheel is a core dependency, so the same TTF is there after `pip install kolorsc`.
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from kolorsc.errors import KolorscError

if TYPE_CHECKING:  # Pillow is light, but only emit/ and the preview engine need it
    from PIL import ImageFont

FONT_PACKAGE = "justmytype_intl_cjk"
FONT_RELPATH = ("fonts", "ofl", "notosanssc", "NotoSansSC[wght].ttf")
REPORTLAB_FONT_NAME = "NotoSansSC"


@lru_cache(maxsize=1)
def font_path() -> Path:
    """Path of the Noto Sans SC TrueType file; KolorscError with a hint when it is missing."""
    # find_spec locates the package without importing it (nothing heavy either way).
    spec = importlib.util.find_spec(FONT_PACKAGE)
    hint = "install it with `pip install justmytype-intl-cjk` (a kolorsc dependency)"
    if spec is None or not spec.submodule_search_locations:
        raise KolorscError(f"the CJK font package {FONT_PACKAGE!r} is not installed: {hint}")
    for location in spec.submodule_search_locations:
        path = Path(location).joinpath(*FONT_RELPATH)
        if path.is_file():
            return path
    raise KolorscError(f"the font file {'/'.join(FONT_RELPATH)} is missing from {FONT_PACKAGE}: {hint}")


def identity() -> dict:
    """The font files outputs are drawn with (file name and kolorsc.hashing.file_fingerprint):
    part of the keys of the storyboard and PDF, so another font re-draws them."""
    from kolorsc.hashing import file_fingerprint

    path = font_path()
    return {path.name: file_fingerprint(path)}


REGULAR = 400
BOLD = 700


@lru_cache(maxsize=64)
def pil_font(size: int, weight: int = REGULAR) -> "ImageFont.FreeTypeFont":
    """The font at `size` pixels for Pillow drawing (cached: loading the 10 MB TTF costs ~20 ms).

    The TTF is a variable font whose default instance is Thin (100); `weight` picks the
    instance on the wght axis (400 regular, 700 bold). Do not mutate the returned object.
    """
    from PIL import ImageFont

    font = ImageFont.truetype(str(font_path()), size=size)
    try:
        font.set_variation_by_axes([weight])
    except (OSError, AttributeError):  # FreeType built without variation support: thin but legible
        pass
    return font


@lru_cache(maxsize=1)
def register_reportlab_font() -> str:
    """Register the TTF with reportlab once and return its font name.

    reportlab embeds a subset of a TTFont in the PDF (FontFile2), so the PDF shows the same
    glyphs on any reader; the built-in CID font STSong-Light is not embedded and poppler
    draws boxes for it.
    """
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont

    if REPORTLAB_FONT_NAME not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(TTFont(REPORTLAB_FONT_NAME, str(font_path())))
    return REPORTLAB_FONT_NAME


def _is_cjk(ch: str) -> bool:
    """Characters after which a line may break anywhere (CJK ideographs, kana, fullwidth punctuation)."""
    code = ord(ch)
    return (
        0x2E80 <= code <= 0x9FFF  # radicals, punctuation, kana, CJK ideographs
        or 0xAC00 <= code <= 0xD7AF  # Hangul
        or 0xF900 <= code <= 0xFAFF  # compatibility ideographs
        or 0xFE30 <= code <= 0xFE4F  # vertical forms
        or 0xFF00 <= code <= 0xFFEF  # fullwidth forms
        or 0x20000 <= code <= 0x3FFFF  # extension ideographs
    )


# Chinese typesetting (kinsoku): these never start a line; they stay with the previous character.
NO_LINE_START = set("，。、；：！？）」』》〉】〕”’…—·,.;:!?)]}%")


def _tokens(text: str) -> list[str]:
    """Split a paragraph into unbreakable pieces: each CJK char, each Latin word with its trailing space."""
    tokens: list[str] = []
    word = ""
    for ch in text:
        if _is_cjk(ch):
            if word:
                tokens.append(word)
                word = ""
            tokens.append(ch)
        elif ch == " ":
            tokens.append(word + " ")
            word = ""
        else:
            word += ch
    if word:
        tokens.append(word)
    return tokens


def _overhangs(line: str, token: str) -> bool:
    """True when `token` is a lone closing mark right after text on `line` (kept on that line)."""
    return bool(line.strip()) and line[-1] not in NO_LINE_START and not line.endswith(" ") and token in NO_LINE_START


def wrap_text(text: str, width: float, measure) -> list[str]:
    """Wrap `text` into lines no wider than `width`, as measured by `measure(str) -> float`.

    CJK text may break between any two characters; Latin text breaks at spaces, and a word
    longer than a line is cut by character. Explicit newlines are kept. `measure` lets the
    same code serve Pillow (font.getlength) and reportlab (pdfmetrics.stringWidth).
    """
    lines: list[str] = []
    for paragraph in text.split("\n"):
        line = ""
        for token in _tokens(paragraph):
            fits = measure((line + token).rstrip()) <= width
            # A closing mark may overhang the width by itself rather than open the next line.
            if fits or _overhangs(line, token):
                line += token
                continue
            if line.strip():
                lines.append(line.rstrip())
            line = ""
            # A token wider than the whole line (a long word or URL): cut it by character.
            while measure(token.rstrip()) > width and len(token) > 1:
                cut = 1
                while cut < len(token) and measure(token[: cut + 1]) <= width:
                    cut += 1
                lines.append(token[:cut])
                token = token[cut:]
            line = token.lstrip()
        lines.append(line.rstrip())
    return lines


def wrap_pil(text: str, size: int, width: float, weight: int = REGULAR) -> list[str]:
    """wrap_text measured with the Pillow font of `size` pixels."""
    font = pil_font(size, weight)
    return wrap_text(text, width, font.getlength)
