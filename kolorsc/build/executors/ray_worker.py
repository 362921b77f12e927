"""What runs inside a Ray worker: the stage code, after checking that this worker would make
each node with exactly what its key promises. Plain Python (the driver wraps these in
`ray.remote`); Ray itself is imported only to name the node a result was made on.

    StageWorker(spec, name)        an actor of the render/score pool: keeps one Env (engine,
        .start(piece, task)        then scorers) loaded across pieces; a piece's outputs are
        .next(piece) -> reply      handed out one per `next` call, in the order they exist
    run_stage(spec, tasks) -> (where, [reply])      a Ray task: a generated dataset, a training,
                                                    or a batch of selects or emitters

Replies are plain tuples: ("item", key, bytes, sha256), ("done",), ("error", exception),
("gone",) for a piece this worker no longer holds; run_stage's errors also name the keys of
the task that failed, ("error", exception, keys), since one call runs several tasks. A stage's own failure comes back as a
reply, so that on the driver an exception from Ray always means the worker itself was lost.

Why a worker checks identities: a node's key names the code and the models that make it
(kolorsc.build.graph). The driver computed them from its own files; a worker with another
kolorsc, other weights or another font would make different bytes under the same key. Before
a stage runs, the worker recomputes what the key names — the stage's code identity, the
engine's identity for renders, the scorers' for scores, the fonts' for storyboard and PDF,
the base weights for training — and refuses with a message saying what differs.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from kolorsc import i18n, paths
from kolorsc.build.graph import LORA, PDF, REFERENCE, RENDER, SCORE, SHEET, STORYBOARD
from kolorsc.build.stages import code_identity, run_task
from kolorsc.build.stages.base import Env, Task
from kolorsc.engines import EngineSpec
from kolorsc.errors import BuildError
from kolorsc.hashing import sha256_bytes
from kolorsc.i18n import _


@dataclass(frozen=True)
class WorkerSpec:
    """How a worker sets itself up. `models_dir` None: the worker's own $KOLORSC_MODELS or
    default folder (each node pulls its models); a path: the same path on every node. `lang`:
    the driver's language (--lang is the driver's; a worker's environment may say otherwise),
    for the messages a worker makes."""

    engine: EngineSpec | None
    models_dir: Path | None = None
    device: str | None = None
    lang: str | None = None

    def speak(self) -> None:
        """This worker process's messages in the driver's language."""
        i18n.set_language(self.lang)

    def env(self, with_engine: bool) -> Env:
        engine = self.engine.make() if with_engine and self.engine is not None else None
        return Env(engine, paths.models_dir(self.models_dir), self.device)


# -- identities ------------------------------------------------------------------------------


class Identities:
    """This worker's identities, each computed once (they read model and font files)."""

    def __init__(self, env: Env):
        self.env = env
        self.memo: dict[str, object] = {}

    def get(self, name: str, compute):
        if name not in self.memo:
            self.memo[name] = compute()
        return self.memo[name]

    def check(self, task: Task, where: str) -> None:
        """Raise BuildError when this worker would not make `task`'s nodes as keyed."""
        for work in task.work:
            inputs = work.node.inputs
            _same(where, _("other kolorsc code for {kind}").format(kind=task.kind), inputs.get("code"),
                  self.get(f"code:{task.kind}", lambda: code_identity(task.kind)))
            if task.kind in (RENDER, SHEET):
                _same(where, _("another engine"), inputs.get("engine"), self.get("engine", self.env.engine.identity))
                if "consistency_engine" in inputs:  # the adapter's files, the consistency code
                    references = "pictures" in inputs
                    _same(where, _("another consistency engine"), inputs["consistency_engine"],
                          self.get(f"consistency:{references}",
                                   lambda: self.env.engine.consistency_identity(references=references)))
            elif task.kind in (SCORE, REFERENCE):
                _same(where, _("other scorer weights"), inputs.get("scorer"), self.get("scorer", self._scorer))
            elif task.kind in (STORYBOARD, PDF):
                _same(where, _("other fonts"), inputs.get("fonts"), self.get("fonts", _fonts))
            elif task.kind == LORA and inputs.get("base_weights") is not None:  # None: not the Kolors engine
                _same(where, _("other Kolors weights"), inputs["base_weights"], self.get("base", self._base_weights))

    def _scorer(self) -> dict:
        from kolorsc.scoring.loader import scorer_identity

        return scorer_identity(self.env.models_dir)

    def _base_weights(self) -> str:
        from kolorsc import models

        return models.fingerprint("kolors", self.env.models_dir)


def _fonts() -> dict:
    from kolorsc import fonts

    return fonts.identity()


def _same(where: str, what: str, promised, mine) -> None:
    if promised == mine:
        return
    parts = ""
    if isinstance(promised, dict) and isinstance(mine, dict):
        differ = sorted(k for k in set(promised) | set(mine) if promised.get(k) != mine.get(k))
        parts = _(" ({names} differ)").format(names=", ".join(differ))
    raise BuildError(_(
        "worker {where} would make this node with {what} than its key says{differ}: install the same "
        "kolorsc and libraries on every node and pull the same models there "
        "(`kolorsc models pull`, $KOLORSC_MODELS or --models-dir)").format(where=where, what=what, differ=parts))


# -- replies ---------------------------------------------------------------------------------


def item(key: str, data: bytes) -> tuple:
    return ("item", key, data, sha256_bytes(data))


def error(exc: BaseException) -> tuple:
    """An error reply; exceptions that cannot travel are re-raised as BuildError (same exit code)."""
    try:
        pickle.loads(pickle.dumps(exc))
        return ("error", exc)
    except Exception:  # noqa: BLE001 - any pickling failure: send the message instead
        sent = BuildError(f"{type(exc).__name__}: {exc}")
        sent.exit_code = getattr(exc, "exit_code", 1)
        return ("error", sent)


def where(name: str) -> str:
    """"ray:<node address>/<worker>": what `build --json` reports as a node's `ran_on`."""
    import ray

    return f"ray:{ray.util.get_node_ip_address()}/{name}"


def checked(task: Task, env: Env, ids: Identities, at: str) -> Iterator[tuple[str, bytes]]:
    ids.check(task, at)
    yield from run_task(task, env)


# -- the pool's actor ------------------------------------------------------------------------


class StageWorker:
    """One worker of the render/score pool (one per GPU). Sequential on purpose (Ray's
    default max_concurrency=1): all CUDA work stays on one thread, and outputs are pulled one
    `next` call at a time, which works over Ray Client too (streaming generators do not)."""

    def __init__(self, spec: WorkerSpec, name: str):
        spec.speak()
        self.env = spec.env(with_engine=True)
        self.ids = Identities(self.env)
        self.where = where(name)
        self.piece: int | None = None
        self.items: Iterator | None = None

    def ready(self) -> str:
        return self.where

    def start(self, piece: int, task: Task) -> None:
        """Begin a piece (dropping any piece the driver gave up on)."""
        self.piece, self.items = piece, checked(task, self.env, self.ids, self.where)

    def next(self, piece: int) -> tuple:
        if piece != self.piece:
            return ("gone",)
        try:
            key, data = next(self.items)
            return item(key, data)
        except StopIteration:
            self.piece = self.items = None
            return ("done",)
        except Exception as exc:  # noqa: BLE001 - the stage failed: its nodes fail, the worker stays
            self.piece = self.items = None
            return error(exc)

    def release_engine(self) -> None:
        """Renders are over: free the engine's models (the GPU is the scorers' now)."""
        if self.env.engine is not None:
            self.env.engine.close()

    def pid(self) -> int:
        return os.getpid()


# -- Ray tasks -------------------------------------------------------------------------------

_ENVS: dict[tuple, tuple[Env, Identities]] = {}  # per worker process: Envs without an engine


def run_stage(spec: WorkerSpec, tasks: list[Task]) -> tuple[str, list[tuple]]:
    """Run tasks (a generated dataset, a training, a batch of selects or emitters) in one Ray
    task; every output in the reply, and for a task that failed ("error", exception, its
    keys). An engine (a generated dataset's) lives for the call only: its models leave the
    GPU when it ends."""
    spec.speak()
    if spec.engine is not None:
        env = spec.env(with_engine=True)
        ids = Identities(env)
    else:
        slot = (str(spec.models_dir), spec.device)
        if slot not in _ENVS:
            env = spec.env(with_engine=False)
            _ENVS[slot] = (env, Identities(env))
        env, ids = _ENVS[slot]
    at = where(f"pid-{os.getpid()}")
    replies = []
    try:
        for task in tasks:
            try:
                for key, data in checked(task, env, ids, at):
                    replies.append(item(key, data))
            except Exception as exc:  # noqa: BLE001 - reported per node by the driver
                replies.append((*error(exc), task.keys))
    finally:
        if spec.engine is not None:
            env.close()
    return at, replies
