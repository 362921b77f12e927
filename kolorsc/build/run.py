"""The walk: run what the plans say must run, commit each output as it lands, write the lock last.

    run(plans, executor, cache, options) -> list[StoryRun]

One build runs the plans of every story given (a collection) together, wave by wave in
node-kind order — dataset, lora, picture, sheet, render, score, reference, select, panel,
storyboard/pdf/scores/page, thumbnail/bundle — so that:
- identical keys in several stories are made once (two stories sharing a prompt, seed and
  style render one image);
- renders of the whole collection sharing a LoRA go to the engine as one task (it merges
  the LoRA once), except a story's renders that share attention: those are one task of
  their own, marked `unsplittable` (the engine batches them with the story's identity panels);
- character sheets are rendered (in their own wave, grouped by LoRA like renders) before
  the renders that use them as reference pictures;
- a progress bar per stage covers the whole collection.

For each wave:
    1. adopt     cached nodes take their output from the cache (verified by the plan)
    2. block     nodes whose inputs failed are failed too ("upstream failed")
    3. lock      per-key locks, then a second look: another build may have made them
    4. discard   entries the plan found corrupt are deleted here, never while planning
    5. execute   the executor runs the stage tasks (here, or on a Ray cluster)
    6. commit    each result's bytes are checked against the sha256 the worker reported and
                 stored under their key the moment they arrive: a crash later loses nothing
Then per story: if every node has an output, build/<id>/ is written, then `<story>.lock`.
A story with a failed node writes neither; with `keep_going` its other nodes still run and
are cached. Nothing trusted is ever written before it was verified: a build killed anywhere
leaves the cache and the lock as consistent as before.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from kolorsc.build import lockfile
from kolorsc.build.executors.base import Executor, Result
from kolorsc.build.graph import (
    BUNDLE,
    DATASET,
    LORA,
    PAGE,
    PANEL,
    PDF,
    PICTURE,
    REFERENCE,
    RENDER,
    SCORE,
    SCORES,
    SELECT,
    SHEET,
    STORYBOARD,
    THUMBNAIL,
    NodeId,
    shares_attention,
)
from kolorsc.build.lockfile import LockEntry, LockFile, lock_path, summarize
from kolorsc.build.outputs import output_dir, write_outputs
from kolorsc.build.stages.base import Blob, Task, Work
from kolorsc.build.status import CACHED, SKIPPED, TO_RUN, Plan, PlannedNode
from kolorsc.cache import Cache
from kolorsc.errors import BuildError, KolorscError
from kolorsc.hashing import sha256_bytes
from kolorsc.i18n import _
from kolorsc.results import StoryResult

WAVES = ((DATASET,), (LORA,), (PICTURE,), (SHEET,), (RENDER,), (SCORE,), (REFERENCE,), (SELECT,), (PANEL,),
         (STORYBOARD, PDF, SCORES, PAGE), (THUMBNAIL, BUNDLE))
KEYS_PER_LOCK = 256  # keys locked at once (file descriptors), and in flight on the executor

# progress(stage, done, total, label): the CLI turns it into one bar per stage.
Progress = Callable[[str, int, int, str], None]


@dataclass
class Options:
    out: Path | None = None  # parent of build/<id>/ folders; default <project root>/build
    keep_going: bool = False  # on a failing node, still run every node that does not need it
    progress: Progress | None = None


@dataclass
class StoryRun:
    """One story's build: what ran, what was written, and what went wrong."""

    plan: Plan
    out_dir: Path
    outputs: dict[NodeId, Blob] = field(default_factory=dict)
    ran: dict[str, int] = field(default_factory=dict)  # kind -> nodes computed in this build
    where: dict[str, str] = field(default_factory=dict)  # node id -> worker that made it
    failed: set[NodeId] = field(default_factory=set)
    errors: list[str] = field(default_factory=list)
    error: BaseException | None = None  # the first failure (its exit code is the story's)
    stopped: bool = False  # a node failed and keep_going is off: nothing more runs
    written: list[str] = field(default_factory=list)
    lock_written: bool = False
    result: StoryResult | None = None

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def story(self):
        return self.plan.story

    def fail(self, node: PlannedNode, exc: BaseException, keep_going: bool) -> None:
        self.failed.add(node.id)
        self.errors.append(f"{node.id}: {exc}")
        if self.error is None:
            self.error = exc
        self.stopped = self.stopped or not keep_going


def run(plans: list[Plan], executor: Executor, cache: Cache, options: Options) -> list[StoryRun]:
    """Build every plan's to-run nodes; write outputs and lock files of the stories that
    completed. Returns one StoryRun per plan (never raises for a failing node)."""
    runs = [StoryRun(p, output_dir(p.story, options.out)) for p in plans]
    with cache.store_lock():
        for kinds in WAVES:
            _wave(kinds, runs, executor, cache, options)
            for kind in kinds:
                executor.end_wave(kind)
        for r in runs:
            _finish(r, cache)
        cache.hashes.save()
    return runs


# -- one wave ------------------------------------------------------------------------------


def _wave(kinds: tuple[str, ...], runs: list[StoryRun], executor: Executor, cache: Cache, options: Options) -> None:
    pending: dict[str, list[tuple[StoryRun, PlannedNode]]] = defaultdict(list)
    for r in runs:
        if r.stopped:
            continue
        for planned in r.plan.nodes:
            if planned.kind not in kinds or planned.status == SKIPPED:
                continue
            if planned.status == CACHED and _adopt(r, planned, cache):
                continue
            if _blocked(r, planned):
                r.failed.add(planned.id)
                continue
            pending[planned.key].append((r, planned))
    if not pending:
        return
    stage = kinds[0] if len(kinds) == 1 else "emit"
    done, total = 0, len(pending)
    keys = list(pending)
    for start in range(0, len(keys), KEYS_PER_LOCK):
        chunk = keys[start:start + KEYS_PER_LOCK]
        with cache.lock_keys(chunk):
            todo = {}
            for key in chunk:
                holders = pending[key]
                if any(p.corrupt for _, p in holders):
                    cache.discard(key)
                found = cache.lookup(key)  # another build may have made it while we waited
                if found.hit:
                    for r, p in holders:
                        r.outputs[p.id] = Blob(found.entry.sha256, path=found.entry.path)
                    done += 1
                    continue
                todo[key] = holders
            for result in executor.run(_tasks(todo, runs)):
                _commit(result, todo, cache, options)
                done += 1
                if options.progress:
                    options.progress(stage, done, total, _label(result, todo, executor))


def _label(result: Result, todo: dict, executor: Executor) -> str:
    """The node just committed, and the executor's state when it has one to show."""
    label = str(todo[result.key][0][1].id) if result.key in todo else ""
    status = executor.status()
    return f"{label} · {status}" if status else label


def _adopt(r: StoryRun, planned: PlannedNode, cache: Cache) -> bool:
    """Take a cached node's output: the plan verified it moments ago, and entries are
    write-once, so the object still being there (gc may have run in between) is enough."""
    entry = planned.entry
    if entry is None or not os.path.exists(entry.path):
        return False
    r.outputs[planned.id] = Blob(entry.sha256, path=entry.path)
    cache.touch(planned.key)  # used now: age-based gc keeps it
    return True


def _blocked(r: StoryRun, planned: PlannedNode) -> bool:
    graph = r.plan.graph
    return any(dep not in r.outputs and graph.node(dep).skipped is None for dep in planned.node.deps)


def _tasks(todo: dict[str, list[tuple[StoryRun, PlannedNode]]], runs: list[StoryRun]) -> list[Task]:
    """Tasks for the keys to make: renders (and sheets) grouped by LoRA and scale, a story's
    renders that share attention in one task of their own (`unsplittable`), scores of a story
    together (one scorer batch), every other node alone."""
    groups: dict[tuple, list[tuple[StoryRun, PlannedNode]]] = defaultdict(list)
    for key, holders in todo.items():
        r, planned = holders[0]  # identical keys: made once, for the first story that needs it
        if planned.kind in (RENDER, SHEET):
            inputs = planned.node.inputs
            shared = id(r) if shares_attention(planned.node) else None
            group = (planned.kind, inputs.get("lora"), inputs.get("lora_scale"), shared)
        elif planned.kind == SCORE:
            group = (SCORE, id(r))
        else:
            group = (planned.kind, key)
        groups[group].append((r, planned))
    tasks = []
    for (kind, *rest), members in groups.items():
        work = tuple(Work(p.node, r.plan.graph) for r, p in members)
        upstream = {}
        for r, p in members:
            for dep in p.node.deps:
                if dep in r.outputs:
                    upstream[r.plan.graph.node(dep).key] = r.outputs[dep]
        tasks.append(Task(kind, work, upstream, unsplittable=kind == RENDER and rest[-1] is not None))
    return tasks


def _commit(result: Result, todo: dict, cache: Cache, options: Options) -> None:
    holders = todo.get(result.key)
    if holders is None:
        return  # not asked for: never trusted
    if result.ok and (result.data is None or sha256_bytes(result.data) != result.sha256):
        result = Result(result.key, error=BuildError(_("the worker's output does not match its sha256")))
    if not result.ok:
        for r, p in holders:
            r.fail(p, result.error, options.keep_going)
        return
    if any(p.id in r.outputs for r, p in holders):
        return  # committed already (a retried task): never twice
    r0, p0 = holders[0]
    entry = cache.put_bytes(result.key, result.data, str(p0.id), p0.kind)
    for r, p in holders:
        r.outputs[p.id] = Blob(entry.sha256, path=entry.path)
        r.ran[p.kind] = r.ran.get(p.kind, 0) + 1
        r.where[str(p.id)] = result.where


# -- per story: outputs, then the lock -----------------------------------------------------


def _finish(r: StoryRun, cache: Cache) -> None:
    if r.errors:
        return
    lost = [n.id for n in r.plan.nodes if n.status != SKIPPED and n.id not in r.outputs]
    if lost:  # never record a lock file with a hole in it
        r.errors.append(_("no output for {nodes} (internal error, please report)").format(
            nodes=", ".join(map(str, lost[:5]))))
        r.error = BuildError(r.errors[-1])
        return
    from kolorsc.build.stages.result import story_result

    r.result = story_result(r.plan.graph, r.outputs)
    r.written = write_outputs(r.plan, r.outputs, r.out_dir, cache.hashes)
    if not _lock_unchanged(r):
        r.lock_written = lockfile.write(lock_path(r.story.path), lock_of(r.plan, r.outputs))


def _lock_unchanged(r: StoryRun) -> bool:
    """The lock file would say what it says: same nodes, keys and outputs (equal keys mean
    equal inputs). Saves serialising it on a no-op build of a large collection."""
    lock = r.plan.lock
    if lock is None or r.ran or lock.story != r.story.id or lock.engine != r.plan.engine.get("name", ""):
        return False
    nodes = {str(n.id): n for n in r.plan.nodes if n.status != SKIPPED}
    return nodes.keys() == lock.nodes.keys() and all(
        lock.nodes[i].key == n.key and lock.nodes[i].output == r.outputs[n.id].sha256 for i, n in nodes.items())


def lock_of(plan: Plan, outputs: dict[NodeId, Blob]) -> LockFile:
    nodes = {
        str(n.id): LockEntry(n.key, outputs[n.id].sha256 if n.id in outputs else None,
                             {name: summarize(value) for name, value in n.node.inputs.items()})
        for n in plan.nodes
        if n.status != SKIPPED
    }
    return LockFile(plan.story.id, nodes, plan.engine.get("name", ""))


def story_error(r: StoryRun) -> KolorscError:
    """The error a failed story run is reported with (its first failure's exit code)."""
    message = _("{story}: {n} node(s) failed: {errors}").format(story=r.story.id, n=len(r.errors),
                                                               errors="; ".join(r.errors[:5]))
    error = BuildError(message)
    if isinstance(r.error, KolorscError):
        error.exit_code = r.error.exit_code
    return error


__all__ = ["Options", "StoryRun", "TO_RUN", "lock_of", "run", "story_error"]
