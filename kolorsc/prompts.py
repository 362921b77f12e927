"""Prompt compilation: spec -> the eight compiled panels (plain data).

The compiler is written in the story-format work; this module's `Panel` is the contract
every later stage reads.
"""

from __future__ import annotations

from dataclasses import dataclass

from kolorsc.spec.model import Refine


@dataclass(frozen=True)
class Panel:
    index: int  # 1..8, the panel number shown to people and used in file names (01.png)
    caption: str
    prompt: str  # compiled, normalised
    negative: str  # compiled, style + story + scene negatives merged without duplicates
    seed: int
    steps: int
    cfg: float
    width: int
    height: int
    candidates: int = 1
    refine: Refine | None = None
    shot: str | None = None

    def settings(self) -> dict:
        """Everything that determines the image, as plain JSON-able data (used in cache keys)."""
        return {
            "prompt": self.prompt,
            "negative": self.negative,
            "seed": self.seed,
            "steps": self.steps,
            "cfg": self.cfg,
            "width": self.width,
            "height": self.height,
            "refine": None
            if self.refine is None
            else {"scale": self.refine.scale, "strength": self.refine.strength, "steps": self.refine.steps},
        }

    def candidate_seeds(self) -> list[int]:
        """Seeds of the N candidates: the panel's seed first, then seed+1... (documented, stable)."""
        return [self.seed + i for i in range(self.candidates)]
