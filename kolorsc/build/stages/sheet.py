"""Stage `sheet`: a character sheet (`reference: generate`), one render of the character alone
(kolorsc.consistency.character_sheet_panel) with the style's LoRA, by the render stage's own
code: build/<id>/characters/<key>.png, the reference picture of that character's panels, and
on the storyboard's cover. Sheets run in their own wave, before the renders that read them."""

from __future__ import annotations

from collections.abc import Iterator

from kolorsc.build.stages import render
from kolorsc.build.stages.base import Env, Task


def run(task: Task, env: Env) -> Iterator[tuple[str, bytes]]:
    return render.run(task, env)
