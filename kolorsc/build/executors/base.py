"""The executor seam: run stage tasks somewhere, hand the bytes back to the driver.

    executor.run(tasks) -> Iterator[Result]      (results in any order, as they finish)

An executor decides only where and when stage code runs (this process, a Ray cluster). It
never touches the cache or the lock file: the driver (kolorsc.build.run) checks every
result's bytes against the sha256 the worker reported and commits them, so whatever an
executor does, nothing reaches the cache unverified.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from kolorsc.build.stages.base import Task


@dataclass(frozen=True)
class Result:
    """One node's output (`data` and the worker's `sha256` of it), or the error that kept
    the task from making it."""

    key: str
    data: bytes | None = None
    sha256: str | None = None
    error: BaseException | None = None
    where: str = "local"  # which worker made it (reported by `build --json`)

    @property
    def ok(self) -> bool:
        return self.error is None


class Executor(ABC):
    name = ""

    @abstractmethod
    def run(self, tasks: Sequence[Task]) -> Iterator[Result]:
        """Run every task; yield one Result per key of every task."""

    def status(self) -> str:
        """What the progress bar shows beside a node ("2 workers, 5 in flight"); "" for none."""
        return ""

    def end_wave(self, kind: str) -> None:
        """Every task of `kind` is done for this build: free what only they needed (the
        engine's models after the renders, so the scorers have the GPU to themselves)."""

    def close(self) -> None:
        """Release workers and models."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
