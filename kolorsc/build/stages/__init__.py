"""Stages: one module per node kind, each `run(task, env) -> Iterator[(key, bytes)]`.

    dataset  lora  picture  sheet  render  score  reference  select
    panel  storyboard  pdf  scores  page  thumbnail  bundle

A stage turns its nodes' declared inputs (and their dependencies' outputs, in the task)
into bytes; it never reads the cache or writes the lock. Modules are imported when a task
of their kind runs, so a no-op build imports no emitter. `code_identity(kind)` is the
identity of a stage's code — its module and everything it imports (kolorsc.codeid) — and
part of the key of every node of that kind.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator

from kolorsc.build.graph import KINDS
from kolorsc.build.stages.base import Env, Task
from kolorsc.codeid import code_identity as _code_identity
from kolorsc.codeid import library_versions
from kolorsc.hashing import digest


def module_name(kind: str) -> str:
    return f"kolorsc.build.stages.{kind}"


def run_task(task: Task, env: Env) -> Iterator[tuple[str, bytes]]:
    """Run one task with the stage of its kind."""
    return importlib.import_module(module_name(task.kind)).run(task, env)


# The third-party libraries whose versions can change a stage's bytes (see kolorsc.codeid on
# why these are named by hand). Engines name their own (in Engine.identity()).
LIBRARIES = {
    "dataset": ("py-data-juicer", "pillow"),
    "lora": ("torch", "lightning", "peft", "diffsynth"),
    "render": ("pillow",),
    "sheet": ("pillow",),
    "score": ("torch", "transformers", "simple-aesthetics-predictor", "pillow"),
    "reference": ("torch", "transformers", "simple-aesthetics-predictor", "pillow"),
    "panel": ("pillow",),
    "storyboard": ("pillow",),
    "pdf": ("pillow", "reportlab"),
    "thumbnail": ("pillow",),
}


def code_identity(kind: str) -> str:
    """The identity of the code that makes nodes of `kind`: its stage module and everything
    it imports, and the versions of the libraries named in LIBRARIES."""
    libraries = LIBRARIES.get(kind, ())
    code = _code_identity(module_name(kind))
    return f"{code}-{digest(library_versions(*libraries))[:8]}" if libraries else code


def code_identities() -> dict[str, str]:
    return {kind: code_identity(kind) for kind in KINDS}
