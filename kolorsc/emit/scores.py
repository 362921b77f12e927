"""scores.json: every number the scorers produced, and plainly which ones they could not."""

from __future__ import annotations

from kolorsc.emit.common import candidate_scores, canonical_json, character_record
from kolorsc.results import StoryResult


def scores_record(result: StoryResult) -> dict:
    s = result.scores
    panels = []
    for pr in result.panels:
        panels.append(
            {
                "index": pr.panel.index,
                "seed": pr.seed,
                "aesthetic": pr.chosen.aesthetic,
                "coherence": pr.chosen.coherence,
                "alignment": pr.chosen.alignment,
                "consistency": pr.chosen.consistency,
                "candidates": [candidate_scores(c) for c in (pr.candidates or (pr.chosen,))],
            }
        )
    return {
        "story": result.story.id,
        "preview": result.preview,
        "engine": result.engine,
        "panels": panels,
        "aesthetic_mean": s.aesthetic_mean,
        "threshold": s.threshold,
        "gate": s.gate,
        "coherence_mean": s.coherence_mean,
        "coherence_min": s.coherence_min,
        "outlier_panel": s.outlier_panel,
        "alignment_mean": s.alignment_mean,
        "characters": [character_record(c) for c in s.characters],
        "scorer": s.scorer,
        "note": s.note,
    }


def scores_json(result: StoryResult) -> bytes:
    """UTF-8 JSON, sorted keys, trailing newline; None scores stay null (never invented)."""
    return canonical_json(scores_record(result)).encode("utf-8")
