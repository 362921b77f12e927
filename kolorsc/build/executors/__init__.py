"""Executors: where stage tasks run. `local` (this process, the default); `ray` (a Ray
cluster) plugs in the same way: tasks in, verified bytes back to the driver."""

from kolorsc.build.executors.base import Executor, Result
from kolorsc.build.executors.local import LocalExecutor

__all__ = ["Executor", "LocalExecutor", "Result"]
