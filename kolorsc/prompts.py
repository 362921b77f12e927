"""Prompt compilation: spec -> the eight compiled panels (plain data).

The compiler is written in the story-format work; this module's `Panel` is the contract
every later stage reads.
"""

from __future__ import annotations

from dataclasses import dataclass

from kolorsc.spec.model import Refine


@dataclass(frozen=True)
class Panel:
    index: int  # 1..8, the panel number shown to people and used in file names (01.png)
    caption: str
    prompt: str  # compiled, normalised
    negative: str  # compiled, style + story + scene negatives merged without duplicates
    seed: int
    steps: int
    cfg: float
    width: int
    height: int
    candidates: int = 1
    refine: Refine | None = None
    shot: str | None = None

    def settings(self) -> dict:
        """Everything that determines the image, as plain JSON-able data (used in cache keys)."""
        return {
            "prompt": self.prompt,
            "negative": self.negative,
            "seed": self.seed,
            "steps": self.steps,
            "cfg": self.cfg,
            "width": self.width,
            "height": self.height,
            "refine": None if self.refine is None else self.refine.as_dict(),
        }

    def candidate_seeds(self) -> list[int]:
        """Seeds of the N candidates: the panel's seed first, then seed+1... (documented, stable)."""
        return [self.seed + i for i in range(self.candidates)]


# ---------------------------------------------------------------------------------------
# The compiler: story -> eight Panels.
#
# Rules (documented in README's story format section):
# - Scenes are Jinja templates rendered in ONE sandboxed environment (`template_environment`,
#   kolorsc.spec.sandbox), strict undefined, no autoescape, on a budget. They see each
#   character by key ({{ girl }} renders its look; .look, .name, .key), `style` (renders its
#   trigger; .trigger, .negative, .name, .id), `story` (renders its title; .title, .id,
#   .team) and `scene` (renders its caption; .caption, .shot, .index 1..8).
# - The text rules (trigger first, shot last, normalising, merging negatives) are in
#   kolorsc.spec.compose, which `kolorsc check` uses too.
# - Seeds: a scene without `seed` uses defaults.seed + its panel number (1..8).

from kolorsc.spec.compose import (  # noqa: E402  (re-exported: the compiler's text rules)
    compiled_negative,
    compiled_prompt,
    fragments,
    merge_negatives,
    normalise,
    separator_for,
)
from kolorsc.spec.model import Scene, Story  # noqa: E402

__all__ = ["Panel", "compile_story", "fragments", "merge_negatives", "normalise", "panel_as_dict", "panels_table",
           "separator_for", "template_environment"]


def template_environment():
    """The one Jinja environment factory (kolorsc.spec.sandbox), imported on first use so
    that importing Panel stays cheap for every stage."""
    from kolorsc.spec.sandbox import template_environment as make

    return make()


def compile_story(story: Story) -> list[Panel]:
    """The eight panels of `story`. Raises SpecError with a diagnostic per template problem,
    each naming the scene and the line in the story file."""
    from kolorsc.spec.templates import render_scenes

    return [_panel(story, r.scene, r.prompt, r.negative) for r in render_scenes(story)]


def _panel(story: Story, scene: Scene, prompt: str, negative: str) -> Panel:
    d = story.defaults
    width, height = scene.size or d.size
    return Panel(
        index=scene.index + 1,
        caption=scene.caption.strip(),
        prompt=compiled_prompt(story, scene, prompt),
        negative=compiled_negative(story, negative),
        seed=scene.seed if scene.seed is not None else d.seed + scene.index + 1,
        steps=scene.steps if scene.steps is not None else d.steps,
        cfg=float(scene.cfg if scene.cfg is not None else d.cfg),
        width=width,
        height=height,
        candidates=scene.candidates if scene.candidates is not None else d.candidates,
        refine=d.refine,
        shot=scene.shot,
    )


# ---------------------------------------------------------------------------------------
# Presenting panels (`kolorsc prompts`): plain strings; cli.py prints them.


def panel_as_dict(panel: Panel) -> dict:
    return {
        "index": panel.index,
        "caption": panel.caption,
        "prompt": panel.prompt,
        "negative": panel.negative,
        "seed": panel.seed,
        "steps": panel.steps,
        "cfg": panel.cfg,
        "size": [panel.width, panel.height],
        "candidates": panel.candidates,
        "shot": panel.shot,
        "refine": None if panel.refine is None else panel.refine.as_dict(),
    }


def _width(text: str) -> int:
    import unicodedata

    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _pad(text: str, width: int) -> str:
    return text + " " * max(0, width - _width(text))


def panels_table(panels: list[Panel]) -> str:
    """A readable table: one header row per panel with its settings, then prompt and negative."""
    head = ["#", "caption", "seed", "steps", "cfg", "size"]
    rows = [
        [str(p.index), p.caption, str(p.seed), str(p.steps), f"{p.cfg:g}", f"{p.width}x{p.height}"
         + (f" x{p.candidates}" if p.candidates > 1 else "")]
        for p in panels
    ]
    widths = [max(_width(r[i]) for r in [head, *rows]) for i in range(len(head))]
    lines = ["  ".join(_pad(h, w) for h, w in zip(head, widths)).rstrip()]
    for p, row in zip(panels, rows):
        lines.append("")
        lines.append("  ".join(_pad(c, w) for c, w in zip(row, widths)).rstrip())
        lines.append(f"   prompt:   {p.prompt}")
        lines.append(f"   negative: {p.negative}")
    return "\n".join(lines)
