"""Stage `scores`: scores.json, every number the scorers produced (kolorsc.emit.scores)."""

from __future__ import annotations

from collections.abc import Iterator

from kolorsc.build.stages.base import Env, Task
from kolorsc.build.stages.emitting import result_of
from kolorsc.emit.scores import scores_json


def run(task: Task, env: Env) -> Iterator[tuple[str, bytes]]:
    for work in task.work:
        yield work.node.key, scores_json(result_of(task, work))
