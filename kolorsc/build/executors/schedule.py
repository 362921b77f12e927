"""Which worker makes what: render and score tasks cut into pieces for a pool of workers that
each keep an engine loaded. Pure functions of tasks and counts (no Ray), tested alone.

    cut(tasks, workers) -> [Piece]          choose(waiting, merged) -> index of the piece to take

Pieces. A task (renders sharing one LoRA and scale; one story's scores) is one piece unless
it holds more than an even share of the work, ceil(total / workers); then it is cut into
near-equal pieces no bigger than that share. An `unsplittable` task (one story's renders that
share attention: the engine batches them with the story's identity panels in one call) is
always one piece, whatever its size: one worker makes it whole. Without the cut, one LoRA group of 64 panels on
two GPUs runs on one while the other idles; with it each GPU merges the LoRA once and renders
32. A piece is the unit of dispatch: the engine sees it as one `render(jobs, lora)` call, so it
encodes the piece's prompts in one pass and merges its LoRA once; its images still come back
one by one.

Affinity. Sheets and renders load the same LoRA into the engine: they share one affinity.
An idle worker takes a waiting piece of the LoRA it has merged if there is one (no
merge, no UNet reload), else the biggest waiting piece (longest first keeps the tail short).
A LoRA is therefore merged once per worker that takes part of it, and split across workers
only when that balances the pool.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from dataclasses import dataclass

from kolorsc.build.graph import RENDER, SHEET
from kolorsc.build.stages.base import Task, Work


@dataclass(frozen=True)
class Piece:
    task: Task
    affinity: tuple  # what a worker keeps loaded for it: (render, LoRA key, scale); (kind,) else
    attempt: int = 0  # how many workers died while making it (the run gives up after a few)

    @property
    def size(self) -> int:
        return len(self.task.work)


def affinity(task: Task) -> tuple:
    if task.kind not in (RENDER, SHEET):
        return (task.kind,)
    inputs = task.work[0].node.inputs
    return (RENDER, inputs.get("lora"), inputs.get("lora_scale"))


def subtask(task: Task, work: tuple[Work, ...]) -> Task:
    """`task` restricted to `work`, carrying only the upstream outputs those nodes read (and
    its other fields: what is left of an unsplittable task stays unsplittable)."""
    wanted = {w.graph.node(dep).key for w in work for dep in w.node.deps}
    return dataclasses.replace(task, work=work, upstream={k: b for k, b in task.upstream.items() if k in wanted})


def cut(tasks: list[Task], workers: int) -> list[Piece]:
    """The tasks as pieces of at most an even share of the total work each."""
    total = sum(len(t.work) for t in tasks)
    share = max(1, math.ceil(total / max(1, workers)))
    pieces = []
    for task in tasks:
        n = math.ceil(len(task.work) / share)
        if n <= 1 or task.unsplittable:
            pieces.append(Piece(task, affinity(task)))
            continue
        bounds = [round(i * len(task.work) / n) for i in range(n + 1)]
        for lo, hi in itertools.pairwise(bounds):
            pieces.append(Piece(subtask(task, task.work[lo:hi]), affinity(task)))
    return pieces


def choose(waiting: list[Piece], merged: tuple | None) -> int:
    """Index of the piece an idle worker holding `merged` should take next."""
    for i, piece in enumerate(waiting):
        if merged is not None and piece.affinity == merged:
            return i
    return max(range(len(waiting)), key=lambda i: (waiting[i].size, -i))
