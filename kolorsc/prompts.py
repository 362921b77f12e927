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
# - Scenes are Jinja templates rendered in ONE sandboxed environment (`template_environment`),
#   strict undefined, no autoescape. They see each character by key ({{ girl }} renders its
#   look; .look, .name, .key), `style` (renders its trigger; .trigger, .negative, .name, .id),
#   `story` (renders its title; .title, .id, .team) and `scene` (renders its caption;
#   .caption, .shot, .index 1..8).
# - The style trigger is put first unless the prompt already contains it; the shot is put
#   last unless the prompt already contains it ("contains": every comma-separated piece of
#   it appears in the prompt, whatever comma style the template used).
# - Negative = style negative + defaults.negative + scene negative (a template too), split on
#   commas and line breaks, fragments stripped, duplicates dropped (first one wins).
# - Normalising text: split on `,` `，` and line breaks, collapse whitespace inside each
#   fragment, drop empty fragments (so repeated commas collapse), and join with `，` when the
#   text holds any CJK character, else with `, `.
# - Seeds: a scene without `seed` uses defaults.seed + its panel number (1..8).

import re  # noqa: E402  (kept with the compiler it serves)

from kolorsc.spec.model import Scene, Story  # noqa: E402


def template_environment():
    """The one Jinja environment factory (kolorsc.spec.templates), imported on first use so
    that importing Panel stays cheap for every stage."""
    from kolorsc.spec.templates import template_environment as make

    return make()


# Ideographs, kana and hangul decide the separator; punctuation (，) does not.
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af]")
_SPLIT = re.compile(r"[,，\n\r]+")
_SPACE = re.compile(r"\s+")


def fragments(text: str) -> list[str]:
    """Comma- and line-separated parts of a prompt, whitespace collapsed, empties dropped."""
    out = []
    for part in _SPLIT.split(text or ""):
        part = _SPACE.sub(" ", part).strip()
        if part:
            out.append(part)
    return out


def separator_for(text: str) -> str:
    return "，" if _CJK.search(text or "") else ", "


def normalise(text: str) -> str:
    """Normalise whitespace and commas (see the rules at the top of this section)."""
    return separator_for(text).join(fragments(text))


def merge_negatives(*parts: str) -> str:
    """Combine negatives in order, dropping repeated fragments (case-insensitive)."""
    seen: set[str] = set()
    kept: list[str] = []
    for part in parts:
        for frag in fragments(part):
            key = frag.casefold()
            if key not in seen:
                seen.add(key)
                kept.append(frag)
    joined = "".join(parts)
    return separator_for(joined).join(kept)


def _contains(prompt: str, part: str) -> bool:
    """Does the prompt already hold every comma-separated piece of `part` (any comma style)?"""
    return all(frag in prompt for frag in fragments(part))


def compile_story(story: Story) -> list[Panel]:
    """The eight panels of `story`. Raises SpecError with a diagnostic per template problem,
    each naming the scene and the line in the story file."""
    from kolorsc.spec.templates import render_scenes

    return [_panel(story, r.scene, r.prompt, r.negative) for r in render_scenes(story)]


def _panel(story: Story, scene: Scene, prompt: str, negative: str) -> Panel:
    d = story.defaults
    prompt = normalise(prompt)
    if not _contains(prompt, story.style.trigger):
        prompt = normalise(story.style.trigger + "\n" + prompt)
    if scene.shot and not _contains(prompt, scene.shot):
        prompt = normalise(prompt + "\n" + scene.shot)
    width, height = scene.size or d.size
    return Panel(
        index=scene.index + 1,
        caption=scene.caption.strip(),
        prompt=prompt,
        negative=merge_negatives(story.style.negative, d.negative, negative),
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
