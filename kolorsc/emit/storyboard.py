"""The storyboard PNG: title, 2 rows x 4 panels with captions, footer with the gate.

Laid out like the challenge's example tables (图片1..8 with a caption under each). Panels
are downscaled to CELL pixels so the file stays small; all text uses the shipped CJK font.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from kolorsc.emit.common import engine_label, gate_line
from kolorsc.errors import BuildError
from kolorsc.fonts import BOLD, pil_font, wrap_pil
from kolorsc.results import StoryResult

COLUMNS = 4
ROWS = 2
PREVIEW_BANNER = "PREVIEW — not a submission 预览稿，不可提交"


@dataclass(frozen=True)
class Layout:
    cell: int = 384  # panel thumbnail box, pixels
    margin: int = 32
    gap: int = 24
    title_size: int = 40
    caption_size: int = 20
    caption_lines: int = 3
    footer_size: int = 18
    banner_size: int = 34

    @property
    def width(self) -> int:
        return 2 * self.margin + COLUMNS * self.cell + (COLUMNS - 1) * self.gap

    @property
    def caption_height(self) -> int:
        return 8 + self.caption_lines * int(self.caption_size * 1.35)


INK = (20, 20, 20)
MUTED = (90, 90, 90)
RED = (200, 30, 30)
GATE_COLOURS = {"PASS": (20, 130, 50), "FAIL": RED, "UNKNOWN": (150, 110, 0)}


def thumbnail(png: bytes, box: int):
    """The panel fitted inside box x box, aspect kept (LANCZOS: deterministic and sharp)."""
    from PIL import Image

    with Image.open(io.BytesIO(png)) as im:
        im.load()
        image = im.convert("RGB")
    scale = min(box / image.width, box / image.height)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.LANCZOS)


def fit_line(text: str, lines: list[str]) -> str:
    """The first wrapped line, ellipsised when the text did not fit on it."""
    first = lines[0] if lines else ""
    return first if len(lines) <= 1 else first[:-1] + "…"


def _caption_lines(text: str, layout: Layout) -> list[str]:
    lines = wrap_pil(text, layout.caption_size, layout.cell)
    if len(lines) > layout.caption_lines:  # keep the grid regular: ellipsise the overflow
        lines = lines[: layout.caption_lines]
        lines[-1] = lines[-1][:-1] + "…"
    return lines


def storyboard_png(result: StoryResult, images: list[bytes], layout: Layout = Layout()) -> bytes:
    """Render the storyboard of `result` from the eight panel PNGs. Deterministic bytes."""
    from PIL import Image, ImageDraw

    if len(images) != len(result.panels):
        raise BuildError(f"storyboard: {len(images)} images for {len(result.panels)} panels")
    L = layout
    title_h = L.margin + int(L.title_size * 1.4)
    banner_h = int(L.banner_size * 1.8) + 16 if result.preview else 0
    row_h = L.cell + L.caption_height
    footer_h = 3 * int(L.footer_size * 1.5) + L.margin
    height = title_h + banner_h + 16 + ROWS * row_h + (ROWS - 1) * L.gap + 16 + footer_h

    canvas = Image.new("RGB", (L.width, height), "white")
    draw = ImageDraw.Draw(canvas)

    # 1. Title
    title = fit_line(result.story.title, wrap_pil(result.story.title, L.title_size, L.width - 2 * L.margin, BOLD))
    draw.text((L.margin, L.margin), title, font=pil_font(L.title_size, BOLD), fill=INK)
    y = title_h

    # 2. Preview banner: impossible to miss, in English and Chinese
    if result.preview:
        draw.rectangle((0, y, L.width, y + banner_h - 16), fill=RED)
        font = pil_font(L.banner_size, BOLD)
        w = font.getlength(PREVIEW_BANNER)
        draw.text(((L.width - w) / 2, y + (banner_h - 16 - L.banner_size * 1.3) / 2), PREVIEW_BANNER, font=font, fill="white")
        y += banner_h
    y += 16

    # 3. The grid: panel i at row i // 4, column i % 4, caption under it
    cap_font = pil_font(L.caption_size)
    for i, (pr, png) in enumerate(zip(result.panels, images)):
        row, col = divmod(i, COLUMNS)
        x0 = L.margin + col * (L.cell + L.gap)
        y0 = y + row * (row_h + L.gap)
        thumb = thumbnail(png, L.cell)
        canvas.paste(thumb, (x0 + (L.cell - thumb.width) // 2, y0 + (L.cell - thumb.height) // 2))
        draw.rectangle((x0, y0, x0 + L.cell - 1, y0 + L.cell - 1), outline=(200, 200, 200))
        ty = y0 + L.cell + 8
        for line in _caption_lines(f"{pr.panel.index}. {pr.panel.caption}", L):
            draw.text((x0, ty), line, font=cap_font, fill=INK)
            ty += int(L.caption_size * 1.35)

    # 4. Footer: who, what, and whether it passes the challenge's gate
    y = y + ROWS * row_h + (ROWS - 1) * L.gap + 16
    foot = pil_font(L.footer_size)
    story = result.story
    lora = f" · LoRA {result.lora.key[:12]} × {result.lora.scale}" if result.lora else ""
    draw.text((L.margin, y), f"{story.team} · {story.id} · engine {engine_label(result)}{lora}", font=foot, fill=MUTED)
    y += int(L.footer_size * 1.5)
    gate = gate_line(result)
    gate_lines = wrap_pil(gate, L.footer_size, L.width - 2 * L.margin)
    for line in gate_lines[:2]:
        draw.text((L.margin, y), line, font=foot, fill=GATE_COLOURS.get(result.scores.gate, INK))
        y += int(L.footer_size * 1.5)

    out = io.BytesIO()
    canvas.save(out, format="PNG", compress_level=6)
    return out.getvalue()
