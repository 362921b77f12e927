"""The fonts every rendered output uses, with fallbacks so that no character is drawn as a box.

A character takes its glyph from the first face here that has it:
 1. Noto Sans SC, then TC, JP, KR (the justmytype-intl-cjk wheel): Chinese first; the regional
    faces add ~2,000 CJK Extension B ideographs (𠮷, Hong Kong and Taiwan names).
 2. Noto Sans, Noto Sans Symbols, Noto Emoji, then Noto Sans for other scripts (the
    manimgx-fonts wheel): Latin/Greek/Cyrillic beyond SC, arrows and signs, emoji.
 3. HanaMinA/HanaMinB (Debian's fonts-hanazono, optional): every Extension B-F ideograph.
A character no face has is drawn with SC (its empty box) and `kolorsc check` warns about it.

Why shipped fonts: system fonts differ per machine, so outputs would show boxes or change
bytes between machines; the wheels are dependencies, so `pip install kolorsc` brings them.
Why Noto Emoji (monochrome outlines) and not Noto Color Emoji: the colour font is CBDT
bitmaps, which reportlab cannot embed and Pillow draws only at its 109 px strike. Every
face is a TrueType (glyf) font, the kind reportlab embeds.

A grapheme cluster (an emoji ZWJ sequence, a letter with its accents; segmented by uniseg)
takes one face; a cluster with U+FE0F (emoji presentation) asks the emoji face first.
Line breaking follows UAX #14 (uniseg), so no line starts with closing punctuation or ends
with an opening one. Added by hand, where UAX #14 has nothing to say: a paragraph's last
line never holds one lone character (typography), and a piece too wide for any line is
cut between characters, not next to punctuation.

fontTools and uniseg are imported inside the functions that need them: `kolorsc check`
loads one cmap (~0.1 s) and nothing of Pillow or reportlab.
"""

from __future__ import annotations

import importlib.util
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from kolorsc.errors import WARNING, Diagnostic, KolorscError
from kolorsc.i18n import _

if TYPE_CHECKING:  # Pillow is light, but only emit/ and the preview engine need it
    from PIL import ImageDraw, ImageFont

FONT_PACKAGE = "justmytype_intl_cjk"
FONT_RELPATH = ("fonts", "ofl", "notosanssc", "NotoSansSC[wght].ttf")
REPORTLAB_FONT_NAME = "NotoSansSC"
FALLBACK_PACKAGE = "manimgx_fonts"
REGULAR = 400
BOLD = 700


@dataclass(frozen=True)
class Face:
    """One font file of the fallback chain."""

    name: str  # also its reportlab font name
    path: Path
    emoji: bool = False


# (package, file inside it, name), in fallback order after Noto Sans SC.
_PACKAGE_FACES = (
    (FONT_PACKAGE, "fonts/ofl/notosanstc/NotoSansTC[wght].ttf", "NotoSansTC"),
    (FONT_PACKAGE, "fonts/ofl/notosansjp/NotoSansJP[wght].ttf", "NotoSansJP"),
    (FONT_PACKAGE, "fonts/ofl/notosanskr/NotoSansKR[wght].ttf", "NotoSansKR"),
    (FALLBACK_PACKAGE, "NotoSans[wght].ttf", "NotoSans"),
    (FALLBACK_PACKAGE, "NotoSansSymbols[wght].ttf", "NotoSansSymbols"),
    (FALLBACK_PACKAGE, "NotoEmoji[wght].ttf", "NotoEmoji"),
)
# Debian's fonts-hanazono: Mincho, but the only TrueType font with all of Extension B-F.
SYSTEM_FACES = (
    ("/usr/share/fonts/truetype/hanazono/HanaMinA.ttf", "HanaMinA"),
    ("/usr/share/fonts/truetype/hanazono/HanaMinB.ttf", "HanaMinB"),
)


def _package_dirs(package: str) -> list[Path]:
    # find_spec locates the package without importing it (nothing heavy either way).
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return []
    return [Path(p) for p in spec.submodule_search_locations]


@lru_cache(maxsize=1)
def font_path() -> Path:
    """Path of the Noto Sans SC TrueType file; KolorscError with a hint when it is missing."""
    hint = _("install it with `pip install justmytype-intl-cjk` (a kolorsc dependency)")
    dirs = _package_dirs(FONT_PACKAGE)
    if not dirs:
        raise KolorscError(_("the CJK font package {package} is not installed: {hint}").format(
            package=repr(FONT_PACKAGE), hint=hint))
    for location in dirs:
        path = location.joinpath(*FONT_RELPATH)
        if path.is_file():
            return path
    raise KolorscError(_("the font file {file} is missing from {package}: {hint}").format(
        file="/".join(FONT_RELPATH), package=FONT_PACKAGE, hint=hint))


@lru_cache(maxsize=1)
def faces() -> tuple[Face, ...]:
    """The fallback chain: the faces that are installed, primary (Noto Sans SC) first."""
    chain = [Face(REPORTLAB_FONT_NAME, font_path())]
    for package, rel, name in _PACKAGE_FACES:
        found = [d / rel for d in _package_dirs(package) if (d / rel).is_file()]
        if found:
            chain.append(Face(name, found[0], emoji=name == "NotoEmoji"))
    listed = {Path(rel).name for _, rel, _ in _PACKAGE_FACES}
    for d in _package_dirs(FALLBACK_PACKAGE):  # the other scripts, in a stable order
        for path in sorted(d.glob("NotoSans*[[]wght[]].ttf")):
            if path.name not in listed and "Italic" not in path.name:
                chain.append(Face(path.name.split("[")[0], path))
    chain += [Face(name, Path(p)) for p, name in SYSTEM_FACES if Path(p).is_file()]
    return tuple(chain)


def primary() -> Face:
    return faces()[0]


def identity() -> list[list]:
    """Which faces draw the text (name and file size): part of the key of anything drawn,
    since installing fonts-hanazono changes what a rare character looks like."""
    return [[f.name, f.path.stat().st_size] for f in faces()]


# --- coverage -----------------------------------------------------------------------------


@lru_cache(maxsize=None)
def _cmap(face: Face) -> frozenset[int]:
    """The code points `face` has a glyph for (~40 ms for a CJK font, once per process)."""
    from fontTools.ttLib import TTFont

    with TTFont(str(face.path), lazy=True) as font:
        # Only the code points matter, not glyph names: without this, a font whose `post` table
        # has no names (most CJK fonts) makes fontTools derive 30,000 names first (4x the time).
        font.setGlyphOrder([f"g{i}" for i in range(font["maxp"].numGlyphs)])
        return frozenset(font.getBestCmap())


def _ignorable(ch: str) -> bool:
    """Characters that need no glyph: joiners, variation selectors, format and control characters."""
    code = ord(ch)
    return (
        unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp")
        or 0xFE00 <= code <= 0xFE0F
        or 0xE0100 <= code <= 0xE01EF
        or 0x180B <= code <= 0x180F
    )


def _clusters(text: str) -> list[str]:
    from uniseg.graphemecluster import grapheme_clusters

    return list(grapheme_clusters(text))


def _face_for(cluster: str) -> Face | None:
    """The first face with every glyph of the cluster (else with its first one); None when no
    face has it or the cluster has nothing to draw."""
    needed = [ord(c) for c in cluster if not _ignorable(c)]
    if not needed:
        return None
    chain = faces()
    if "\ufe0f" in cluster:  # emoji presentation requested
        chain = tuple(f for f in chain if f.emoji) + tuple(f for f in chain if not f.emoji)
    for face in chain:
        cmap = _cmap(face)
        if all(c in cmap for c in needed):
            return face
    return next((f for f in chain if needed[0] in _cmap(f)), None)


def _all_primary(text: str, ignorable_ok: bool = False) -> bool:
    """True when the primary face has every character (the common case: no segmentation)."""
    cmap = _cmap(primary())
    return all(ord(c) in cmap or (ignorable_ok and _ignorable(c)) for c in text)


def missing_glyphs(text: str) -> list[tuple[int, str]]:
    """(index in `text`, character) for every character that no installed face can draw."""
    if _all_primary(text, ignorable_ok=True):
        return []
    out, at = [], 0
    for cluster in _clusters(text):
        for i, ch in enumerate(cluster):
            if not _ignorable(ch) and not any(ord(ch) in _cmap(f) for f in faces()):
                out.append((at + i, ch))
        at += len(cluster)
    return out


def font_runs(text: str) -> list[tuple[Face, str]]:
    """`text` split into runs that one face draws, in order. Ignorable characters the face
    lacks are dropped (they would show as boxes); a character no face has stays with the
    primary face, which draws its box."""
    if _all_primary(text):
        return [(primary(), text)] if text else []
    runs: list[tuple[Face, str]] = []
    for cluster in _clusters(text):
        face = _face_for(cluster)
        if face is None:
            has_ink = any(not _ignorable(c) for c in cluster)
            face = primary() if has_ink or not runs else runs[-1][0]
        cmap = _cmap(face)
        drawn = "".join(c for c in cluster if not _ignorable(c) or ord(c) in cmap)
        if not drawn:
            continue
        if runs and runs[-1][0] == face:
            runs[-1] = (face, runs[-1][1] + drawn)
        else:
            runs.append((face, drawn))
    return runs


def tofu_warnings(file: str, source: str, fields: Iterable[tuple[str, str]]) -> list[Diagnostic]:
    """A warning for each character of `fields` ((path, text) pairs: title, captions, compiled
    prompts) that no installed font can draw, at the line:col where `source` (the YAML text)
    has it; one without a position when it came from elsewhere (a style file)."""
    out: list[Diagnostic] = []
    reported: set[str] = set()
    for path, text in fields:
        for _index, ch in missing_glyphs(text):
            if ch in reported:
                continue
            reported.add(ch)
            message = _("no installed font has a glyph for {char} (U+{code}): it will show as an empty box").format(
                char=repr(ch), code=f"{ord(ch):04X}")
            hint = _tofu_hint(ch)
            places = _positions(source, ch) or [(None, None)]
            out += [Diagnostic(file, line, col, path, message, hint, severity=WARNING) for line, col in places]
    return out


def _tofu_hint(ch: str) -> str:
    if unicodedata.name(ch, "").startswith("CJK") and not any(f.name.startswith("HanaMin") for f in faces()):
        return _("rare CJK ideographs need Debian's fonts-hanazono: apt-get install fonts-hanazono")
    return _("replace the character, or install a TrueType font that has it")


def _positions(source: str, ch: str) -> list[tuple[int, int]]:
    """1-based (line, col) of every occurrence of `ch` in `source` (col counts characters)."""
    out = []
    for n, line in enumerate(source.splitlines(), 1):
        start = line.find(ch)
        while start >= 0:
            out.append((n, start + 1))
            start = line.find(ch, start + 1)
    return out


# --- Pillow -------------------------------------------------------------------------------


@lru_cache(maxsize=128)
def pil_font(size: int, weight: int = REGULAR, face: Face | None = None) -> "ImageFont.FreeTypeFont":
    """The face (default: Noto Sans SC) at `size` pixels for Pillow (cached: loading a 10 MB
    TTF costs ~20 ms).

    The CJK faces are variable fonts whose default instance is Thin (100); `weight` picks the
    instance on the wght axis (400 regular, 700 bold), clamped to the face's range. Do not
    mutate the returned object.
    """
    from PIL import ImageFont

    font = ImageFont.truetype(str((face or primary()).path), size=size)
    try:
        axis = font.get_variation_axes()[0]
        font.set_variation_by_axes([min(max(weight, axis["minimum"]), axis["maximum"])])
    except (OSError, AttributeError, IndexError):  # not a variable font, or FreeType without variations
        pass
    return font


def text_length(text: str, size: int, weight: int = REGULAR) -> float:
    """Advance width of `text` in pixels, each run measured with its own face."""
    return sum(pil_font(size, weight, face).getlength(run) for face, run in font_runs(text))


def draw_text(draw: "ImageDraw.ImageDraw", xy: tuple[float, float], text: str, size: int, *,
              weight: int = REGULAR, fill=(0, 0, 0), anchor: str = "la") -> float:
    """Draw `text` with fallback faces on one baseline; returns the x after it.

    `anchor`: "la" (xy is the top-left, at the primary face's ascender, like Pillow's default)
    or "lm" (xy is the left end of the line's vertical middle).
    """
    x, y = xy
    ascent, descent = pil_font(size, weight).getmetrics()
    baseline = y + ascent if anchor == "la" else y + (ascent - descent) / 2
    for face, run in font_runs(text):
        font = pil_font(size, weight, face)
        draw.text((x, baseline), run, font=font, fill=fill, anchor="ls")
        x += font.getlength(run)
    return x


def wrap_pil(text: str, size: int, width: float, weight: int = REGULAR) -> list[str]:
    """wrap_text measured with the Pillow faces at `size` pixels."""
    return wrap_text(text, width, lambda s: text_length(s, size, weight))


# --- reportlab ----------------------------------------------------------------------------


@lru_cache(maxsize=None)
def register_reportlab_font(face: Face | None = None) -> str:
    """Register a face (default: Noto Sans SC) with reportlab once and return its font name.

    reportlab embeds a subset of a TTFont in the PDF (FontFile2), so the PDF shows the same
    glyphs on any reader; the built-in CID font STSong-Light is not embedded and poppler
    draws boxes for it.
    """
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont

    face = face or primary()
    if face.name not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(TTFont(face.name, str(face.path)))
    return face.name


@lru_cache(maxsize=None)
def thin_by_default(face: Face) -> bool:
    """True for variable faces whose default instance is Thin: reportlab draws that instance,
    so the PDF strokes these glyphs to read as Regular."""
    from fontTools.ttLib import TTFont

    with TTFont(str(face.path), lazy=True) as font:
        if "fvar" not in font:
            return False
        return any(a.axisTag == "wght" and a.defaultValue < 300 for a in font["fvar"].axes)


def pdf_runs(text: str) -> list[tuple[str, str, bool]]:
    """(reportlab font name, text, stroke to read as Regular) per run of `text`."""
    return [(register_reportlab_font(face), run, thin_by_default(face)) for face, run in font_runs(text)]


def pdf_width(text: str, size: float) -> float:
    """Width of `text` in points at `size`, as the PDF draws it."""
    from reportlab.pdfbase.pdfmetrics import stringWidth

    return sum(stringWidth(run, name, size) for name, run, _ in pdf_runs(text))


# --- line breaking ------------------------------------------------------------------------


def wrap_text(text: str, width: float, measure: Callable[[str], float]) -> list[str]:
    """Wrap `text` into lines no wider than `width`, as measured by `measure(str) -> float`.

    Breaks where UAX #14 allows (uniseg): between CJK characters but never before closing
    punctuation (，。」) or after opening punctuation (「（), at spaces in Latin text. A piece
    wider than the whole line (a long word or URL) is cut between characters. Explicit
    newlines are kept. `measure` lets the same code serve Pillow and reportlab.
    """
    lines: list[str] = []
    for paragraph in text.split("\n"):
        if measure(paragraph.rstrip()) <= width:  # fits: nothing to break
            lines.append(paragraph.rstrip())
            continue
        rows: list[list[str]] = []
        row: list[str] = []
        for piece in _pieces(paragraph):
            if measure(_joined(row + [piece])) <= width:  # the whole piece fits: its inner breaks do not matter
                row.append(piece)
                continue
            for unit in _piece_units(piece):
                if row and measure(_joined(row + [unit])) > width:
                    rows.append(row)
                    row = []
                if not row and measure(unit.rstrip()) > width:
                    *full, unit = _cut(unit, width, measure)
                    rows += [[part] for part in full]
                row.append(unit)
        rows.append(row)
        _no_orphan(rows, width, measure)
        lines += [_joined(r) for r in rows]
    return lines


def _pieces(paragraph: str) -> list[str]:
    """The paragraph cut between every two adjacent ideographs (line break class ID).

    UAX #14 always allows that break (LB31: no rule before it concerns two ID characters),
    and the rules that look further back or ahead stop at an ID character, so the pieces
    between can be segmented one by one with the same result as the whole paragraph (a
    test checks this). This matters for speed: uniseg 0.10 takes ~0.2 ms per character,
    and most of a Chinese paragraph is ideographs, which need no segmentation at all.
    """
    from uniseg.linebreak import LB, line_break

    ideograph = [line_break(c) == LB.ID for c in paragraph]
    cuts = [i for i in range(1, len(paragraph)) if ideograph[i - 1] and ideograph[i]]
    return [paragraph[a:b] for a, b in zip([0, *cuts], [*cuts, len(paragraph)]) if b > a]


@lru_cache(maxsize=4096)
def _piece_units(piece: str) -> tuple[str, ...]:
    """The piece cut at every UAX #14 break opportunity (cached: the same captions and
    prompts are wrapped by several outputs)."""
    from uniseg.linebreak import line_break_units

    return tuple(line_break_units(piece)) if len(piece) > 1 else (piece,)


def break_units(paragraph: str) -> list[str]:
    """The paragraph cut at every UAX #14 break opportunity, piece by piece."""
    return [unit for piece in _pieces(paragraph) for unit in _piece_units(piece)]


def _joined(units: list[str]) -> str:
    return "".join(units).rstrip()


def _cut(unit: str, width: float, measure) -> list[str]:
    """A piece too wide for a line (UAX #14 allows no break in it), cut between grapheme
    clusters into lines that fit. Where a cut would leave closing punctuation at a line's
    start or opening punctuation at its end, the character before the cut moves down too."""
    rows: list[list[str]] = [[]]
    for cluster in _clusters(unit):
        row = rows[-1]
        if row and measure("".join(row + [cluster]).rstrip()) > width:
            carry: list[str] = []
            # move characters down while the line would end with opening punctuation or the next
            # start with closing ("、” " after a word goes down with the word's last letter)
            while (_category(row[-1]) in ("Ps", "Pi") or _category((carry or [cluster])[0]) in ("Pe", "Pf", "Po")) \
                    and len(row) > 1 and measure(row[-1] + "".join(carry) + cluster) <= width:
                carry.insert(0, row.pop())
            rows.append(carry)
        rows[-1].append(cluster)
    return ["".join(r) for r in rows]


def _category(cluster: str) -> str:
    return unicodedata.category(cluster[0])


def _ink(units: list[str]) -> int:
    """How many letters, digits, ideographs or symbols the units hold (punctuation, spaces,
    marks and joiners not: an emoji ZWJ sequence counts each of its emoji, which is enough
    to tell a lone character)."""
    return sum(1 for c in "".join(units) if unicodedata.category(c)[0] in "LNS")


def _no_orphan(rows: list[list[str]], width: float, measure) -> None:
    """A last line with a single character takes the previous line's last piece with it."""
    if len(rows) < 2 or _ink(rows[-1]) != 1 or len(rows[-2]) < 2:
        return
    moved = rows[-2][-1:] + rows[-1]
    if measure(_joined(moved)) <= width:
        rows[-2], rows[-1] = rows[-2][:-1], moved
