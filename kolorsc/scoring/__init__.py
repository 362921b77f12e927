"""Scoring: the challenge's aesthetic score, coherence across panels, prompt alignment,
best-of-N selection and the PASS/FAIL gate. See README.md in this folder.

Importing this package is cheap (no torch/transformers) and registers the scoring models
(`aesthetic`, `chinese-clip`) in kolorsc.models.REGISTRY.
"""

from kolorsc.scoring.coherence import Coherence, coherence
from kolorsc.scoring.consistency import candidate_consistency, character_scores, reference_embedding
from kolorsc.scoring.loader import Scorers, load_scorers, scorer_identity
from kolorsc.scoring.models import AESTHETIC, CHINESE_CLIP
from kolorsc.scoring.report import (
    ImageScore,
    ScoreReport,
    gate,
    score_images,
    summarize,
)
from kolorsc.scoring.select import TIE_MARGIN, CandidateScore, candidate_coherence, select_best

__all__ = [
    "AESTHETIC",
    "CHINESE_CLIP",
    "CandidateScore",
    "Coherence",
    "ImageScore",
    "ScoreReport",
    "Scorers",
    "TIE_MARGIN",
    "candidate_coherence",
    "candidate_consistency",
    "character_scores",
    "coherence",
    "gate",
    "load_scorers",
    "reference_embedding",
    "score_images",
    "scorer_identity",
    "select_best",
    "summarize",
]
