"""The local executor (the default): tasks run one after another in this process, sharing
one engine, so models load once per build and a LoRA is merged once per render task."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from kolorsc.build.executors.base import Executor, Result
from kolorsc.build.stages import run_task
from kolorsc.build.stages.base import Env, Task
from kolorsc.hashing import sha256_bytes


class LocalExecutor(Executor):
    name = "local"

    def __init__(self, env: Env):
        self.env = env

    def run(self, tasks: Sequence[Task]) -> Iterator[Result]:
        for task in tasks:
            made: set[str] = set()
            try:
                for key, data in run_task(task, self.env):
                    made.add(key)
                    yield Result(key, data, sha256_bytes(data))
            except Exception as exc:  # noqa: BLE001 - reported per node by the driver
                for key in task.keys:
                    if key not in made:
                        yield Result(key, error=exc)

    def end_wave(self, kind: str) -> None:
        if kind == "render":
            self.env.engine.close()

    def close(self) -> None:
        self.env.close()
