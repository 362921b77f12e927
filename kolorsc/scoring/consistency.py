"""Per-character consistency: is the girl of panel 1 the girl of panel 8?

For each character, the panels whose prompt names it (kolorsc.consistency.scene_characters)
are compared by cosine similarity of their CLIP image embeddings — the aesthetic
predictor's own ViT-L/14 embeddings, already computed for every panel, so no extra model —
pairwise (mean and minimum: CLIP-I as story-generation papers report it), and with the
character's reference picture when it has one (its embedding from the same model:
`reference_embedding`). Plain Python like coherence.py: numbers from cached embeddings.

A panel showing two characters counts for both; the similarity is of whole images, so a
shared background raises it too (the papers' protocol removes backgrounds first; kolorsc
does not segment). Read it beside coherence and alignment, never alone: eight copies of one
picture are perfectly consistent.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from kolorsc.results import CharacterScore
from kolorsc.scoring.coherence import as_vectors, cosine


def character_scores(
    embeddings: Mapping[int, Sequence[float]],
    panels_by_character: Mapping[str, Sequence[int]],
    references: Mapping[str, Sequence[float]] | None = None,
) -> tuple[CharacterScore, ...]:
    """One CharacterScore per character (in the mapping's order) that at least one scored panel
    shows. `embeddings`: panel index -> embedding of its chosen image; `references`: character
    -> embedding of its reference picture."""
    out = []
    for character, panels in panels_by_character.items():
        shown = [p for p in panels if p in embeddings]
        if not shown:
            continue
        vectors = [list(map(float, embeddings[p])) for p in shown]
        pairs = [cosine(vectors[i], vectors[j]) for i in range(len(vectors)) for j in range(i + 1, len(vectors))]
        ref = (references or {}).get(character)
        reference = None if ref is None else math.fsum(cosine(v, list(map(float, ref))) for v in vectors) / len(vectors)
        out.append(CharacterScore(
            character=character,
            panels=tuple(shown),
            mean=math.fsum(pairs) / len(pairs) if pairs else None,
            min=min(pairs) if pairs else None,
            reference=reference,
        ))
    return tuple(out)


def candidate_consistency(embedding: Sequence[float], same_characters: Any = None, references: Any = None) -> float | None:
    """Mean similarity of a candidate to the other panels' chosen images that show one of its
    characters and to those characters' reference pictures; None when there is nothing to
    compare with (best of N then falls back to coherence)."""
    others = (as_vectors(same_characters) if same_characters is not None else []) + (
        as_vectors(references) if references is not None else [])
    if not others:
        return None
    vec = [float(x) for x in embedding]
    return math.fsum(cosine(vec, o) for o in others) / len(others)


def reference_embedding(image, scorers) -> list[float]:
    """The CLIP image embedding of a reference picture (PIL), from the aesthetic scorer's model,
    so it compares with the panels' embeddings."""
    return list(scorers.aesthetic.score_and_embed([image.convert("RGB")])[1][0])
