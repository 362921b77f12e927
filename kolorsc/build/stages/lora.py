"""Stage `lora`: the style's LoRA file — the style's own `lora.path` or its `lora.modelscope`
download (checked against the hash the plan keyed it by), or trained with Lightning on the
prepared dataset.

A training run works in `<work_root>/<LoRA key>`: a run killed half-way resumes from its
checkpoints next time (train_lora resumes in the same folder); the folder goes once the
LoRA's bytes are read."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from kolorsc.build.graph import DATASET
from kolorsc.build.stages import dataset as dataset_stage
from kolorsc.build.stages.base import Env, Task, Work
from kolorsc.errors import BuildError
from kolorsc.hashing import sha256_bytes
from kolorsc.i18n import _


def run(task: Task, env: Env) -> Iterator[tuple[str, bytes]]:
    from kolorsc.models import lora_file

    for work in task.work:
        spec = work.graph.story.style.lora
        reused = lora_file(spec, env.models_dir)  # lora.path, or the lora.modelscope download
        if reused is not None:
            yield work.node.key, _file(work, reused)
        else:
            yield work.node.key, _train(task, work, env)


def _file(work: Work, path: Path) -> bytes:
    data = path.read_bytes()
    if sha256_bytes(data) != work.node.inputs["file_sha256"]:
        raise BuildError(_("{path} changed while the build ran: build again").format(path=path))
    return data


def _train(task: Task, work: Work, env: Env) -> bytes:
    from kolorsc.train import train_lora

    folder = (Path(env.work_root) if env.work_root else Path(tempfile.gettempdir()) / "kolorsc-work") / work.node.key[:24]
    data = dataset_stage.extract(task.inputs(work)[work.graph.node(DATASET).id].read(), _fresh(folder / "dataset"))
    result = train_lora(
        work.graph.story.style, data, folder / "lora", models_dir=env.models_dir, device=env.device,
        progress=lambda d, t, label: env.report("train", d, t, label),
    )
    out = Path(result.path).read_bytes()
    shutil.rmtree(folder, ignore_errors=True)
    return out


def _fresh(folder: Path) -> Path:
    shutil.rmtree(folder, ignore_errors=True)
    return folder
