"""The engine interface shared by `preview` (no model) and `kolors` (diffsynth).

An engine renders a batch of jobs. It receives every job of a story at once so that it
can encode all prompts in one pass and free the text encoder before denoising (the
memory plan). It never touches the cache or the file system outside what it is given:
the runner stores what it yields.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from kolorsc.prompts import Panel

if TYPE_CHECKING:  # Pillow is light, but keep the import where it is used
    from PIL.Image import Image

# progress(done, total, label): engines call it as work advances; the CLI draws the bar.
Progress = Callable[[int, int, str], None]


@dataclass(frozen=True)
class Reference:
    """A character's reference picture for IP-Adapter: the image file's bytes, identified by
    their sha256 (equality and hashing use the hash, not the bytes). `scale` > 0 is the
    strength of this picture in this panel. Several references on one panel each add their
    own attention term with their own scale (kolorsc/engines/kolors/ipadapter.py)."""

    character: str
    sha256: str  # of `image`; part of the render key of every panel that uses it
    scale: float
    image: bytes = field(default=b"", compare=False, repr=False)  # PNG/JPEG/WebP file contents


@dataclass(frozen=True)
class SharedMember:
    """An identity image of a shared-attention group: rendered in every batch of the group,
    yielded only when it is itself a job."""

    panel: Panel
    seed: int
    references: tuple[Reference, ...] = ()
    rate: float = 0.5  # its sampling rate of the other identity images' tokens


@dataclass(frozen=True)
class SharedAttention:
    """StoryDiffusion-style sharing for one render: its queries also attend to `rate` of the
    tokens of every identity image (the identity images attend to each other's). Engines
    batch the jobs that carry equal `identity` and settings, `group` images per batch."""

    identity: tuple[SharedMember, ...]
    group: int = 8
    rate: float = 0.5
    layers: str = "up"  # "up", "up+mid", "all"
    from_step: int = 1

    def batch_key(self) -> tuple:
        """Jobs with equal keys can share a batch (the rate is per image and may differ)."""
        return (self.identity, self.group, self.layers, self.from_step)


@dataclass(frozen=True)
class RenderJob:
    panel: Panel
    seed: int  # this candidate's seed (panel.candidate_seeds())
    references: tuple[Reference, ...] = ()  # IP-Adapter pictures of the characters it shows
    shared: SharedAttention | None = None  # None: rendered on its own, as without sharing

    @property
    def consistent(self) -> bool:
        return bool(self.references) or self.shared is not None


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

    def require(self, jobs: Sequence[RenderJob]) -> None:
        """Fail now (ModelMissingError naming `kolorsc models pull ...`) when rendering `jobs`
        would need model files that are missing. Called before anything runs; the default
        engine needs nothing."""

    def consistency_identity(self, references: bool = True) -> dict:
        """What, beyond identity(), decides the images of jobs with references (`references`)
        or shared attention: the consistency code's version and, with references, the
        adapter's and image encoder's files. Goes into the render keys of those panels only,
        so turning consistency on re-renders nothing else."""
        return {}
