"""Coherence across panels: pairwise cosine similarity of the panels' CLIP image embeddings.

Plain Python on purpose: eight vectors of 768 floats is microseconds of work, and keeping
numpy/torch out lets the build compute coherence from cached embeddings without loading any
model. A story can be coherent by being eight copies of one picture, so this number is always
reported beside the aesthetic score, never alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence


@dataclass(frozen=True)
class Coherence:
    mean: float | None  # mean similarity over all pairs of different panels
    min: float | None  # the least similar pair
    outlier_panel: int | None  # 1-based panel with the lowest mean similarity to the others
    matrix: tuple[tuple[float, ...], ...]  # full cosine similarity matrix, diagonal 1.0


def _plain(data: Any) -> Any:
    if hasattr(data, "detach"):  # torch tensor
        data = data.detach().cpu()
    return data.tolist() if hasattr(data, "tolist") else data


def as_vectors(embeddings: Any) -> list[list[float]]:
    """Accept a 2-D torch tensor, numpy array or nested sequences; return lists of floats."""
    return [[float(x) for x in _plain(row)] for row in _plain(embeddings)]


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    if len(a) != len(b):
        raise ValueError(f"embeddings of different sizes: {len(a)} and {len(b)}")
    na = math.sqrt(math.fsum(x * x for x in a))
    nb = math.sqrt(math.fsum(y * y for y in b))
    if na == 0.0 or nb == 0.0:
        return 0.0  # a zero vector is similar to nothing
    return math.fsum(x * y for x, y in zip(a, b)) / (na * nb)


def similarity_matrix(vectors: list[list[float]]) -> tuple[tuple[float, ...], ...]:
    n = len(vectors)
    rows = [[1.0] * n for _ in range(n)]
    for i in range(n):
        for j in range(i + 1, n):
            rows[i][j] = rows[j][i] = cosine(vectors[i], vectors[j])
    return tuple(tuple(r) for r in rows)


def coherence(embeddings: Any) -> Coherence:
    """Mean and minimum pairwise similarity, and the panel that stands out.

    The outlier is the panel whose mean similarity to the other panels is lowest (first one on
    a tie). With fewer than two panels there are no pairs: the numbers are None, not invented.
    """
    vectors = as_vectors(embeddings)
    matrix = similarity_matrix(vectors)
    n = len(vectors)
    if n < 2:
        return Coherence(mean=None, min=None, outlier_panel=None, matrix=matrix)
    pairs = [matrix[i][j] for i in range(n) for j in range(i + 1, n)]
    row_means = [math.fsum(matrix[i][j] for j in range(n) if j != i) / (n - 1) for i in range(n)]
    outlier = min(range(n), key=lambda i: row_means[i])
    return Coherence(
        mean=math.fsum(pairs) / len(pairs),
        min=min(pairs),
        outlier_panel=outlier + 1,
        matrix=matrix,
    )


def mean_similarity(embedding: Any, others: Any) -> float | None:
    """Mean cosine similarity of one embedding to each of `others`; None when there are none."""
    if others is None:
        return None
    others_v = as_vectors(others)
    if not others_v:
        return None
    vec = [float(x) for x in _plain(embedding)]
    return math.fsum(cosine(vec, o) for o in others_v) / len(others_v)
