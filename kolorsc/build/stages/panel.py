"""Stage `panel`: panels/NN.png — the chosen candidate with its generation parameters in
PNG text chunks (kolorsc.emit.pngmeta)."""

from __future__ import annotations

from collections.abc import Iterator

from kolorsc.build.graph import RENDER, NodeId
from kolorsc.build.stages.base import Env, Task
from kolorsc.build.stages.emitting import result_of
from kolorsc.emit.pngmeta import panel_png


def run(task: Task, env: Env) -> Iterator[tuple[str, bytes]]:
    for work in task.work:
        result = result_of(task, work)
        pr = result.panels[work.node.id.panel - 1]
        image = task.inputs(work)[NodeId(RENDER, pr.panel.index, pr.chosen.seed)].read()
        yield work.node.key, panel_png(image, pr, result)
