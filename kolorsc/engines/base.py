"""The engine interface shared by `preview` (no model) and `kolors` (diffsynth).

An engine renders a batch of jobs. It receives every job of a story at once so that it
can encode all prompts in one pass and free the text encoder before denoising (the
memory plan). It never touches the cache or the file system outside what it is given:
the runner stores what it yields.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from kolorsc.prompts import Panel

if TYPE_CHECKING:  # Pillow is light, but keep the import where it is used
    from PIL.Image import Image

# progress(done, total, label): engines call it as work advances; the CLI draws the bar.
Progress = Callable[[int, int, str], None]


@dataclass(frozen=True)
class RenderJob:
    panel: Panel
    seed: int  # this candidate's seed (panel.candidate_seeds())


@dataclass(frozen=True)
class LoraWeights:
    """A LoRA file to apply while rendering.

    `scale` is the render-time multiplier exactly as diffsynth's `load_lora(lora_alpha=...)`
    applies it: W += scale * B @ A, ignoring the trained alpha/rank ratio. The challenge
    baseline trains at rank 16, alpha 4 and renders at 2.0; keeping diffsynth's meaning
    reproduces its images. (ComfyUI's strength for the same effect is scale * rank / alpha.)
    """

    path: Path
    scale: float
    key: str  # content hash of the file, part of every panel's cache key


class Engine(ABC):
    name: str = ""
    preview: bool = False  # preview engines draw drafts: never a valid submission

    @abstractmethod
    def identity(self) -> dict:
        """What makes this engine's output what it is (name, code version, base model revision,
        precision, sampler). Goes into panel cache keys: change it and panels re-render."""

    @abstractmethod
    def render(
        self,
        jobs: Sequence[RenderJob],
        lora: LoraWeights | None,
        progress: Progress | None = None,
    ) -> Iterator[tuple[RenderJob, "Image"]]:
        """Yield (job, RGB image) for every job, in any order, as each finishes, so the runner
        can store each panel the moment it exists (a crash later loses nothing)."""

    def close(self) -> None:
        """Release models and memory. Called once by the runner when rendering is done."""
