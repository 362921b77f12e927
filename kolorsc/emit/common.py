"""Shared plain-data views of a build result, so every output says the same thing the same way."""

from __future__ import annotations

import json

from kolorsc.results import Candidate, CharacterScore, PanelResult, StoryResult

NOT_COMPUTED = "not computed"


def image_name(index: int) -> str:
    """File name of panel `index` (1-based) in panels/ and in the bundle's images/."""
    return f"{index:02d}.png"


def lora_filename(result: StoryResult) -> str | None:
    """Name of the LoRA file inside the bundle (and the name ComfyUI's loader is given)."""
    if result.lora is None:
        return None
    return f"{result.story.style.id}.safetensors"


def lora_record(result: StoryResult) -> dict | None:
    lora = result.lora
    if lora is None:
        return None
    return {
        "file": lora_filename(result),
        "key": lora.key,
        "scale": lora.scale,
        "rank": lora.rank,
        "alpha": lora.alpha,
        "comfyui_strength": comfyui_strength(result),
    }


def comfyui_strength(result: StoryResult) -> float | None:
    """ComfyUI strength giving the same weight change as diffsynth's multiplier `scale`.

    diffsynth applies W += scale * B @ A; ComfyUI applies strength * (alpha / rank) * B @ A
    when the file stores alpha. So strength = scale * rank / alpha. Unknown rank/alpha:
    the scale itself (correct when the file stores no alpha, as ComfyUI then uses 1.0).
    """
    lora = result.lora
    if lora is None:
        return None
    if lora.rank and lora.alpha:
        return round(lora.scale * lora.rank / lora.alpha, 6)
    return lora.scale


def panel_record(pr: PanelResult, result: StoryResult) -> dict:
    """Everything needed to reproduce one panel, with the CHOSEN seed."""
    p = pr.panel
    return {
        "index": p.index,
        "image": f"images/{image_name(p.index)}",
        "caption": p.caption,
        "shot": p.shot,
        **p.settings(),
        "seed": pr.seed,  # the chosen candidate's, not the panel's first seed
        "lora_scale": result.lora.scale if result.lora else None,
        "base_model": result.story.style.base_model,
    }


def candidate_scores(c: Candidate) -> dict:
    return {
        "seed": c.seed,
        "image_hash": c.image_hash,
        "aesthetic": c.aesthetic,
        "coherence": c.coherence,
        "alignment": c.alignment,
        "consistency": c.consistency,
    }


def character_record(c: CharacterScore) -> dict:
    return {"character": c.character, "panels": list(c.panels), "mean": c.mean, "min": c.min, "reference": c.reference}


def consistency_line(result: StoryResult) -> str | None:
    """e.g. 'consistency: 少女 0.912 (reference 0.850) · 王子 (1 panel)'; None without
    per-character scores. For the storyboard footer and the PDF cover, beside the gate line."""
    scores = result.scores.characters
    if not scores:
        return None
    parts = []
    for c in scores:
        character = result.story.characters.get(c.character)
        name = (character.name if character is not None and character.name else None) or c.character
        text = f"{name} {fmt_score(c.mean)}" if c.mean is not None else f"{name} (1 panel)"
        if c.reference is not None:
            text += f" (reference {fmt_score(c.reference)})"
        parts.append(text)
    return "consistency: " + " · ".join(parts)


def fmt_score(value: float | None, digits: int = 3) -> str:
    return NOT_COMPUTED if value is None else f"{value:.{digits}f}"


def gate_line(result: StoryResult) -> str:
    """e.g. 'PASS: mean aesthetic 6.412 >= 6.0' or
    'UNKNOWN: mean aesthetic not computed (threshold 6.0): preview drafts are not scored'."""
    s = result.scores
    if s.aesthetic_mean is None:
        line = f"{s.gate}: mean aesthetic {NOT_COMPUTED} (threshold {s.threshold})"
        return line + (f": {scores_reason(result)}" if s.note else "")
    op = ">=" if s.gate == "PASS" else "<"
    return f"{s.gate}: mean aesthetic {s.aesthetic_mean:.3f} {op} {s.threshold}"


def scores_reason(result: StoryResult) -> str:
    """Why scores are missing, without the note's own "not computed:" (said once is enough)."""
    note = result.scores.note or ""
    head, sep, rest = note.partition(":")
    return rest.strip() if sep and head.strip() == NOT_COMPUTED else note


def any_score(result: StoryResult) -> bool:
    """True when some panel has some score: only then do per-panel score lines say anything."""
    return any(
        v is not None for pr in result.panels for c in pr.candidates for v in (c.aesthetic, c.coherence, c.alignment)
    )


def engine_label(result: StoryResult) -> str:
    e = result.engine or {}
    return str(e.get("name") or "unknown")


def canonical_json(data) -> str:
    """Stable, readable JSON: sorted keys, UTF-8 kept as is (Chinese stays readable)."""
    return json.dumps(data, ensure_ascii=False, sort_keys=True, indent=2) + "\n"
