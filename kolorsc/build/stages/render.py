"""Stage `render`: candidate images from the engine, one PNG per render node.

A task holds renders that share one LoRA (and scale), so an engine merges a LoRA once and
renders every panel that uses it before switching; across stories when the driver grouped
them so. The renders of a story that shares attention come as one task
(`Task.unsplittable`) and go to the engine in one call: it batches them with the story's
identity panels. Each image is yielded the moment it exists, so the driver stores panels as
they land and a crash later loses nothing.

Character consistency: a render whose node has consistency inputs (`ip_adapter`,
`shared_attention`) becomes a RenderJob with its references and sharing
(kolorsc.engines.jobs), its pictures taken from the outputs of the `picture/C` and `sheet/C`
nodes it depends on. The preview engine gets the references named, without pictures (it
notes them on the draft)."""

from __future__ import annotations

import io
from collections.abc import Iterator

from kolorsc.build.graph import LORA, PICTURE, SHEET, Graph, consistent
from kolorsc.build.stages.base import Env, Task, Work
from kolorsc.engines.base import LoraWeights, RenderJob


def run(task: Task, env: Env) -> Iterator[tuple[str, bytes]]:
    jobs = {}
    resolved: dict[int, tuple] = {}  # per story graph: its panels and consistency, resolved once
    for work in task.work:
        jobs[_job(task, work, resolved)] = work.node.key
    lora = lora_of(task)
    total = len(jobs)
    for done, (job, image) in enumerate(env.engine.render(list(jobs), lora), 1):
        env.report("render", done, total, f"panel {job.panel.index:02d}")
        yield jobs[job], encode_png(image)


def _job(task: Task, work: Work, resolved: dict) -> RenderJob:
    node, graph = work.node, work.graph
    panel = graph.render_panel(node.id)
    if not consistent(node):
        return RenderJob(panel, node.inputs["seed"])
    from kolorsc.engines.jobs import render_job

    panels, pcs = _consistency_of(graph, resolved)
    pictures = None
    if not graph.preview:  # the pictures this render reads are its picture/sheet dependencies' outputs
        pictures = {dep.name: blob.read() for dep, blob in task.inputs(work).items() if dep.kind in (PICTURE, SHEET)}
    return render_job(panel, node.inputs["seed"], panels, pcs, pictures)


def _consistency_of(graph: Graph, resolved: dict) -> tuple[dict, dict]:
    if id(graph) not in resolved:
        from kolorsc.consistency import panel_consistency

        resolved[id(graph)] = ({p.index: p for p in graph.panels},
                               {pc.index: pc for pc in panel_consistency(graph.story)})
    return resolved[id(graph)]


def lora_of(task: Task) -> LoraWeights | None:
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
