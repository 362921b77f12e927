"""Executors: where stage tasks run. `local` (this process, the default); `ray` (a Ray
cluster) plugs in the same way: tasks in, verified bytes back to the driver.

    make_executor(name, env, engine, ...) -> Executor
"""

from __future__ import annotations

from pathlib import Path

from kolorsc.build.executors.base import Executor, Result
from kolorsc.build.executors.local import LocalExecutor
from kolorsc.build.stages.base import Env
from kolorsc.engines import EngineSpec
from kolorsc.errors import UsageError
from kolorsc.i18n import _, language

EXECUTORS = ("local", "ray")


def make_executor(name: str, env: Env, engine: EngineSpec, *, models_dir: Path | None = None,
                  device: str | None = None, ray_address: str | None = None,
                  ray_workers: int | None = None) -> Executor:
    """The executor called `name`. `engine` says how a worker makes its own engine (the local
    executor uses `env.engine`); `models_dir` None lets each Ray worker use its own models
    folder ($KOLORSC_MODELS there). Connects to Ray (BuildError when it cannot) before
    returning, so nothing has run when that fails."""
    if name == "local":
        return LocalExecutor(env)
    if name == "ray":
        from kolorsc.build.executors.ray import RayExecutor
        from kolorsc.build.executors.ray_worker import WorkerSpec

        spec = WorkerSpec(engine, models_dir, device, lang=language())
        return RayExecutor.connect(env, spec, ray_address, ray_workers)
    raise UsageError(_("unknown executor {name}: choose one of {executors}").format(
        name=repr(name), executors=", ".join(EXECUTORS)))


__all__ = ["EXECUTORS", "Executor", "LocalExecutor", "Result", "make_executor"]
