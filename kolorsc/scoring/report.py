"""Score a set of images: per-image aesthetic and alignment, the mean, coherence, the gate.

`score_images` runs the models; `summarize` builds the same report from per-image results
(e.g. taken from the build cache), so coherence and the mean never need a model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kolorsc.results import Scores
from kolorsc.scoring.coherence import Coherence, coherence


@dataclass(frozen=True)
class ImageScore:
    aesthetic: float
    embedding: tuple[float, ...]  # the predictor's normalised CLIP image embedding
    alignment: float | None = None

    def to_json(self) -> dict:
        return {"aesthetic": self.aesthetic, "alignment": self.alignment, "embedding": list(self.embedding)}

    @classmethod
    def from_json(cls, data: dict) -> "ImageScore":
        return cls(
            aesthetic=float(data["aesthetic"]),
            embedding=tuple(float(x) for x in data["embedding"]),
            alignment=None if data.get("alignment") is None else float(data["alignment"]),
        )


@dataclass(frozen=True)
class ScoreReport:
    images: tuple[ImageScore, ...]
    aesthetic_mean: float | None
    coherence: Coherence
    alignment_mean: float | None
    scorer: dict = field(default_factory=dict)
    note: str | None = None  # why something was not computed

    @property
    def aesthetics(self) -> list[float]:
        return [s.aesthetic for s in self.images]

    @property
    def alignments(self) -> list[float | None]:
        return [s.alignment for s in self.images]

    def to_scores(self, threshold: float = 6.0, characters: tuple = ()) -> Scores:
        """The build's Scores record (kolorsc.results) for this report; `characters`: the
        per-character consistency (scoring.consistency.character_scores)."""
        return Scores(
            aesthetic_mean=self.aesthetic_mean,
            threshold=threshold,
            coherence_mean=self.coherence.mean,
            coherence_min=self.coherence.min,
            outlier_panel=self.coherence.outlier_panel,
            alignment_mean=self.alignment_mean,
            characters=tuple(characters),
            scorer=self.scorer,
            note=self.note,
        )


def gate(mean: float | None, threshold: float = 6.0) -> str:
    """"PASS" / "FAIL" against the threshold, "UNKNOWN" without a score (results.Scores.gate)."""
    return Scores(aesthetic_mean=mean, threshold=threshold).gate


def _mean(values: list[float]) -> float | None:
    # sum()/len() like the seed's evaluate(), so the mean is bit-for-bit its formula
    return sum(values) / len(values) if values else None


def summarize(image_scores: list[ImageScore], scorer: dict | None = None, note: str | None = None) -> ScoreReport:
    """Mean, coherence and alignment mean of per-image results, without any model."""
    alignments = [s.alignment for s in image_scores]
    have_alignment = bool(image_scores) and all(a is not None for a in alignments)
    return ScoreReport(
        images=tuple(image_scores),
        aesthetic_mean=_mean([s.aesthetic for s in image_scores]),
        coherence=coherence([list(s.embedding) for s in image_scores]),
        alignment_mean=_mean(alignments) if have_alignment else None,
        scorer=dict(scorer or {}),
        note=note,
    )


def score_one_batch(images: list[Any], texts: list[str] | None, scorers) -> list[ImageScore]:
    """Per-image results for images (PIL), with alignment when texts and Chinese-CLIP exist."""
    if texts is not None and len(texts) != len(images):
        raise ValueError(f"{len(images)} images but {len(texts)} prompts")
    aesthetics, embeds = scorers.aesthetic.score_and_embed(images)
    alignments: list[float | None] = [None] * len(images)
    if texts is not None and scorers.alignment is not None and images:
        alignments = list(scorers.alignment.score(images, texts))
    return [
        ImageScore(aesthetic=a, embedding=tuple(e), alignment=al)
        for a, e, al in zip(aesthetics, embeds, alignments)
    ]


def score_images(images: list[Any], texts: list[str] | None, scorers) -> ScoreReport:
    """Score the images with the loaded scorers: per image, mean, coherence, alignment."""
    note = None
    if texts is not None and scorers.alignment is None:
        note = scorers.alignment_note
    return summarize(score_one_batch(images, texts, scorers), scorer=scorers.identity, note=note)
