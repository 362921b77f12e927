"""The `preview` engine: deterministic draft panels, no model, for authoring on any laptop.

A draft shows the panel number, the compiled prompt and negative (wrapped), the seed and
settings, over a background derived from the seed, under one "PREVIEW — not a Kolors
render" band so it can never pass for a real image. It shows exactly the render's inputs:
the caption is not one (editing it must not re-render), and the storyboard and PDF print
it once under the panel.

Character consistency: the preview cannot condition on a picture or share attention. A
draft whose render uses them draws as it would without, plus one line naming them
("IP-Adapter: girl ×0.5 · shared attention #01 #02, rate 0.5"), which its key holds (the build
keys preview renders by the references and sharing settings, never by the pictures). A
character sheet (`reference: generate`) is drafted like a panel, headed "sheet".

Size: the draft keeps the panel's aspect ratio but is drawn at 512 px on the long side
(PREVIEW_LONG_SIDE), not at the panel's full size: drawing 1024² text panels costs four
times the pixels for nothing an author needs. The real size is printed on the draft.

Determinism: same panel and seed -> identical pixels (the fonts are the ones kolorsc ships,
named in `identity()`; Pillow draws without randomness); PNGs carry no timestamps.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from kolorsc import fonts
from kolorsc.codeid import code_identity, library_versions
from kolorsc.consistency import SHEET_INDEX
from kolorsc.engines.base import Engine, LoraWeights, Progress, RenderJob

if TYPE_CHECKING:
    from PIL.Image import Image

PREVIEW_LONG_SIDE = 512
MARK = "PREVIEW — not a Kolors render · 预览草图"


class PreviewEngine(Engine):
    name = "preview"
    preview = True

    def __init__(self, long_side: int = PREVIEW_LONG_SIDE, **_ignored):
        # Options meant for other engines (models_dir, device) are accepted and ignored,
        # so the CLI can pass the same options whatever the engine.
        self.long_side = long_side

    def identity(self) -> dict:
        # The code of this module (and what it imports) and the font it draws with: an edit
        # to either re-draws the drafts (kolorsc.codeid; never a version to bump by hand).
        return {"name": self.name, "code": code_identity(__name__), "libraries": library_versions("pillow"),
                "fonts": fonts.identity(), "long_side": self.long_side}

    def render(
        self,
        jobs: Sequence[RenderJob],
        lora: LoraWeights | None,
        progress: Progress | None = None,
    ) -> Iterator[tuple[RenderJob, "Image"]]:
        for done, job in enumerate(jobs, 1):
            image = draw_preview(job, self.long_side)
            if progress:
                progress(done, len(jobs), f"panel {job.panel.index:02d}")
            yield job, image


def draft_size(width: int, height: int, long_side: int) -> tuple[int, int]:
    scale = long_side / max(width, height)
    return max(64, round(width * scale)), max(64, round(height * scale))


def background(seed: int, size: tuple[int, int]) -> "Image":
    """A vertical gradient between two soft colours taken from the hash of the seed."""
    from PIL import Image

    h = hashlib.sha256(f"kolorsc-preview-{seed}".encode()).digest()
    top = tuple(150 + b % 90 for b in h[0:3])
    bottom = tuple(150 + b % 90 for b in h[3:6])
    column = Image.new("RGB", (1, 256))
    column.putdata([tuple(round(t + (b - t) * y / 255) for t, b in zip(top, bottom)) for y in range(256)])
    return column.resize(size, Image.Resampling.BILINEAR)


def draw_preview(job: RenderJob, long_side: int = PREVIEW_LONG_SIDE) -> "Image":
    from PIL import ImageDraw

    p = job.panel
    w, h = draft_size(p.width, p.height, long_side)
    image = background(job.seed, (w, h))
    draw = ImageDraw.Draw(image)
    unit = max(10, round(min(w, h) / 34))
    margin = unit
    ink, faint = (20, 20, 28), (60, 60, 70)

    # 1. The preview mark: one band across the top, on every panel.
    band = unit * 2
    draw.rectangle((0, 0, w, band), fill=(200, 30, 40))
    fonts.draw_text(draw, (margin, band / 2), MARK, unit, fill=(255, 255, 255), anchor="lm")

    # 2. Panel number, large (a character sheet: "sheet").
    y = band + margin
    fonts.draw_text(draw, (margin, y), "sheet" if p.index == SHEET_INDEX else f"#{p.index:02d}", unit * 3, fill=ink)
    y += unit * 3 + unit

    # 3. Prompt and negative, wrapped, as much as fits above the consistency and settings lines.
    settings = f"seed {job.seed} · steps {p.steps} · cfg {p.cfg:g} · {p.width}×{p.height}"
    if p.refine is not None:
        settings += f" · refine ×{p.refine.scale:g} @ {p.refine.strength:g}"
    bottom = h - margin - unit * 2
    note = consistency_note(job)
    if note:
        [line, *more] = fonts.wrap_pil(note, unit, w - 2 * margin) or [""]
        note_y = bottom - round(unit * 1.5)
        fonts.draw_text(draw, (margin, note_y), line[:-1] + "…" if more else line, unit, fill=(30, 60, 160))
        bottom = note_y
    room = max(1, (bottom - y) // round(unit * 1.25))
    neg_lines = max(1, room // 3)
    y = _paragraph(draw, f"prompt: {p.prompt}", unit, (margin, y), w - 2 * margin, ink, max_lines=room - neg_lines - 1)
    y = _paragraph(draw, f"negative: {p.negative or '—'}", unit, (margin, y + unit // 2), w - 2 * margin, faint,
                   max_lines=neg_lines)

    # 4. Settings, always at the same place.
    fonts.draw_text(draw, (margin, h - margin - unit * 2), settings, unit, fill=ink)
    return image


def consistency_note(job: RenderJob) -> str:
    """What a draft says of the job's consistency: its references (character and scale) and the
    identity panels it shares attention with; "" without either."""
    parts = []
    if job.references:
        parts.append("IP-Adapter: " + ", ".join(f"{r.character} ×{r.scale:g}" for r in job.references))
    if job.shared is not None:
        panels = " ".join(f"#{m.panel.index:02d}" for m in job.shared.identity)
        parts.append(f"shared attention {panels}, rate {job.shared.rate:g}")
    return " · ".join(parts)


def _paragraph(draw, text: str, size: int, at: tuple[int, int], width: int, fill, max_lines: int) -> int:
    """Draw wrapped text (breaks where UAX #14 allows), at most `max_lines` lines; returns the next y."""
    x, y = at
    lines = fonts.wrap_pil(text, size, width)
    if max_lines < 1:
        return y
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = lines[-1][: max(0, len(lines[-1]) - 1)] + "…"
    step = round(size * 1.25)
    for line in lines:
        fonts.draw_text(draw, (x, y), line, size, fill=fill)
        y += step
    return y
