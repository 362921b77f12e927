"""Stage `picture`: a character's reference picture file, as the story names it, checked
against the sha256 planning keyed every render with (like a reused LoRA file: a file that
changed while the build ran is an error, never a render keyed by the old picture). Its
output is the file's bytes, so renders and scores read pictures from upstream outputs,
wherever they run. It reads the project's file: an executor runs it where the project is."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from kolorsc.build.stages.base import Env, Task
from kolorsc.errors import BuildError, InputError
from kolorsc.hashing import sha256_bytes
from kolorsc.i18n import _


def run(task: Task, env: Env) -> Iterator[tuple[str, bytes]]:
    for work in task.work:
        c = work.node.id.name
        path = Path(work.graph.story.characters[c].reference.path)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise InputError(_("characters.{character}.reference: cannot read {path}: {problem}").format(
                character=c, path=path, problem=exc)) from None
        if sha256_bytes(data) != work.node.inputs["picture_sha256"]:
            raise BuildError(_("{path} changed while the build ran: build again").format(path=path))
        yield work.node.key, data
