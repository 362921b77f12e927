"""Stage `dataset`: the style's training images (a folder, a ModelScope dataset, or rendered
by the base model from the style's own prompts: `source: generate`) prepared with
Data-Juicer, as one deterministic tar (kept in the cache, reused when only training
settings change)."""

from __future__ import annotations

import io
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

from kolorsc.build.stages.base import Env, Task


def run(task: Task, env: Env) -> Iterator[tuple[str, bytes]]:
    from kolorsc.data import prepare_dataset

    for work in task.work:
        story = work.graph.story
        dataset = story.style.lora.dataset
        with tempfile.TemporaryDirectory(prefix="kolorsc-dataset-") as tmp:
            if dataset.source == "generate":  # rendered by the base model, no LoRA (kolorsc.data.generate)
                from kolorsc.data.generate import as_local, generate_dataset

                generate_dataset(story.style, env.engine, Path(tmp) / "generated",
                                 lambda d, t, label: env.report("generate", d, t, label))
                dataset = as_local(dataset, Path(tmp) / "generated")
            prepared = Path(tmp) / "dataset"
            prepare_dataset(dataset, story.root, prepared,
                            lambda d, t, label: env.report("dataset", d, t, label), models_dir=env.models_dir)
            yield work.node.key, deterministic_tar(prepared)


def deterministic_tar(folder: Path) -> bytes:
    """A tar of `folder` with sorted names and zeroed times/owners: same files -> same bytes."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(p for p in Path(folder).rglob("*") if p.is_file()):
            info = tarfile.TarInfo(path.relative_to(folder).as_posix())
            info.size = path.stat().st_size
            info.mtime, info.uid, info.gid, info.uname, info.gname, info.mode = 0, 0, 0, "", "", 0o644
            with open(path, "rb") as f:
                tar.addfile(info, f)
    return buf.getvalue()


def extract(data: bytes, folder: Path) -> Path:
    """Unpack a prepared dataset tar into `folder` (tarfile's "data" filter: no links out)."""
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(folder, filter="data")
    return folder
