"""What a build produced, as plain data: the runner fills it, emit/ turns it into files.

Scores are None when they could not be computed (scorer weights missing): no number is
ever invented, and every consumer shows "not computed" with `scores_note` instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from kolorsc.prompts import Panel
from kolorsc.spec.model import Story


@dataclass(frozen=True)
class Candidate:
    seed: int
    image: Path  # PNG in the cache
    image_hash: str  # sha256 of the PNG bytes
    aesthetic: float | None = None
    coherence: float | None = None  # mean similarity to the other chosen panels
    alignment: float | None = None  # text-image similarity with the panel's prompt
    consistency: float | None = None  # similarity to its characters' other chosen panels and reference pictures


@dataclass(frozen=True)
class PanelResult:
    panel: Panel
    chosen: Candidate  # the candidate that goes into the storyboard and the bundle
    candidates: tuple[Candidate, ...] = ()  # every candidate rendered, chosen included

    @property
    def seed(self) -> int:
        return self.chosen.seed


@dataclass(frozen=True)
class CharacterScore:
    """How alike one character looks across the panels that show it (kolorsc.scoring.consistency):
    CLIP image similarity between those panels, and with its reference picture."""

    character: str  # key in the story
    panels: tuple[int, ...]  # 1-based panels whose prompt names it
    mean: float | None = None  # mean similarity over pairs of those panels (None with fewer than 2)
    min: float | None = None  # the least similar pair
    reference: float | None = None  # mean similarity of those panels to the reference picture (None without one)


@dataclass(frozen=True)
class Scores:
    aesthetic_mean: float | None = None
    threshold: float = 6.0
    coherence_mean: float | None = None
    coherence_min: float | None = None
    outlier_panel: int | None = None  # 1-based panel that stands out most
    alignment_mean: float | None = None
    characters: tuple[CharacterScore, ...] = ()  # per-character consistency, story order
    scorer: dict = field(default_factory=dict)  # identity of the scorers used
    note: str | None = None  # e.g. "not computed: run `kolorsc models pull aesthetic`"

    @property
    def gate(self) -> str:
        """PASS / FAIL against the threshold, or UNKNOWN when no score could be computed."""
        if self.aesthetic_mean is None:
            return "UNKNOWN"
        return "PASS" if self.aesthetic_mean >= self.threshold else "FAIL"


@dataclass(frozen=True)
class LoraResult:
    path: Path  # the LoRA file (kohya-style .safetensors) to ship in the bundle
    key: str
    rank: int | None = None
    alpha: float | None = None
    scale: float = 2.0
    trained: bool = False  # False when reused from the style's `path:`
    info: dict = field(default_factory=dict)  # training spec, dataset hash, base model...


@dataclass(frozen=True)
class CharacterSheet:
    """A character sheet the build rendered (`reference: generate`): the character's reference
    picture, written to build/<id>/characters/<key>.png and shown on the storyboard's cover."""

    character: str  # key in the story
    name: str  # as shown: the character's name, else its key
    seed: int
    image: Path | None  # PNG in the cache (None when only the bytes travelled, on a remote worker)
    image_hash: str  # sha256 of the PNG bytes


@dataclass(frozen=True)
class StoryResult:
    story: Story
    panels: tuple[PanelResult, ...]
    engine: dict  # engine identity
    preview: bool
    scores: Scores
    lora: LoraResult | None = None
    sheets: tuple[CharacterSheet, ...] = ()  # in the story's order of characters
