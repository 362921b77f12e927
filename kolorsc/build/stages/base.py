"""What every stage is given and gives back: the seam the executors (local, Ray) plug into.

    stage.run(task, env) -> Iterator[(node key, bytes)]

A `Task` is plain, picklable data: the nodes to make (each with the story graph it belongs
to) and the outputs of their dependencies as `Blob`s (a path in the driver's cache, or bytes
shipped to a worker that has no cache). An `Env` is what one worker process holds: the
engine (kept loaded across tasks), the scorers, where model weights are. A stage never sees
the cache, the lock file or a global run object; it turns declared inputs into bytes, and
the driver (kolorsc.build.run) verifies and commits them.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from kolorsc.build.graph import Graph, Node, NodeId
from kolorsc.hashing import sha256_bytes

# progress(stage, done, total, label)
Progress = Callable[[str, int, int, str], None]


@dataclass(frozen=True)
class Blob:
    """A node's output: a file in the driver's cache (`path`) or bytes in memory (`data`)."""

    sha256: str
    path: Path | None = None
    data: bytes | None = None

    @classmethod
    def of(cls, data: bytes) -> Blob:
        return cls(sha256_bytes(data), data=data)

    def read(self) -> bytes:
        return self.data if self.data is not None else Path(self.path).read_bytes()

    def detached(self) -> Blob:
        """The same blob carrying its bytes (what is shipped to a worker without the cache)."""
        return self if self.data is not None else Blob(self.sha256, data=self.read())

    def local_path(self) -> Path:
        """A file holding the bytes (libraries that insist on a path: a LoRA for the engine)."""
        if self.path is not None:
            return Path(self.path)
        return _spill(self.sha256, self.data)


_SPILLED: dict[str, Path] = {}


def _spill(sha: str, data: bytes) -> Path:
    if sha not in _SPILLED:
        fd, name = tempfile.mkstemp(prefix=f"kolorsc-{sha[:12]}-")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        _SPILLED[sha] = Path(name)
    return _SPILLED[sha]


@atexit.register
def _forget_spilled() -> None:
    for path in _SPILLED.values():
        with contextlib.suppress(OSError):
            path.unlink()


@dataclass(frozen=True)
class Work:
    """One node to make, with the graph of the story it belongs to."""

    node: Node
    graph: Graph


@dataclass(frozen=True)
class Task:
    """Nodes of one kind made together (a render batch sharing one LoRA; else one node), and
    the outputs of every dependency they read, by key.

    `unsplittable`: every node of this task must reach one engine in one render call: the
    renders of one story that share attention (StoryDiffusion-style), which the engine denoises
    in batches with the story's identity panels. An executor that spreads work over workers
    gives an unsplittable task to one worker whole: it never cuts it into pieces, and a retry
    of what is left keeps the flag (`dataclasses.replace` keeps it; a new `Task(...)` must pass
    it). Splitting would still give the same images (each batch is padded to one shape and
    holds the identity panels: kolorsc.engines.kolors.batch), only slower: each part renders
    the identity panels again."""

    kind: str
    work: tuple[Work, ...]
    upstream: dict[str, Blob] = field(default_factory=dict)
    unsplittable: bool = False  # one story's renders that share attention

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(w.node.key for w in self.work)

    def inputs(self, work: Work) -> dict[NodeId, Blob]:
        """The outputs of `work`'s dependencies, by node id in its story."""
        out = {}
        for dep in work.node.deps:
            node = work.graph.node(dep)
            if node.key in self.upstream:
                out[dep] = self.upstream[node.key]
        return out

    def detached(self) -> Task:
        """A copy that carries every upstream output as bytes (for a worker with no cache)."""
        return replace(self, upstream={k: b.detached() for k, b in self.upstream.items()})


@dataclass
class Env:
    """What a worker process holds while it runs tasks: the engine (kept loaded across
    tasks), models a stage loads once and keeps (`resource`), where weights are."""

    engine: object  # kolorsc.engines.Engine
    models_dir: Path
    device: str | None = None
    work_root: Path | None = None  # where a training run keeps resumable work (by LoRA key)
    progress: Progress | None = None
    resources: dict = field(default_factory=dict)

    def resource(self, name: str, load: Callable[[], object]):
        """The object `load()` made the first time `name` was asked for (the scorers...)."""
        if name not in self.resources:
            self.resources[name] = load()
        return self.resources[name]

    def report(self, stage: str, done: int, total: int, label: str = "") -> None:
        if self.progress is not None:
            self.progress(stage, done, total, label)

    def close(self) -> None:
        """Release what this worker holds (the engine's models, loaded resources)."""
        self.engine.close()
        self.resources.clear()
