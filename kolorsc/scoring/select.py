"""Best of N: which of a panel's N rendered candidates goes into the story.

The objective, in words (README-worthy):

    The challenge's aesthetic score comes first: the candidate with the highest aesthetic
    score wins. Candidates whose aesthetic score is within 0.05 of the best one (TIE_MARGIN,
    inclusive) count as tied — differences that small are noise of the predictor, not taste —
    and among tied candidates the one whose characters look most like themselves wins: the
    highest mean similarity to the other chosen panels showing one of its characters and to
    those characters' reference pictures (`consistency`, when the candidate has any to compare
    with); then the one most similar to the other panels' current choices (mean cosine
    similarity of CLIP image embeddings: the story looks like one story). Remaining ties go to
    the higher aesthetic score, then to the earlier candidate (the scene's own seed first).
    Character consistency never outweighs the aesthetic score by more than the tie margin:
    the challenge's gate is the aesthetic mean. With no aesthetic scores at all (scorer weights missing)
    nothing is ranked: the first candidate is kept, and the build says the scores were not
    computed.

Every candidate is recorded with its aesthetic, coherence and alignment numbers
(kolorsc.results.Candidate), so anyone can check the choice against this rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from kolorsc.scoring.coherence import mean_similarity

TIE_MARGIN = 0.05
_EPS = 1e-9  # so that 6.30 vs 6.25 is a tie despite binary floating point


@dataclass(frozen=True)
class CandidateScore:
    seed: int
    aesthetic: float | None
    embedding: Sequence[float] | None = None  # CLIP image embedding, for coherence
    alignment: float | None = None
    consistency: float | None = None  # scoring.consistency.candidate_consistency, None when not applicable


def candidate_coherence(candidate: CandidateScore, others: Any) -> float | None:
    """Mean similarity of one candidate to the other panels' choices (None if unknown)."""
    if candidate.embedding is None:
        return None
    return mean_similarity(candidate.embedding, others)


def select_best(candidates: list[CandidateScore], others: Any = None) -> int:
    """Index of the candidate to keep, by the objective in this module's docstring.

    `others`: embeddings of the other panels' current choices (2-D tensor, array or list of
    vectors), or None when there is nothing to compare with.
    """
    if not candidates:
        raise ValueError("select_best needs at least one candidate")
    scored = [i for i, c in enumerate(candidates) if c.aesthetic is not None]
    if not scored:
        return 0
    best = max(candidates[i].aesthetic for i in scored)
    tied = [i for i in scored if best - candidates[i].aesthetic <= TIE_MARGIN + _EPS]

    def key(i: int) -> tuple:
        cons = candidates[i].consistency if len(tied) > 1 else None
        coh = candidate_coherence(candidates[i], others) if len(tied) > 1 else None
        # max() keeps the first of equal keys; -i makes the earlier candidate win explicitly
        return (cons is not None, cons if cons is not None else 0.0, coh is not None, coh if coh is not None else 0.0,
                candidates[i].aesthetic, -i)

    return max(tied, key=key)
