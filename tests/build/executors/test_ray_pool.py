"""The Ray executor's render/score pool (kolorsc.build.executors.ray_pool) under conditions a
real cluster produces only by chance: replies seen out of order, workers lost mid-piece, every
worker lost. Ray is replaced by a stand-in that runs each actor call at once, in the order it
was made (as an actor does), and lets the test choose the order the driver sees replies in;
the real cluster is in test_ray_executor.py."""

from __future__ import annotations

from kolorsc.build.executors.ray_pool import MAX_ATTEMPTS, ActorPool
from kolorsc.build.executors.schedule import cut
from kolorsc.build.graph import RENDER, Node, NodeId
from kolorsc.build.stages.base import Task, Work
from kolorsc.hashing import sha256_bytes


class Lost(Exception):
    """What Ray raises on the calls of a worker that died."""


class Ref:
    def __init__(self, call):
        try:
            self.value, self.error = call(), None
        except Exception as exc:  # noqa: BLE001 - kept for ray.get, like Ray does
            self.value, self.error = None, exc


class FakeRay:
    class exceptions:
        class RayTaskError(Exception):
            pass

    def __init__(self, dies: dict[str, int] | None = None):
        self.dies = dies or {}  # worker name -> its `next` call that kills it (1 = first)

    def get(self, ref):
        if ref.error:
            raise ref.error
        return ref.value

    def kill(self, handle, no_restart=True):
        handle.dead = True


class Worker:
    """The StageWorker protocol: each node's output is its key's bytes."""

    def __init__(self, ray, name):
        self.ray, self.name, self.piece, self.items, self.calls = ray, name, None, None, 0

    def ready(self):
        return f"fake/{self.name}"

    def start(self, piece, task):
        self.piece, self.items = piece, iter(task.keys)

    def next(self, piece):
        self.calls += 1
        if self.calls == self.ray.dies.get(self.name):
            raise Lost(f"{self.name} died")
        if piece != self.piece:
            return ("gone",)
        key = next(self.items, None)
        if key is None:
            self.piece = None
            return ("done",)
        return ("item", key, key.encode(), sha256_bytes(key.encode()))


class Handle:
    def __init__(self, worker):
        self.worker, self.dead = worker, False

    def __getattr__(self, method):
        handle = self

        class Method:
            @staticmethod
            def remote(*args):
                def call():
                    if handle.dead:
                        raise Lost(f"{handle.worker.name} is dead")
                    return getattr(handle.worker, method)(*args)

                return Ref(call)

        return Method


class ActorClass:
    def __init__(self, ray):
        self.ray = ray

    def options(self, **_):
        return self

    def remote(self, spec, name):
        return Handle(Worker(self.ray, name))


def pool_of(ray, size: int, keys: int) -> ActorPool:
    work = tuple(Work(Node(NodeId(RENDER, i, 1), {"prompt": f"p{i}", "lora": "A", "lora_scale": 1.0}), None)
                 for i in range(1, keys + 1))
    pool = ActorPool(ray, ActorClass(ray), None, size, "cpu", {})
    pool.add(cut([Task(RENDER, work)], size))
    return pool


def drain(pool: ActorPool, newest_first: bool = False) -> list:
    """Run the pool to the end, looking at replies newest first when asked."""
    results = []
    for _ in range(1000):
        results += pool.dispatch()
        if not pool.busy():
            return results
        refs = pool.refs()
        ref = refs[-1] if newest_first else refs[0]
        results += pool.handle(ref)
    raise AssertionError("the pool never finished")


def test_replies_seen_out_of_order_are_taken_in_the_order_the_worker_made_them():
    pool = pool_of(FakeRay(), size=1, keys=5)
    keys = pool.waiting[0].task.keys
    results = drain(pool, newest_first=True)  # "done" is seen before the last image
    assert [(r.key, r.ok, r.data) for r in results] == [(k, True, k.encode()) for k in keys]
    assert all(r.where == "fake/cpu-0" for r in results)


def test_a_worker_lost_mid_piece_is_replaced_and_its_unfinished_nodes_made_once_elsewhere():
    pool = pool_of(FakeRay(dies={"cpu-0": 3}), size=2, keys=8)  # two pieces of 4; cpu-0 dies on its 3rd
    results = drain(pool)
    assert sorted(r.key for r in results) == sorted({r.key for r in results}) and len(results) == 8
    assert all(r.ok for r in results)
    where = {r.key: r.where for r in results}
    assert {"fake/cpu-0", "fake/cpu-1", "fake/cpu-2"} == set(where.values())  # cpu-2 replaced cpu-0
    assert [s.name for s in pool.slots] == ["cpu-1", "cpu-2"]


def test_a_node_fails_after_max_attempts_workers_were_lost_making_it():
    dies = {f"cpu-{i}": 1 for i in range(10)}  # every worker dies on its first `next`
    results = drain(pool_of(FakeRay(dies=dies), size=3, keys=2))
    assert len(results) == 2 and not any(r.ok for r in results)
    assert f"{MAX_ATTEMPTS} Ray workers were lost while making it (last: Lost: cpu-" in str(results[0].error)

    results = drain(pool_of(FakeRay(dies=dies), size=1, keys=2))  # one replacement per worker, no more
    assert len(results) == 2 and not any(r.ok for r in results)
    assert str(results[0].error) == "every Ray worker of the pool was lost (last: Lost: cpu-1 died)"
