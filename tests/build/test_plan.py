"""The build graph: which inputs go into which keys, statuses and the reasons for a rebuild.
No engine runs here: plans are made from compiled example stories and compared."""

from __future__ import annotations

import dataclasses

import pytest

from kolorsc import api
from kolorsc.cache import Cache
from kolorsc.lockfile import LockFile
from kolorsc.plan import CACHED, SKIPPED, TO_RUN, LoraSource, digest, make_plan, resolve
from kolorsc.runner import Output, lock_of

from _build_fixtures import make_project, story_path

ENGINE = {"name": "preview", "version": "1", "long_side": 128}


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    project = make_project(tmp_path_factory.mktemp("plan") / "project")
    return api.load(story_path(project))


def keys(plan) -> dict[str, str]:
    return {n.id: n.key for n in plan.nodes}


def changed(a, b) -> set[str]:
    ka, kb = keys(a), keys(b)
    return {i for i in ka.keys() | kb.keys() if ka.get(i) != kb.get(i)}


def test_nodes_in_run_order_with_stable_keys(loaded):
    story, panels = loaded
    plan = make_plan(story, panels, ENGINE, preview=True)
    kinds = [n.kind for n in plan.nodes]
    order = ["dataset", "lora", "render", "select", "panel", "storyboard", "pdf", "scores", "bundle"]
    assert sorted(set(kinds), key=order.index) == [k for k in order if k in kinds]
    assert kinds == sorted(kinds, key=order.index)  # each kind comes after what it reads
    assert len(plan.of_kind("render")) == 8
    assert keys(plan) == keys(make_plan(story, panels, ENGINE, preview=True))
    assert plan.node("render/03/seed-3").loc == story.scenes[2].prompt_loc


def test_preview_skips_lora_and_scores(loaded):
    story, panels = loaded
    plan = make_plan(story, panels, ENGINE, preview=True)
    assert [(n.id, n.status) for n in plan.nodes[:2]] == [("dataset", SKIPPED), ("lora", SKIPPED)]
    assert plan.of_kind("score") == []


def test_caption_is_not_a_render_input(loaded):
    story, panels = loaded
    base = make_plan(story, panels, ENGINE, preview=True)
    edited = panels[:2] + [dataclasses.replace(panels[2], caption="别的说明")] + panels[3:]
    new = make_plan(story, edited, ENGINE, preview=True)
    assert changed(base, new) == {"panel/03", "storyboard", "pdf", "scores", "bundle"}


def test_one_prompt_changes_one_render(loaded):
    story, panels = loaded
    base = make_plan(story, panels, ENGINE, preview=True)
    edited = panels[:5] + [dataclasses.replace(panels[5], prompt=panels[5].prompt + "，夜晚")] + panels[6:]
    diff = changed(base, make_plan(story, edited, ENGINE, preview=True))
    assert {d for d in diff if d.startswith("render")} == {"render/06/seed-6"}


def test_engine_and_lora_change_every_render(loaded):
    story, panels = loaded
    base = make_plan(story, panels, ENGINE, preview=True)
    other_engine = make_plan(story, panels, {**ENGINE, "version": "2"}, preview=True)
    assert {n.id for n in base.of_kind("render")} <= changed(base, other_engine)

    lora1 = LoraSource("train", 2.0, dataset_fingerprint="d1", trainer_version="t1")
    lora2 = LoraSource("train", 2.0, dataset_fingerprint="d2", trainer_version="t1")
    kolors = {"name": "kolors", "version": "1"}
    a = make_plan(story, panels, kolors, preview=False, lora=lora1)
    b = make_plan(story, panels, kolors, preview=False, lora=lora2)
    renders = {n.id for n in a.of_kind("render")}
    assert {"dataset", "lora"} | renders <= changed(a, b)
    assert len(a.of_kind("score")) == 8 and a.node("lora").deps == ("dataset",)


def test_candidates_render_each_seed_with_kolors(loaded):
    story, panels = loaded
    more = [dataclasses.replace(panels[0], candidates=3)] + panels[1:]
    plan = make_plan(story, more, {"name": "kolors"}, preview=False)
    assert [n.id for n in plan.nodes if n.panel == 1 and n.kind == "render"] == [
        "render/01/seed-1", "render/01/seed-2", "render/01/seed-3"]
    # the preview engine draws only candidate 1: nothing could choose among drafts
    assert len([n for n in make_plan(story, more, ENGINE, preview=True).of_kind("render") if n.panel == 1]) == 1


def test_key_is_hash_of_canonical_inputs(loaded):
    story, panels = loaded
    node = make_plan(story, panels, ENGINE, preview=True).node("render/01/seed-1")
    assert node.key == digest({"kind": "render", "inputs": node.inputs})
    assert node.inputs["prompt"] == panels[0].prompt and "caption" not in node.inputs


def test_statuses_and_reasons_against_the_lock(loaded, tmp_path):
    story, panels = loaded
    cache = Cache(tmp_path)
    plan = resolve(make_plan(story, panels, ENGINE, preview=True), cache, None)
    assert all(n.status == TO_RUN and n.why == ["new node"] for n in plan.nodes if n.status != SKIPPED)

    # pretend a build stored every output and wrote its lock file
    outputs = {}
    for n in plan.nodes:
        if n.status != SKIPPED:
            outputs[n.id] = Output(cache.put_bytes(n.key, n.id.encode()).sha256)
    lock = lock_of(plan, outputs)
    assert resolve(make_plan(story, panels, ENGINE, preview=True), cache, lock).counts()[TO_RUN] == 0

    edited = [dataclasses.replace(panels[0], seed=99, steps=20)] + panels[1:]
    again = resolve(make_plan(story, edited, {**ENGINE, "version": "9"}, preview=True), cache, lock)
    assert again.node("render/02/seed-2").why == ["engine changed"]
    assert again.node("render/01/seed-99").why == ["new node"]  # the seed is in the id
    assert again.node("select/01").why == ["candidate images changed"]

    cache.discard(plan.node("pdf").key)
    same = resolve(make_plan(story, panels, ENGINE, preview=True), cache, lock)
    assert same.node("pdf").why == ["output missing from cache"]
    assert same.node("storyboard").status == CACHED


def test_reasons_name_the_changed_input(loaded, tmp_path):
    story, panels = loaded
    cache = Cache(tmp_path)
    plan = make_plan(story, panels, ENGINE, preview=True)
    lock = LockFile(story.id, lock_of(plan, {}).nodes)
    edited = [dataclasses.replace(panels[0], negative="模糊"), dataclasses.replace(panels[1], cfg=7.0)] + panels[2:]
    again = resolve(make_plan(story, edited, ENGINE, preview=True), cache, lock)
    assert again.node("render/01/seed-1").why == ["negative changed"]
    assert again.node("render/02/seed-2").why == ["settings changed (steps, cfg, size or refine)"]
    assert again.node("render/03/seed-3").why == ["output missing from cache"]
