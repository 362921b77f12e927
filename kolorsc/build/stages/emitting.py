"""What the emit stages share: their work's result and the chosen images, from upstream."""

from __future__ import annotations

from kolorsc.build.graph import LORA, PANEL, RENDER, SHEET, NodeId
from kolorsc.build.stages.base import Task, Work
from kolorsc.build.stages.result import story_result
from kolorsc.results import StoryResult


def result_of(task: Task, work: Work) -> StoryResult:
    return story_result(work.graph, task.inputs(work))


def chosen_images(task: Task, work: Work, result: StoryResult) -> list[bytes]:
    """The PNG bytes of each panel's chosen candidate, in panel order."""
    inputs = task.inputs(work)
    return [inputs[NodeId(RENDER, pr.panel.index, pr.chosen.seed)].read() for pr in result.panels]


def sheet_images(task: Task, work: Work, result: StoryResult) -> list[bytes]:
    """The PNG bytes of each character sheet of `result`, in its order."""
    inputs = task.inputs(work)
    return [inputs[NodeId(SHEET, name=sheet.character)].read() for sheet in result.sheets]


def panel_pngs(task: Task, work: Work, result: StoryResult) -> list[bytes]:
    inputs = task.inputs(work)
    return [inputs[NodeId(PANEL, pr.panel.index)].read() for pr in result.panels]


def lora_path(task: Task, work: Work):
    blob = task.inputs(work).get(NodeId(LORA))
    return blob.local_path() if blob is not None else None
