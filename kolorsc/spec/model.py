"""The typed story model: plain dataclasses, produced by `kolorsc.spec.load_story`.

Everything downstream (prompts, plan, engines, training, emit) reads these and nothing
else; no stage looks at raw YAML. Defaults follow the challenge baseline (seed write-up).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

BASE_MODEL = "Kwai-Kolors/Kolors"
SCENE_COUNT = 8
DATASET_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp")  # what a local dataset folder may hold


@dataclass(frozen=True)
class Loc:
    """Where a value came from: file, 1-based line and column."""

    file: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


DEFAULT_SHEET_POSE = "单人，上半身，正面，中性表情，纯白背景"  # a square portrait: the encoder crops to a centred square


@dataclass(frozen=True)
class Reference:
    """A character's reference picture: a file in the project, or a character sheet kolorsc
    renders (`reference: generate`) from the look, the style and a neutral pose."""

    path: Path | None = None  # the picture (resolved, inside the project); None when generated
    generate: bool = False
    pose: str | None = None  # generate: this character's pose, else Consistency.sheet_pose
    seed: int | None = None  # generate: the sheet's seed, else derived from the key (kolorsc.consistency)


@dataclass(frozen=True)
class Character:
    key: str  # the name templates use: {{ girl }}
    look: str  # what {{ girl }} renders to
    name: str | None = None  # display name, optional
    reference: Reference | None = None


@dataclass(frozen=True)
class IpAdapter:
    """Kolors-IP-Adapter-Plus settings: `scale` for every reference, `characters` per key."""

    scale: float = 0.5  # Kwai's sample_ipadapter_plus.py renders at 0.5
    characters: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class SharedAttention:
    """StoryDiffusion-style shared self-attention (defaults and reasons: kolorsc/spec/README.md)."""

    identity: int | tuple[int, ...] = 2  # a count (the first N sharing scenes) or scene numbers 1..8
    group: int = 8  # images per batch, identity panels included: a whole story
    rate: float = 0.5  # fraction of each identity panel's tokens attended to
    layers: str = "up"  # "up", "up+mid" or "all"
    from_step: int = 1  # first denoising step that shares (0-based)


@dataclass(frozen=True)
class Consistency:
    """Story-level `consistency:`; None fields are off (the default)."""

    ip_adapter: IpAdapter | None = None
    shared_attention: SharedAttention | None = None
    sheet_pose: str = DEFAULT_SHEET_POSE


@dataclass(frozen=True)
class SceneConsistency:
    """A scene's `consistency:` over the story's. None everywhere: inherit."""

    ip_adapter: bool | None = None  # False: off for this scene; True: on (story's settings)
    ip_scale: float | None = None
    ip_characters: dict[str, float] = field(default_factory=dict)
    shared_attention: bool | None = None  # False: this scene renders on its own
    shared_rate: float | None = None


@dataclass(frozen=True)
class Refine:
    """Two-stage rendering: render at `size`, upscale by `scale`, refine with partial denoising."""

    scale: float = 2.0
    strength: float = 0.5  # denoising strength of the refine pass
    steps: int | None = None  # None: same as the panel's steps

    def as_dict(self) -> dict:
        return {"scale": self.scale, "strength": self.strength, "steps": self.steps}


@dataclass(frozen=True)
class Defaults:
    negative: str = ""
    steps: int = 50
    cfg: float = 4.0
    size: tuple[int, int] = (1024, 1024)  # (width, height)
    seed: int = 0
    candidates: int = 1
    refine: Refine | None = None


@dataclass(frozen=True)
class Scene:
    index: int  # 0-based position in the story
    caption: str
    prompt: str  # Jinja template source
    loc: Loc  # where the scene starts
    prompt_loc: Loc  # where the prompt template starts (template errors point here)
    shot: str | None = None
    negative: str | None = None  # per-scene extra negative (template too)
    seed: int | None = None
    steps: int | None = None
    cfg: float | None = None
    size: tuple[int, int] | None = None
    candidates: int | None = None
    negative_loc: Loc | None = None  # where the negative template starts, when the scene has one
    consistency: SceneConsistency | None = None


@dataclass(frozen=True)
class DataFilter:
    """One Data-Juicer operator with its arguments, e.g. image_shape_filter {min_width: 512}."""

    op: str
    args: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Generate:
    """A dataset rendered by the base model (source: generate): the style's trigger followed by
    each of `prompts` in turn (empty: kolorsc.data.generate's built-in subjects)."""

    count: int = 40
    prompts: tuple[str, ...] = ()
    steps: int = 40
    cfg: float = 4.0
    seed: int = 0


@dataclass(frozen=True)
class Dataset:
    source: str  # "local", "modelscope" or "generate"
    path: Path | None = None  # local folder (resolved, inside the project)
    id: str | None = None  # ModelScope dataset id, e.g. AI-ModelScope/lowres_anime
    subset: str | None = None
    split: str = "train"
    revision: str | None = None  # ModelScope branch, tag or commit (None: master)
    caption: str = "sidecar"  # "sidecar" (x.jpg + x.txt), "constant", "template"
    caption_text: str | None = None  # the constant, or the Jinja template (sees file stem)
    filters: tuple[DataFilter, ...] = ()
    max_images: int | None = None
    generate: Generate | None = None  # source "generate" (defaults when the style gives none)


@dataclass(frozen=True)
class Training:
    rank: int = 16
    alpha: float = 4.0
    target_modules: tuple[str, ...] = ("to_q", "to_k", "to_v", "to_out")
    learning_rate: float = 1e-4
    epochs: int = 1
    steps_per_epoch: int = 500
    batch_size: int = 1
    precision: str = "16-mixed"  # "16-mixed", "bf16-mixed", "32"
    gradient_checkpointing: bool = True
    center_crop: bool = True
    random_flip: bool = False
    resolution: int = 1024
    seed: int = 0
    # Lightning distributed settings, passed through unchanged.
    accelerator: str = "auto"
    devices: int | str = "auto"
    num_nodes: int = 1
    strategy: str = "auto"


@dataclass(frozen=True)
class Lora:
    """The style LoRA: reuse a file (`path`), reuse one published on ModelScope (`modelscope`,
    fetched by kolorsc.models.modelscope_lora_path), or train one (`training` + `dataset`)."""

    scale: float = 2.0  # render-time multiplier, as the baseline renders at 2.0
    path: Path | None = None
    modelscope: str | None = None  # owner/repo on ModelScope
    file: str | None = None  # the .safetensors inside that repository (None: its only one)
    revision: str | None = None  # ModelScope revision; None: the default branch
    training: Training | None = None
    dataset: Dataset | None = None


@dataclass(frozen=True)
class Style:
    id: str
    name: str
    trigger: str  # prompt fragment every scene gets through {{ style.trigger }}
    negative: str  # style negative, merged with the story's
    base_model: str = BASE_MODEL
    lora: Lora | None = None
    source: Path | None = None  # styles/<id>.yaml, None when inline
    description: str = ""
    # where each field is written: "lora.scale" -> Loc (in the style file, or the story for an inline style)
    locs: dict = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class Story:
    id: str  # slug; names outputs
    title: str
    team: str
    style: Style
    characters: dict[str, Character]
    defaults: Defaults
    scenes: tuple[Scene, ...]
    path: Path  # the story file (absolute)
    root: Path  # project root: paths in the story must stay inside it
    version: int = 1
    description: str = ""
    threshold: float = 6.0  # aesthetic gate of the challenge
    consistency: Consistency = field(default_factory=Consistency)
    # where each field is written: "scenes[2].seed" -> Loc (plan names the line of a change)
    locs: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def bundle_name(self) -> str:
        return f"{self.team}-可图Kolors训练-{self.id}"
