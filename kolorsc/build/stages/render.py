"""Stage `render`: candidate images from the engine, one PNG per render node.

A task holds renders that share one LoRA (and scale), so an engine merges a LoRA once and
renders every panel that uses it before switching; across stories when the driver grouped
them so. Each image is yielded the moment it exists, so the driver stores panels as they
land and a crash later loses nothing."""

from __future__ import annotations

import io
from collections.abc import Iterator

from kolorsc.build.graph import LORA
from kolorsc.build.stages.base import Env, Task
from kolorsc.engines.base import LoraWeights, RenderJob


def run(task: Task, env: Env) -> Iterator[tuple[str, bytes]]:
    jobs = {}
    for work in task.work:
        panel = work.graph.panel(work.node.id.panel)
        jobs[RenderJob(panel, work.node.id.seed)] = work.node.key
    lora = _lora(task)
    total = len(jobs)
    for done, (job, image) in enumerate(env.engine.render(list(jobs), lora), 1):
        env.report("render", done, total, f"panel {job.panel.index:02d}")
        yield jobs[job], encode_png(image)


def _lora(task: Task) -> LoraWeights | None:
    """The LoRA every render of the task uses (the driver groups them by it)."""
    first = task.work[0]
    if first.node.inputs.get("lora") is None:
        return None
    blob = task.inputs(first)[first.graph.node(LORA).id]
    return LoraWeights(blob.local_path(), first.node.inputs["lora_scale"], first.node.inputs["lora"])


def encode_png(image) -> bytes:
    """PNG bytes of an engine's image: RGB, no metadata, fixed compression -> same bytes each run."""
    buf = io.BytesIO()
    image.convert("RGB").save(buf, format="PNG", compress_level=6)
    return buf.getvalue()
