"""Stage `bundle`: the submission zip {team}-可图Kolors训练-{id}.zip (kolorsc.emit.bundle)."""

from __future__ import annotations

from collections.abc import Iterator

from kolorsc.build.stages.base import Env, Task
from kolorsc.build.stages.emitting import lora_path, panel_pngs, result_of
from kolorsc.emit.bundle import bundle_zip


def run(task: Task, env: Env) -> Iterator[tuple[str, bytes]]:
    for work in task.work:
        result = result_of(task, work)
        yield work.node.key, bundle_zip(result, panel_pngs(task, work, result), lora_path(task, work))
