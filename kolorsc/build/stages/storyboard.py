"""Stage `storyboard`: storyboard.png, the 2x4 grid with captions (kolorsc.emit.storyboard)."""

from __future__ import annotations

from collections.abc import Iterator

from kolorsc.build.stages.base import Env, Task
from kolorsc.build.stages.emitting import chosen_images, result_of, sheet_images
from kolorsc.emit.storyboard import storyboard_png


def run(task: Task, env: Env) -> Iterator[tuple[str, bytes]]:
    for work in task.work:
        result = result_of(task, work)
        yield work.node.key, storyboard_png(result, chosen_images(task, work, result), sheet_images(task, work, result))
