"""Statuses and reasons: the graph against the cache and the lock file, read-only."""

from __future__ import annotations

import dataclasses

import pytest

from kolorsc import api
from kolorsc.build.graph import Identities, make_graph
from kolorsc.build.lockfile import LockFile, LockRead
from kolorsc.build.run import lock_of
from kolorsc.build.stages import code_identities
from kolorsc.build.stages.base import Blob
from kolorsc.build.status import CACHED, TO_RUN, plan_of
from kolorsc.cache import Cache

from _build_fixtures import make_project, story_path

ENGINE = {"name": "preview", "code": "c1", "long_side": 128}


def ids(engine=ENGINE, **kw) -> Identities:
    return Identities(engine=engine, preview=True, code=code_identities(), fonts={"font.ttf": "f1"}, **kw)


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    project = make_project(tmp_path_factory.mktemp("status") / "project")
    return api.load(story_path(project))


def stored(graph, cache) -> LockFile:
    """Pretend a build stored every output and wrote its lock file."""
    plan = plan_of(graph, cache, LockRead(None))
    outputs = {n.id: Blob(cache.put_bytes(n.key, str(n.id).encode()).sha256) for n in plan.to_run()}
    return lock_of(plan, outputs)


def test_statuses_and_reasons_against_the_lock(loaded, tmp_path):
    story, panels = loaded
    cache = Cache(tmp_path)
    plan = plan_of(make_graph(story, panels, ids()), cache, LockRead(None))
    assert all(n.status == TO_RUN and n.why == ("new node",) for n in plan.nodes if n.status != "skipped")

    lock = stored(make_graph(story, panels, ids()), cache)
    assert plan_of(make_graph(story, panels, ids()), cache, LockRead(lock)).counts()[TO_RUN] == 0

    edited = [dataclasses.replace(panels[0], seed=99, steps=20)] + panels[1:]
    again = plan_of(make_graph(story, edited, ids(engine={**ENGINE, "code": "c9"})), cache, LockRead(lock))
    assert again.node("render/02/seed-2").why == ("engine code changed",)
    at = {k: f"{v.file}:{v.line}" for k, v in story.locs.items()}
    # the seed is in the id: the node it replaces is render/01/seed-1, and the reason says so
    assert again.node("render/01/seed-99").why == (
        "engine code changed", f"seed 1 → 99 at {at['defaults.seed']}", f"steps 50 → 20 at {at['defaults.steps']}")
    assert again.node("select/01").why == ("candidate images changed",)

    cache.discard(plan.node("pdf").key)
    same = plan_of(make_graph(story, panels, ids()), cache, LockRead(lock))
    assert same.node("pdf").why == ("output missing from cache",)
    assert same.node("storyboard").status == CACHED


def test_reasons_name_the_changed_input_with_old_and_new_values(loaded, tmp_path):
    story, panels = loaded
    cache = Cache(tmp_path)
    lock = stored(make_graph(story, panels, ids()), cache)
    edited = [dataclasses.replace(panels[0], negative="模糊"), dataclasses.replace(panels[1], cfg=7.0),
              dataclasses.replace(panels[2], steps=30)] + panels[3:]
    code = {**code_identities(), "pdf": "other"}
    again = plan_of(make_graph(story, edited, dataclasses.replace(ids(), code=code)), cache, LockRead(lock))
    at = {k: f"{v.file}:{v.line}" for k, v in story.locs.items()}  # the line holding the value in effect
    assert again.node("render/01/seed-1").why == (f"negative {panels[0].negative} → 模糊 at {at['defaults.negative']}",)
    assert again.node("render/02/seed-2").why == (f"cfg 4.0 → 7.0 at {at['defaults.cfg']}",)
    assert again.node("render/03/seed-3").why == (f"steps 50 → 30 at {at['defaults.steps']}",)
    assert "pdf code changed" in again.node("pdf").why


def test_a_corrupt_entry_is_reported_and_left_alone(loaded, tmp_path):
    story, panels = loaded
    cache = Cache(tmp_path)
    graph = make_graph(story, panels, ids())
    lock = stored(graph, cache)
    key = graph.node("render/04/seed-4").key
    cache.object_path(key).write_bytes(b"damaged")
    plan = plan_of(graph, cache, LockRead(lock))
    assert plan.node("render/04/seed-4").why[0].startswith("cache entry corrupt (size")
    assert plan.node("render/04/seed-4").corrupt
    assert cache.object_path(key).read_bytes() == b"damaged"  # planning deletes nothing


def test_an_unusable_lock_file_is_a_warning_and_a_first_build(loaded, tmp_path):
    story, panels = loaded
    plan = plan_of(make_graph(story, panels, ids()), Cache(tmp_path), LockRead(None, "not a valid lock file (x)"),
                   lock_name="stories/x.lock")
    assert plan.warnings == ["stories/x.lock: not a valid lock file (x); building as if for the first time "
                             "(it is rewritten when the build succeeds)"]
    assert {n.why for n in plan.to_run()} == {("new node",)}
