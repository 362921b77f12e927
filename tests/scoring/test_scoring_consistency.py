"""Per-character consistency and its use in best of N: plain data against hand-computed
cosines, plus the reference picture's embedding from the real (tiny) scorer."""

from __future__ import annotations

import math

import pytest

from kolorsc.results import CharacterScore
from kolorsc.scoring import (
    CandidateScore,
    candidate_consistency,
    character_scores,
    select_best,
)

X = [1.0, 0.0, 0.0]
Y = [0.0, 1.0, 0.0]
XY = [1.0, 1.0, 0.0]  # cos 1/sqrt(2) with X and with Y
Z = [0.0, 0.0, 2.0]


def test_character_scores_pairwise_and_with_the_reference():
    embeddings = {1: X, 2: XY, 3: Y, 4: Z}
    scores = character_scores(embeddings, {"girl": [1, 2, 3], "prince": [4], "ghost": [9]}, {"girl": X, "prince": Z})
    girl, prince = scores
    r = 1 / math.sqrt(2)
    assert girl.character == "girl" and girl.panels == (1, 2, 3)
    assert girl.mean == pytest.approx((r + 0.0 + r) / 3) and girl.min == pytest.approx(0.0)
    assert girl.reference == pytest.approx((1 + r + 0) / 3)
    assert prince == CharacterScore("prince", (4,), None, None, pytest.approx(1.0))  # one panel: no pairs
    assert [s.character for s in scores] == ["girl", "prince"]  # a character no scored panel shows is left out
    assert character_scores(embeddings, {"girl": [1, 2]})[0].reference is None


def test_candidate_consistency():
    assert candidate_consistency(X, [X, Y], [XY]) == pytest.approx((1 + 0 + 1 / math.sqrt(2)) / 3)
    assert candidate_consistency(X, None, None) is None and candidate_consistency(X, [], None) is None


def test_best_of_n_prefers_character_consistency_among_tied_candidates():
    others = [X, X]
    cands = [
        CandidateScore(1, 6.40, embedding=X, consistency=0.2),  # most coherent, least consistent
        CandidateScore(2, 6.38, embedding=Y, consistency=0.9),
        CandidateScore(3, 6.10, embedding=Y, consistency=1.0),  # outside the tie margin: aesthetic first
    ]
    assert select_best(cands, others) == 1
    # without consistency numbers, coherence decides as before
    plain = [CandidateScore(c.seed, c.aesthetic, c.embedding) for c in cands]
    assert select_best(plain, others) == 0
    # a candidate with a number beats one without (nothing to compare with)
    mixed = [CandidateScore(1, 6.40, embedding=X), CandidateScore(2, 6.40, embedding=Y, consistency=0.1)]
    assert select_best(mixed, others) == 1


def test_reference_embedding_uses_the_aesthetic_models_embeddings(tmp_path):
    pytest.importorskip("aesthetics_predictor")
    from _scoring_fixtures import make_aesthetic_model
    from PIL import Image

    from kolorsc.scoring import load_scorers, reference_embedding

    make_aesthetic_model(tmp_path)
    scorers = load_scorers(tmp_path, device="cpu")
    picture = Image.new("RGBA", (30, 40), (200, 20, 20, 255))
    emb = reference_embedding(picture, scorers)
    same = scorers.aesthetic.score_and_embed([picture.convert("RGB")])[1][0]
    assert emb == same and abs(math.fsum(x * x for x in emb) - 1) < 1e-5
