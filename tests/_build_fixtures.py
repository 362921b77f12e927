"""Helpers for the build tests: a small project made of the repository's example story and
styles, and a preview engine that counts (and can fail or leave markers for) its work."""

from __future__ import annotations

import os
import shutil
import time
import uuid
from pathlib import Path

from kolorsc.engines.preview import PreviewEngine

REPO = Path(__file__).resolve().parents[1]
STORY = "classroom-dream"
TEST_LONG_SIDE = 128  # small drafts keep the tests fast; every test uses the same size


class CountingEngine(PreviewEngine):
    """The preview engine, counting rendered jobs. `fail_after=N` raises after N panels (a
    crash inside the stage); `marker_dir` gets one file per rendered job (counts across
    processes); `delay` slows each panel so two builds overlap."""

    def __init__(self, fail_after: int | None = None, marker_dir: Path | None = None, delay: float = 0.0):
        super().__init__(long_side=TEST_LONG_SIDE)
        self.rendered: list[tuple[int, int]] = []
        self.fail_after, self.marker_dir, self.delay = fail_after, marker_dir, delay

    def render(self, jobs, lora, progress=None):
        for job, image in super().render(jobs, lora, progress):
            if self.fail_after is not None and len(self.rendered) >= self.fail_after:
                raise RuntimeError("simulated crash inside the render stage")
            time.sleep(self.delay)
            self.rendered.append((job.panel.index, job.seed))
            if self.marker_dir is not None:
                name = f"{job.panel.index:02d}-{job.seed}-{os.getpid()}-{uuid.uuid4().hex}"
                (Path(self.marker_dir) / name).touch()
            yield job, image


class RealishEngine(CountingEngine):
    """Draft pixels, but not a preview: LoRA nodes, scores and selection all run (the path
    `--engine kolors` takes), and the LoRA each render call received is recorded."""

    preview = False
    name = "test-real"

    def __init__(self, **kw):
        super().__init__(**kw)
        self.loras = []

    def identity(self) -> dict:
        return {**super().identity(), "name": self.name}

    def render(self, jobs, lora, progress=None):
        self.loras.append(lora)
        yield from super().render(jobs, lora, progress)


def make_project(dest: Path, stories: tuple[str, ...] = (STORY,)) -> Path:
    """A project folder with styles/ and the given example stories; returns the folder."""
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copytree(REPO / "styles", dest / "styles")
    (dest / "stories").mkdir()
    for name in stories:
        shutil.copy(REPO / "stories" / f"{name}.yaml", dest / "stories" / f"{name}.yaml")
    return dest


LORA_FILE_STYLE = """kolorsc: 1
id: fairytale-3d
name: 童话3D
trigger: 高精度3D渲染，宫崎骏风格，童话插画，高清细节，动态光影
negative: 低分辨率，文字覆盖，形态扭曲，低对比度，黑白图
lora:
  scale: 1.5
  path: ../loras/fairytale-3d.safetensors
"""


def use_lora_file_style(project: Path) -> Path:
    """Make the project's fairytale-3d style reuse a LoRA file (`lora.path`, scale 1.5), the
    path these tests exercise (the repository's example trains one instead). Returns the
    LoRA's path, for the test to write."""
    (project / "styles" / "fairytale-3d.yaml").write_text(LORA_FILE_STYLE, "utf-8")
    (project / "loras").mkdir(exist_ok=True)
    return project / "loras" / "fairytale-3d.safetensors"


def story_path(project: Path, name: str = STORY) -> Path:
    return project / "stories" / f"{name}.yaml"


def edit(path: Path, old: str, new: str, count: int = 1) -> None:
    text = path.read_text("utf-8")
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, count), "utf-8")


def tree_bytes(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}
