"""Stage `page`: build/<id>/index.html, the story's page in the HTML gallery (panels,
prompts, seeds, scores, links; kolorsc.emit.gallery). It links back to the collection's
index, which the build writes after every story (kolorsc.build.outputs)."""

from __future__ import annotations

from collections.abc import Iterator

from kolorsc.build.stages.base import Env, Task
from kolorsc.build.stages.emitting import result_of
from kolorsc.emit.gallery import story_page_html


def run(task: Task, env: Env) -> Iterator[tuple[str, bytes]]:
    for work in task.work:
        yield work.node.key, story_page_html(result_of(task, work), collection=True)
