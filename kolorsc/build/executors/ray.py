"""The Ray executor: stage tasks run on a Ray cluster; their bytes come back to the driver,
which alone verifies and commits them (kolorsc.build.run), exactly as with the local one.

    RayExecutor.connect(env, worker_spec, address=None, workers=None) -> RayExecutor

Where each node kind runs
    dataset, reused lora,       here, in the driver: they read the project's own files (a
    picture                     generated dataset is a GPU task with the engine instead)
    sheet, render, score,       a pool of actors (kolorsc.build.executors.ray_pool), one per
    reference                   GPU (num_gpus=1), or `workers` CPU actors on a cluster without
                                GPUs; each keeps its engine loaded across pieces, then its
                                scorers; LoRA affinity (kolorsc.build.executors.schedule); an
                                unsplittable task (a story's renders sharing attention) goes
                                whole to one actor
    lora (training)             a Ray task asking for the GPUs its training spec names
                                (`devices`), Lightning inside, as `kolorsc train` runs it
    select and the emitters     Ray tasks of one CPU each, several nodes to a task, a
                                bounded number in flight

The pool lives from the first sheet or render (or score) to the end of the reference wave: training before
it gets every GPU, the emitters after it every CPU (Ray Data's own pitfall of actors holding
every CPU slot while other work waits, ray-project/ray#44687, cannot arise).

Why actors, not Ray Data's `map_batches` with an actor pool (Ray's batch-inference guide).
map_batches fits one stateless model over rows of a dataset; here
  - a worker's state matters: an engine with a LoRA merged renders that LoRA's panels
    cheaply and any other after a UNet reload; map_batches has no way to send a batch to the
    actor that holds its LoRA;
  - each image must come back to the driver to be committed the moment it exists (a crash
    loses nothing), not be written into a dataset by the pipeline;
  - the waves (render -> score -> select -> emit) depend on each other through the driver's
    cache, which map_batches operators do not see;
and the tracker reports, for GPU actor pools in map_batches: a dead actor keeping its pool
slot while the pipeline hangs silently (#62746, Ray 2.55), `concurrency=(N, N)` starting on one
actor (#60124), two GPU stages not pipelining (#44767), map_batches ~25% slower than
iterating by hand for a 1 s model (#44905). Actors directly, then, with the care those
reports call for: failures handled by the pool itself (ray_pool's docstring), one thread per
actor (threaded actors leak CUDA memory, #49360), and no streaming generators (they do not
work over Ray Client, #43357, won't fix): outputs are pulled with plain `next` calls.

Code on the workers: the job's runtime_env is `{"py_modules": [the kolorsc package folder]}`
(`runtime_env()`), so every worker runs the driver's kolorsc, uploaded by Ray (content-
addressed, once per version): a node needs kolorsc's dependencies installed, not a checkout.
Ray takes local folders only for the whole job, at `ray.init`: when kolorsc connects it passes
them; a caller that started Ray itself (tests, a notebook) passes `runtime_env()` there. An
engine given as an instance travels pickled, the local modules that define it with it. Each
worker then checks that its code and models are what every node's key promises (ray_worker).

Connecting: `address` None starts a local Ray (or joins the one `ray start` made here);
"auto", "host:port" or "ray://host:10001" join a cluster. Ray missing, or nobody answering
at the address: a BuildError before anything runs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import socket
import sys
from collections import deque
from collections.abc import Iterator, Sequence
from pathlib import Path

from kolorsc.build.executors.base import Executor, Result
from kolorsc.build.executors.local import LocalExecutor
from kolorsc.build.executors.ray_worker import StageWorker, WorkerSpec, run_stage
from kolorsc.build.executors.schedule import cut
from kolorsc.build.graph import DATASET, EMIT_KINDS, LORA, PICTURE, REFERENCE, RENDER, SCORE, SELECT, SHEET
from kolorsc.build.stages.base import Blob, Env, Task
from kolorsc.errors import BuildError
from kolorsc.i18n import _, ngettext

POOLED = (SHEET, RENDER, SCORE, REFERENCE)  # the engine's kinds, then the scorers'
BATCHED = (SELECT, *EMIT_KINDS)  # milliseconds of work per node: several to a Ray task
MAX_BATCH = 16
PROBE_TIMEOUT = 5.0  # s to wait for a TCP answer from the cluster's address
WAIT = 5.0  # s per ray.wait: how often the loop looks at the pool's start-up clock


def import_ray():
    try:
        import ray
    except ImportError as exc:
        raise BuildError(_("--executor ray needs Ray, which is not installed: pip install 'kolorsc[models]' "
                           "(or pip install 'ray>=2.9') ({error})").format(error=exc)) from exc
    return ray


def connect(address: str | None, env: dict):
    """Ray, connected with the job's runtime environment `env`. Returns (ray, whether this call
    connected it: then `close` disconnects)."""
    ray = import_ray()
    if ray.is_initialized():
        return ray, False  # the caller set Ray up (a test, a notebook) with runtime_env(): use it
    if address and address not in ("auto", "local"):
        probe(address)
    try:
        # log_to_driver off: the workers' prints (diffsynth, Lightning) stay in Ray's logs on
        # their node instead of tearing through the progress bars here
        ray.init(address=address, namespace="kolorsc", log_to_driver=False, runtime_env=env,
                 logging_level=logging.WARNING)
    except Exception as exc:  # ConnectionError, ValueError (ray:// without ray[client])...
        raise BuildError(_("cannot connect to a Ray cluster at {address}: {error}").format(
            address=address or _("this machine"), error=exc)) from exc
    return ray, True


def probe(address: str) -> None:
    """Fail fast when nothing answers at the address (ray.init would wait a minute or more)."""
    host, _colon, port = address.removeprefix("ray://").rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=PROBE_TIMEOUT):
            return
    except ValueError:
        raise BuildError(_("--ray-address {address}: expected auto, host:port or ray://host:port").format(
            address=address)) from None
    except OSError as exc:
        raise BuildError(_("no Ray cluster answers at {address} ({error}): start one with `ray start --head` "
                           "or check --ray-address / KOLORSC_RAY_ADDRESS").format(
                               address=address, error=exc.strerror or exc)) from None


def runtime_env(modules=()) -> dict:
    """The job's runtime environment: the kolorsc package folder and `modules` (module objects
    or files) uploaded to every worker. Ray accepts local folders only for the whole job, at
    `ray.init`; a caller that starts Ray itself passes this there."""
    import kolorsc

    paths = [str(Path(kolorsc.__file__).resolve().parent)]
    for module in modules:
        path = module if isinstance(module, (str, Path)) else module.__file__
        path = str(Path(path).resolve())
        if path not in paths:
            paths.append(path)
    return {"py_modules": paths, "excludes": ["__pycache__", "*.pyc"]}


def job_env(spec: WorkerSpec) -> dict:
    instance = spec.engine.instance if spec.engine is not None else None
    return runtime_env(local_modules(instance) if instance is not None else ())


def local_modules(obj) -> list[str]:
    """Files of the modules (outside kolorsc and installed packages) defining `obj`'s class and
    its attributes' classes: what a worker must import to unpickle it."""
    classes = [*type(obj).__mro__, *(type(v) for v in vars(obj).values())]
    installed = tuple(str(Path(p).resolve()) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix))
    out = []
    for cls in classes:
        module = sys.modules.get(cls.__module__)
        path = getattr(module, "__file__", None)
        # kolorsc is shipped anyway; cloudpickle sends classes of __main__ by value
        if cls.__module__.split(".")[0] in ("kolorsc", "builtins", "__main__") or not path:
            continue
        path = str(Path(path).resolve())
        if not path.startswith(installed) and path not in out:
            out.append(path if getattr(module, "__path__", None) is None else str(Path(path).parent))
    return out


class RayExecutor(Executor):
    name = "ray"

    def __init__(self, ray, env: Env, spec: WorkerSpec, workers: int | None = None, owns_ray: bool = False):
        self.ray, self.spec, self.owns_ray = ray, spec, owns_ray
        self.local = LocalExecutor(env)  # the kinds that read the project's files
        resources = ray.cluster_resources()
        self.gpus, self.cpus = int(resources.get("GPU", 0)), max(1, int(resources.get("CPU", 1)))
        self.workers = workers or self.gpus or self.cpus
        pool = {"num_gpus": 1} if self.gpus else {"num_cpus": 1}
        self.pool_options = {**pool, "max_restarts": 0, "max_task_retries": 0}
        self.task_options = {"max_retries": 2}
        self.actor_cls = ray.remote(StageWorker)
        self.stage_fn = ray.remote(run_stage)
        self.pool = None  # made at the first sheet, render or score; gone after the reference wave
        self.tasks = _Tasks(ray, self.stage_fn, self._task_spec, self._task_options, 2 * self.cpus, self.cpus)

    @classmethod
    def connect(cls, env: Env, spec: WorkerSpec, address: str | None = None, workers: int | None = None):
        if workers is not None and workers < 1:
            raise BuildError(_("--ray-workers must be at least 1"))
        ray, owns = connect(address, job_env(spec))
        try:
            return cls(ray, env, spec, workers, owns)
        except Exception:
            if owns:
                ray.shutdown()
            raise

    # -- the executor seam -------------------------------------------------------------------

    def run(self, tasks: Sequence[Task]) -> Iterator[Result]:
        here = [t for t in tasks if runs_here(t)]
        pooled = [t for t in tasks if t.kind in POOLED]
        remote = [t for t in tasks if t.kind not in POOLED and not runs_here(t)]
        if pooled:
            self._pool().add(cut(pooled, self.workers))
        self.tasks.add(remote)
        given: set[str] = set()
        for result in self._loop(here):
            if result.key not in given:  # never a key twice, whatever the workers did
                given.add(result.key)
                yield result

    def _loop(self, here: list[Task]) -> Iterator[Result]:
        yield from self._dispatch()  # Ray starts on its share while the driver runs its own
        yield from self.local.run(here)
        while (self.pool and self.pool.busy()) or self.tasks.busy():
            yield from self._dispatch()
            refs = (self.pool.refs() if self.pool else []) + self.tasks.refs()
            if not refs:
                break
            ready, _pending = self.ray.wait(refs, num_returns=1, timeout=WAIT)
            for ref in ready:
                owner = self.pool if self.pool and self.pool.owns(ref) else self.tasks
                yield from owner.handle(ref)

    def _dispatch(self) -> list[Result]:
        out = self.pool.dispatch() if self.pool else []
        self.tasks.dispatch()
        return out

    def _pool(self):
        if self.pool is None:
            from kolorsc.build.executors.ray_pool import ActorPool

            role = "gpu" if self.gpus else "cpu"
            self.pool = ActorPool(self.ray, self.actor_cls, self.spec, self.workers, role, self.pool_options)
        return self.pool

    def _task_spec(self, task: Task) -> WorkerSpec:
        """Only a generated dataset needs the engine: leaving it out of the other tasks spares
        their workers unpickling (importing) it."""
        return self.spec if generates(task) else dataclasses.replace(self.spec, engine=None)

    def _task_options(self, task: Task) -> dict:
        if generates(task) and self.gpus:  # renders with the base model: a GPU, as a render worker
            return {**self.task_options, "num_gpus": 1, "num_cpus": 1}
        if task.kind == LORA and self.gpus:  # training: the GPUs its spec asks for
            training = task.work[0].graph.story.style.lora.training
            if training.accelerator != "cpu" and self.spec.device != "cpu":
                devices = training.devices if isinstance(training.devices, int) else 1
                return {**self.task_options, "num_gpus": devices, "num_cpus": 1}
        return {**self.task_options, "num_cpus": 1}

    def status(self) -> str:
        workers = self.pool.workers if self.pool else 0
        in_flight = (self.pool.in_flight if self.pool else 0) + self.tasks.in_flight
        parts = [ngettext("{n} worker", "{n} workers", workers).format(n=workers)] if self.pool else []
        return ", ".join(parts + [_("{n} in flight").format(n=in_flight)])

    def end_wave(self, kind: str) -> None:
        self.local.end_wave(kind)
        if kind == RENDER and self.pool:
            self.pool.release_engines()  # the scorers get the GPU memory
        elif kind == REFERENCE and self.pool:
            self.pool.close()  # the GPUs and CPUs go back to the cluster (and to the emitters)
            self.pool = None

    def close(self) -> None:
        try:
            if self.pool:
                self.pool.close()
                self.pool = None
            self.tasks.cancel()
            self.local.close()
        finally:
            if self.owns_ray:
                self.ray.shutdown()


def runs_here(task: Task) -> bool:
    """Nodes that read the project's own files (or the driver's downloads) run in the driver: a
    dataset from the style's image folder or from ModelScope, a LoRA reused from `lora.path`
    or `lora.modelscope`, a character's reference picture. A dataset the base model renders
    (`source: generate`) and a LoRA training run on the cluster."""
    lora = task.work[0].graph.story.style.lora
    if task.kind == PICTURE:
        return True
    if task.kind == DATASET:
        return not generates(task)
    return task.kind == LORA and (lora.path is not None or lora.modelscope is not None)


def generates(task: Task) -> bool:
    """A dataset rendered by the base model: a GPU job that needs the engine."""
    return task.kind == DATASET and task.work[0].graph.story.style.lora.dataset.source == "generate"


class _Tasks:
    """Ray tasks for the other kinds, at most `window` in flight (each carries its inputs'
    bytes: a bounded window keeps the object store small). Selects and emitters, a few
    milliseconds of work each, go several to a Ray task (a batch is at most a quarter of a
    CPU's share of what waits, and MAX_BATCH): per-task overhead and the panels' bytes, sent
    once per batch, would cost more than the work. Ray retries a task whose worker was lost
    (`max_retries`): only the attempt that returns is ever seen here."""

    def __init__(self, ray, fn, spec, options, window: int, cpus: int):
        self.ray, self.fn, self.spec, self.options, self.window = ray, fn, spec, options, window
        self.cpus = cpus
        self.waiting: deque[Task] = deque()
        self.calls: dict = {}  # ref -> [task]

    @property
    def in_flight(self) -> int:
        return sum(len(t.work) for batch in self.calls.values() for t in batch)

    def add(self, tasks: list[Task]) -> None:
        self.waiting.extend(tasks)

    def busy(self) -> bool:
        return bool(self.waiting or self.calls)

    def refs(self) -> list:
        return list(self.calls)

    def dispatch(self) -> None:
        while self.waiting and len(self.calls) < self.window:
            batch = [self.waiting.popleft()]
            if batch[0].kind in BATCHED:
                size = min(MAX_BATCH, math.ceil(len(self.waiting) / (4 * self.cpus)) + 1)
                while self.waiting and len(batch) < size and self.waiting[0].kind in BATCHED:
                    batch.append(self.waiting.popleft())
            shared: dict[str, Blob] = {}  # an upstream output read by several tasks travels once
            payload = [_detached(t, shared) for t in batch]
            self.calls[self.fn.options(**self.options(batch[0])).remote(self.spec(batch[0]), payload)] = batch

    def handle(self, ref) -> list[Result]:
        batch = self.calls.pop(ref)
        keys = [k for t in batch for k in t.keys]
        try:
            where, replies = self.ray.get(ref)
        except Exception as exc:  # noqa: BLE001 - retries exhausted, or the task could not run
            lines = str(exc).strip().splitlines() or [""]
            lost = f"{type(exc).__name__}: {lines[-1].strip()}"[:400]
            why = BuildError(_("the Ray task was lost: {error}").format(error=lost))
            return [Result(k, error=why) for k in keys]
        out, made = [], set()
        for reply in replies:
            if reply[0] == "item":
                _item, key, data, sha = reply
                made.add(key)
                out.append(Result(key, data, sha, where=where))
            elif reply[0] == "error":
                _error, exc, failed = reply
                out += [Result(k, error=exc) for k in failed if k not in made]
                made.update(failed)
        missing = BuildError(_("worker {where}: the stage made no output for it (internal error)").format(where=where))
        return out + [Result(k, error=missing) for k in keys if k not in made]

    def cancel(self) -> None:
        for ref in self.calls:
            with contextlib.suppress(Exception):  # finished or gone already
                self.ray.cancel(ref, force=True)
        self.calls.clear()
        self.waiting.clear()


def _detached(task: Task, shared: dict[str, Blob]) -> Task:
    """`task` carrying its upstream bytes, one Blob per distinct output across a batch (pickle
    then sends each once)."""
    upstream = {}
    for key, blob in task.upstream.items():
        if blob.sha256 not in shared:
            shared[blob.sha256] = blob.detached()
        upstream[key] = shared[blob.sha256]
    return dataclasses.replace(task, upstream=upstream)  # keeps `unsplittable`
