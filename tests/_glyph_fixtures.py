"""Glyph-by-glyph checks of drawn text (storyboard PNG, PDF pages rendered by poppler).

A line of drawn text is cut into one slice per character at the advances Pillow gives each
character in the first font file that has it (found with fontTools here, not with the code
under test). Each slice's ink is compared with Pillow's drawing of that character in that
face, and with the empty box the primary face draws for a character it does not have.
"""

from __future__ import annotations

from functools import lru_cache

from PIL import Image, ImageDraw, ImageFont

from kolorsc import fonts

NO_GLYPH = "\U000f0000"  # private use: no font has it, the primary face draws its box


@lru_cache(maxsize=None)
def _cmap(path) -> frozenset:
    from fontTools.ttLib import TTFont

    return frozenset(TTFont(str(path), lazy=True).getBestCmap())


def face_path_with(ch: str):
    """The first installed face whose cmap has `ch` (the primary one when none has)."""
    for face in fonts.faces():
        if ord(ch) in _cmap(face.path):
            return face.path
    return fonts.primary().path


def _font(path, size: int):
    font = ImageFont.truetype(str(path), size)
    try:
        font.set_variation_by_axes([400])
    except OSError:
        pass
    return font


def expected_line(text: str, size: int) -> tuple[Image.Image, list[float]]:
    """`text` drawn character by character, each in the face that has it, on one baseline;
    and the x where each character starts (plus the end)."""
    height = size * 2
    image = Image.new("L", (int(size * 1.3 * len(text)) + size, height), 255)
    draw = ImageDraw.Draw(image)
    xs, x = [], 0.0
    for ch in text:
        font = _font(face_path_with(ch), size)
        xs.append(x)
        draw.text((x, size * 1.4), ch, font=font, fill=0, anchor="ls")
        x += font.getlength(ch)
    return image, xs + [x]


def box_glyph(size: int) -> Image.Image:
    image = Image.new("L", (size * 2, size * 2), 255)
    ImageDraw.Draw(image).text((0, size * 1.4), NO_GLYPH, font=_font(fonts.primary().path, size), fill=0, anchor="ls")
    return image


def ink(image: Image.Image, threshold: int = 140):
    """Binary mask of the dark pixels, cropped to their bounding box (None when blank)."""
    mask = image.convert("L").point(lambda v: 255 if v < threshold else 0)
    box = mask.getbbox()
    return None if box is None else mask.crop(box)


def iou(a, b) -> float:
    if a is None or b is None:
        return 0.0
    b = b.resize(a.size)
    pa, pb = a.tobytes(), b.tobytes()
    both = sum(1 for x, y in zip(pa, pb) if x and y)
    either = sum(1 for x, y in zip(pa, pb) if x or y)
    return both / either if either else 0.0


def glyph_scores(line: Image.Image, text: str, size: int) -> list[tuple[str, float, float]]:
    """For each character of `text` drawn in `line` (a crop whose x = 0 is where the text
    starts, at `size` pixels per em): (character, IoU with the real glyph, IoU with a box)."""
    expected, xs = expected_line(text, size)
    box = ink(box_glyph(size))
    out = []
    for i, ch in enumerate(text):
        if ch == " ":
            continue
        left, right = round(xs[i]), round(xs[i + 1])
        drawn = ink(line.crop((left, 0, right, line.height)))
        want = ink(expected.crop((left, 0, right, expected.height)))
        out.append((ch, iou(drawn, want), iou(drawn, box)))
    return out
