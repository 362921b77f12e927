"""The render/score pool of the Ray executor: actors that keep an engine loaded, fed pieces by
LoRA affinity (kolorsc.build.executors.schedule), their outputs pulled one at a time.

Per piece the driver sends `start`, then keeps two `next` calls queued on the actor: while
the driver stores one image the actor is already making the next, and no round trip ever
leaves a GPU idle between two images of a piece.

Faults. Ray reports a lost worker (process killed, out of memory, node gone) as an exception
on the calls queued on it. The pool then
    - puts the piece's unfinished nodes back at the front of the queue, as a new piece
      (`attempt` + 1): another worker makes them; outputs already handed out stay handed out
      and are not made again (the driver committed them);
    - kills the actor for good and starts a replacement, wherever the cluster has room (a
      node that died takes its actors with it).
Why not Ray's own actor restart (`max_restarts`) and task retries: a restarted actor has lost
the piece it was working through, so the driver must re-send the rest anyway; re-running a
whole actor call would make again what was already handed out; and a restarting actor keeps
its GPU while it is useless. One path for every loss, bounded: a node is given up after
MAX_ATTEMPTS lost workers, a pool after `size` replacements beyond its own.

A stage's own failure (an engine error) is not a lost worker: it comes back as an error reply
and fails the piece's remaining nodes, exactly as with the local executor.
"""

from __future__ import annotations

import contextlib
import itertools
import time
from dataclasses import dataclass, field

from kolorsc.build.executors.base import Result
from kolorsc.build.executors.schedule import Piece, choose, subtask
from kolorsc.errors import BuildError
from kolorsc.i18n import _

MAX_ATTEMPTS = 3  # workers lost while making one node before it fails
QUEUED_NEXT = 2  # `next` calls queued per actor: one being made, one waiting
START_TIMEOUT = 900.0  # s without any worker able to start (no free GPU?) before giving up


@dataclass
class Running:
    piece: Piece
    id: int
    left: list  # the keys not handed out yet, in piece order


@dataclass
class Slot:
    name: str
    handle: object
    where: str | None = None  # set once the actor answered `ready`
    running: Running | None = None
    merged: tuple | None = None  # affinity of the last piece it finished (its loaded LoRA)
    refs: set = field(default_factory=set)


class ActorPool:
    def __init__(self, ray, actor_cls, spec, size: int, role: str, options: dict):
        self.ray, self.actor_cls, self.spec, self.role, self.options = ray, actor_cls, spec, role, options
        self.size = size
        self.spares = size  # replacements allowed beyond the first `size` actors
        self.names = itertools.count()
        self.ids = itertools.count()
        self.order = itertools.count()  # calls in the order they were made (an actor runs them so)
        self.slots: list[Slot] = []
        self.waiting: list[Piece] = []
        self.calls: dict = {}  # ref -> (slot, what, running id, order)
        self.since = time.monotonic()
        self.last_loss: BaseException | None = None
        for _i in range(size):
            self._spawn()

    # -- bookkeeping -------------------------------------------------------------------------

    @property
    def workers(self) -> int:
        return sum(1 for s in self.slots if s.where is not None)

    @property
    def in_flight(self) -> int:
        return sum(len(s.running.left) for s in self.slots if s.running)

    def busy(self) -> bool:
        return bool(self.waiting) or any(s.running for s in self.slots)

    def refs(self) -> list:
        return list(self.calls)

    def owns(self, ref) -> bool:
        return ref in self.calls

    def add(self, pieces: list[Piece]) -> None:
        self.waiting += pieces

    # -- actors ------------------------------------------------------------------------------

    def _spawn(self) -> None:
        name = f"{self.role}-{next(self.names)}"
        handle = self.actor_cls.options(**self.options).remote(self.spec, name)
        slot = Slot(name, handle)
        self.slots.append(slot)
        self._call(slot, "ready", handle.ready.remote())

    def _call(self, slot: Slot, what: str, ref, run_id: int | None = None) -> None:
        self.calls[ref] = (slot, what, run_id, next(self.order))
        slot.refs.add(ref)

    def _drop(self, slot: Slot) -> None:
        for ref in slot.refs:
            self.calls.pop(ref, None)
        self.slots.remove(slot)
        with contextlib.suppress(Exception):  # gone already
            self.ray.kill(slot.handle, no_restart=True)

    def release_engines(self, timeout: float = 120.0) -> None:
        refs = [s.handle.release_engine.remote() for s in self.slots if s.where is not None]
        with contextlib.suppress(Exception):  # a lost worker frees its memory anyway
            self.ray.wait(refs, num_returns=len(refs), timeout=timeout)

    def close(self) -> None:
        for slot in list(self.slots):
            self._drop(slot)
        self.calls.clear()

    # -- dispatch ----------------------------------------------------------------------------

    def dispatch(self) -> list[Result]:
        """Start waiting pieces on idle workers; fail everything when none could start."""
        for slot in self.slots:
            if not self.waiting:
                break
            if slot.where is None or slot.running is not None:
                continue
            piece = self.waiting.pop(choose(self.waiting, slot.merged))
            run = Running(piece, next(self.ids), list(piece.task.keys))
            slot.running = run
            self._call(slot, "start", slot.handle.start.remote(run.id, piece.task.detached()), run.id)
            for _i in range(QUEUED_NEXT):
                self._call(slot, "next", slot.handle.next.remote(run.id), run.id)
        if self.waiting and not self.slots:
            return self._fail_waiting(_("every Ray worker of the pool was lost (last: {error})").format(
                error=_short(self.last_loss)))
        if self.waiting and self.workers == 0 and time.monotonic() - self.since > START_TIMEOUT:
            return self._fail_waiting(_("no Ray worker could start in {seconds} s: is a {device} free "
                                        "(`ray status`)?").format(
                seconds=f"{START_TIMEOUT:.0f}", device="GPU" if "num_gpus" in self.options else "CPU"))
        return []

    def _fail_waiting(self, why: str) -> list[Result]:
        out = [Result(k, error=BuildError(why)) for p in self.waiting for k in p.task.keys]
        self.waiting.clear()
        return out

    # -- replies -----------------------------------------------------------------------------

    def handle(self, ref) -> list[Result]:
        """Take the replies of `ref` and of every call made before it on the same actor, in the
        order they were made: the actor ran them in that order, so they are all there, and
        ray.wait may have shown them in any order (a piece's "done" before its last image)."""
        slot, *_rest, seq = self.calls[ref]
        earlier = sorted((self.calls[r][-1], r) for r in slot.refs if self.calls[r][-1] <= seq)
        out = []
        for _seq, r in earlier:
            if r in self.calls:  # a loss handled on the way drops the slot's other calls
                out += self._handle_one(r)
        return out

    def _handle_one(self, ref) -> list[Result]:
        slot, what, run_id, _seq = self.calls.pop(ref)
        slot.refs.discard(ref)
        try:
            reply = self.ray.get(ref)
        except self.ray.exceptions.RayTaskError as exc:  # our actor code raised: not a lost worker
            why = _("worker {where}: {error}").format(where=slot.where, error=_short(exc))
            return self._finish(slot, run_id, error=BuildError(why))
        except Exception as exc:  # noqa: BLE001 - the worker was lost (actor died, node died...)
            return self._lost(slot, exc)
        if what == "ready":
            slot.where = reply
            return []
        if what == "start" or slot.running is None or slot.running.id != run_id:
            return []  # a late reply for a piece already finished or given up
        return self._reply(slot, reply)

    def _reply(self, slot: Slot, reply: tuple) -> list[Result]:
        kind, run = reply[0], slot.running
        if kind == "item":
            _item, key, data, sha = reply
            if key not in run.left:
                return []  # not asked for (the driver would drop it too)
            run.left.remove(key)
            self._call(slot, "next", slot.handle.next.remote(run.id), run.id)
            return [Result(key, data, sha, where=slot.where)]
        if kind == "done":
            slot.merged = run.piece.affinity
            missing = BuildError(_("worker {where}: the stage made no output for it (internal error)").format(
                where=slot.where))
            return self._finish(slot, run.id, error=missing)
        if kind == "error":
            return self._finish(slot, run.id, error=reply[1])
        return []  # "gone": a `next` queued behind the end of a piece

    def _finish(self, slot: Slot, run_id: int | None, error: BaseException) -> list[Result]:
        """End the slot's piece: its nodes not handed out fail with `error`."""
        run = slot.running
        if run is None or run.id != run_id:
            return []
        slot.running = None
        if run.left:
            slot.merged = None  # ended early: what its engine holds is unknown
        return [Result(k, error=error) for k in run.left]

    def _lost(self, slot: Slot, exc: BaseException) -> list[Result]:
        """The worker is gone: its unfinished nodes go back to the queue, a new worker comes."""
        run = slot.running
        self._drop(slot)
        self.last_loss = exc
        if self.workers == 0:
            self.since = time.monotonic()  # the start-up clock runs again for the replacements
        out = []
        if run is not None and run.left:
            piece = run.piece
            left = tuple(w for w in piece.task.work if w.node.key in run.left)
            if piece.attempt + 1 >= MAX_ATTEMPTS:
                why = BuildError(_("{attempts} Ray workers were lost while making it (last: {error})").format(
                    attempts=MAX_ATTEMPTS, error=_short(exc)))
                out = [Result(k, error=why) for k in run.left]
            else:
                self.waiting.insert(0, Piece(subtask(piece.task, left), piece.affinity, piece.attempt + 1))
        if self.spares > 0:
            self.spares -= 1
            self._spawn()
        return out


def _short(exc: BaseException | None) -> str:
    """The first and last lines of a Ray error (its traceback's cause is on the last)."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    text = lines[0] if len(lines) == 1 else f"{lines[0]} ... {lines[-1]}"
    return f"{type(exc).__name__}: {text}"[:400]
