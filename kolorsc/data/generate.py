"""A dataset rendered by the base model (`dataset.source: generate`): distilling a prompt style
into a LoRA.

Kolors draws many styles from words alone ("古风，水墨画" gives ink wash), but how strongly
depends on the rest of the prompt: a long scene description dilutes the style words, and the
eight panels of a story drift apart. Rendering a few dozen images of the style's trigger
over varied subjects and training the style LoRA on them bakes the look into the weights, so
every panel keeps it whatever its prompt says. No image collection is needed, which is what
lets an example style build from a fresh clone.

    image n: prompt   = normalise(style trigger + "，" + subject n)  (subjects: generate.prompts
                        taken in turn, else DEFAULT_SUBJECTS)
             negative = the style's negative
             seed     = generate.seed + n; steps, cfg from `generate`; size = the training
                        resolution, square

    generate_dataset(style, engine, out_dir, progress) -> GenerateReport
        out_dir/00000.png, 00000.txt (the image's prompt: its caption under the default
        `caption: sidecar` rule) ..., manifest.json; written in a temp folder beside out_dir
        and moved into place once every image exists.
    generate_fingerprint(style, engine_identity) -> str   the key of that output
    ensure_generated(style, engine, out_dir, progress)    the same, reusing out_dir when its
                                                           manifest has that key (kolorsc train)
    as_local(dataset, folder) -> Dataset                   the generated folder as a local
                                                           source, for prepare_dataset

The engine is any kolorsc Engine (the build passes the kolors engine it renders panels with;
tests pass the preview engine); the caller closes it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from kolorsc.atomic import replace_dir
from kolorsc.engines.base import Engine, RenderJob
from kolorsc.errors import TrainingError
from kolorsc.i18n import _
from kolorsc.prompts import Panel, normalise
from kolorsc.spec.model import Dataset, Generate, Style

GENERATE_VERSION = "1"  # bump when the images made from the same inputs change
Progress = Callable[[int, int, str], None]

# Everyday subjects: people, animals, places, objects, weather, so the LoRA learns the style
# and not one subject. Chinese, the language Kolors' ChatGLM encoder is strongest in.
DEFAULT_SUBJECTS = (
    "一位少女坐在窗边读书",
    "一位老人在茶馆里喝茶",
    "两个孩子在田野上放风筝",
    "一只猫在屋檐上睡觉",
    "山间小路上的石桥和溪流",
    "雨后的古镇街道",
    "夜晚灯火通明的集市",
    "一艘小船停在湖边",
    "森林里的小木屋",
    "骑着白马的少年",
    "一束插在瓷瓶里的花",
    "海边的灯塔和日落",
    "雪中的寺庙",
    "厨房里做饭的母亲",
    "一只在竹林中的熊猫",
    "城市天台上看星星的人",
)


@dataclass
class GenerateReport:
    out_dir: Path
    images: list[tuple[str, str, int]] = field(default_factory=list)  # (file, prompt, seed)
    engine: dict = field(default_factory=dict)
    fingerprint: str = ""


def settings(style: Style) -> Generate:
    """The `generate` settings of a style whose dataset is generated (defaults when absent)."""
    lora = style.lora
    if lora is None or lora.dataset is None or lora.dataset.source != "generate":
        raise TrainingError(_("style {id}: its LoRA dataset is not `source: generate`").format(id=style.id))
    return lora.dataset.generate or Generate()


def generation_jobs(style: Style) -> list[RenderJob]:
    """One render job per image, in order (see the module docstring for the rule)."""
    gen = settings(style)
    subjects = gen.prompts or DEFAULT_SUBJECTS
    size = style.lora.training.resolution if style.lora.training else 1024
    jobs = []
    for n in range(gen.count):
        subject = subjects[n % len(subjects)]
        prompt = normalise(f"{style.trigger}，{subject}")
        panel = Panel(index=n + 1, caption=subject, prompt=prompt, negative=normalise(style.negative),
                      seed=gen.seed + n, steps=gen.steps, cfg=gen.cfg, width=size, height=size)
        jobs.append(RenderJob(panel, panel.seed))
    return jobs


def generate_fingerprint(style: Style, engine_identity: dict) -> str:
    """sha256 of everything the generated images depend on: every job's settings and the
    engine's identity (base model weights, precision, sampler, code)."""
    facts = {
        "version": GENERATE_VERSION,
        "engine": engine_identity,
        "jobs": [job.panel.settings() for job in generation_jobs(style)],
    }
    blob = json.dumps(facts, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def generate_dataset(style: Style, engine: Engine, out_dir: Path, progress: Progress | None = None) -> GenerateReport:
    """Render the style's generated dataset with `engine` into `out_dir` (replaced atomically)."""
    jobs = generation_jobs(style)
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        report = GenerateReport(out_dir, engine=engine.identity(), fingerprint=generate_fingerprint(style, engine.identity()))
        names = {job: f"{n:05d}" for n, job in enumerate(jobs)}
        done = set()
        for job, image in engine.render(jobs, None, progress):
            stem = names[job]
            image.convert("RGB").save(work / f"{stem}.png", format="PNG", compress_level=6)
            (work / f"{stem}.txt").write_text(job.panel.prompt, encoding="utf-8")
            done.add(stem)
        missing = sorted(set(names.values()) - done)
        if missing:
            raise TrainingError(_("style {id}: the engine returned no image for {n} of {n2} generated images (first: "
                                  "{missing})").format(
                                  id=style.id, n=len(missing), n2=len(jobs), missing=missing[0]))
        report.images = [(f"{names[j]}.png", j.panel.prompt, j.seed) for j in jobs]
        manifest = {"style": style.id, "engine": report.engine, "fingerprint": report.fingerprint,
                    "images": [{"file": f, "prompt": p, "seed": s} for f, p, s in report.images]}
        (work / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=2), encoding="utf-8")
        replace_dir(work, out_dir)
        return report
    finally:
        shutil.rmtree(work, ignore_errors=True)


def ensure_generated(style: Style, engine: Engine, out_dir: Path, progress: Progress | None = None) -> bool:
    """`out_dir` holds the style's generated dataset for this engine: kept when its manifest
    records the same fingerprint, else rendered again. True when it was rendered."""
    try:
        manifest = json.loads((Path(out_dir) / "manifest.json").read_text(encoding="utf-8"))
        if manifest.get("fingerprint") == generate_fingerprint(style, engine.identity()):
            return False
    except (OSError, ValueError, AttributeError):
        pass
    generate_dataset(style, engine, out_dir, progress)
    return True


def as_local(dataset: Dataset, folder: Path) -> Dataset:
    """The generated `folder` as a local dataset with the style's captions and filters, which
    is what prepare_dataset reads."""
    return dataclasses.replace(dataset, source="local", path=Path(folder), generate=None)

