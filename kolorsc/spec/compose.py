"""The text rules of a compiled prompt: normalising, trigger and shot placement, negatives.

They live with the spec (not in kolorsc.prompts, which builds Panels from them) so that
`kolorsc check` can say what Kolors will see (kolorsc.spec.tokens) without a higher layer.

- Normalising text: split on `,` `，` and line breaks, collapse whitespace inside each
  fragment, drop empty fragments (so repeated commas collapse), and join with `，` when the
  text holds any CJK character, else with `, `.
- The style trigger is put first unless the prompt already contains it; the shot is put
  last unless the prompt already contains it ("contains": every comma-separated piece of it
  appears in the prompt, whatever comma style the template used).
- Negative = style negative + defaults.negative + scene negative, split on commas and line
  breaks, fragments stripped, duplicates dropped (case-insensitive, first one wins).
"""

from __future__ import annotations

import re

from kolorsc.spec.model import Scene, Story

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
    """Normalise whitespace and commas (see the module docstring)."""
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


def contains(prompt: str, part: str) -> bool:
    """Does the prompt already hold every comma-separated piece of `part` (any comma style)?"""
    return all(frag in prompt for frag in fragments(part))


def compiled_prompt(story: Story, scene: Scene, rendered: str) -> str:
    """The prompt Kolors gets for `scene`, from its rendered template."""
    prompt = normalise(rendered)
    if not contains(prompt, story.style.trigger):
        prompt = normalise(story.style.trigger + "\n" + prompt)
    if scene.shot and not contains(prompt, scene.shot):
        prompt = normalise(prompt + "\n" + scene.shot)
    return prompt


def compiled_negative(story: Story, rendered: str) -> str:
    """The negative prompt of a scene, from its rendered negative template ("" if none)."""
    return merge_negatives(story.style.negative, story.defaults.negative, rendered)
