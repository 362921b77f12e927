"""Stage `thumbnail`: storyboard-thumb.jpg, the small storyboard the collection index shows
(kolorsc.emit.gallery): made once per storyboard, so the index of a 50-story collection is
written in milliseconds."""

from __future__ import annotations

from collections.abc import Iterator

from kolorsc.build.graph import STORYBOARD, NodeId
from kolorsc.build.stages.base import Env, Task
from kolorsc.emit.gallery import storyboard_thumbnail


def run(task: Task, env: Env) -> Iterator[tuple[str, bytes]]:
    for work in task.work:
        yield work.node.key, storyboard_thumbnail(task.inputs(work)[NodeId(STORYBOARD)].read())
