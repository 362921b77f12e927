"""The build graph: which inputs go into which keys. Pure: no engine runs, no file is read
but the example story; graphs are made from compiled stories and compared."""

from __future__ import annotations

import dataclasses

import pytest

from kolorsc import api
from kolorsc.build.graph import Identities, LoraSource, NodeId, make_graph
from kolorsc.build.stages import code_identities
from kolorsc.hashing import digest

from _build_fixtures import make_project, story_path

ENGINE = {"name": "preview", "code": "c1", "long_side": 128}


def ids(engine=ENGINE, preview=True, **kw) -> Identities:
    return Identities(engine=engine, preview=preview, code=code_identities(), fonts={"font.ttf": "f1"}, **kw)


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    project = make_project(tmp_path_factory.mktemp("graph") / "project")
    return api.load(story_path(project))


def keys(graph) -> dict[str, str]:
    return {str(n.id): n.key for n in graph.nodes}


def changed(a, b) -> set[str]:
    ka, kb = keys(a), keys(b)
    return {i for i in ka.keys() | kb.keys() if ka.get(i) != kb.get(i)}


def test_node_ids_are_values_that_print_and_parse():
    nid = NodeId("render", 3, 3)
    assert str(nid) == "render/03/seed-3" and NodeId.parse("render/03/seed-3") == nid
    assert NodeId.parse("select/07") == NodeId("select", 7) and NodeId.parse("pdf") == NodeId("pdf")
    assert nid.sibling("score") == NodeId("score", 3, 3)
    with pytest.raises(ValueError):
        NodeId.parse("render/x")


def test_nodes_in_run_order_with_stable_keys(loaded):
    story, panels = loaded
    graph = make_graph(story, panels, ids())
    kinds = [n.kind for n in graph.nodes]
    order = ["dataset", "lora", "render", "select", "panel", "storyboard", "pdf", "scores", "page", "thumbnail",
             "bundle"]
    assert kinds == sorted(kinds, key=order.index)  # each kind comes after what it reads
    assert len(graph.of_kind("render")) == 8
    assert keys(graph) == keys(make_graph(story, panels, ids()))
    assert graph.node("render/03/seed-3").loc == story.scenes[2].prompt_loc
    for node in graph.nodes:  # every dependency is a node of the graph that comes earlier
        assert all(kinds.index(graph.node(d).kind) <= kinds.index(node.kind) for d in node.deps)


def test_preview_skips_lora_and_scores(loaded):
    story, panels = loaded
    graph = make_graph(story, panels, ids())
    assert [(str(n.id), n.skipped is not None) for n in graph.nodes[:2]] == [("dataset", True), ("lora", True)]
    assert graph.of_kind("score") == []


def test_caption_is_not_a_render_input(loaded):
    story, panels = loaded
    base = make_graph(story, panels, ids())
    edited = panels[:2] + [dataclasses.replace(panels[2], caption="别的说明")] + panels[3:]
    assert changed(base, make_graph(story, edited, ids())) == {"panel/03", "storyboard", "pdf", "scores", "page",
                                                              "thumbnail", "bundle"}


def test_one_prompt_changes_one_render(loaded):
    story, panels = loaded
    base = make_graph(story, panels, ids())
    edited = panels[:5] + [dataclasses.replace(panels[5], prompt=panels[5].prompt + "，夜晚")] + panels[6:]
    diff = changed(base, make_graph(story, edited, ids()))
    assert {d for d in diff if d.startswith("render")} == {"render/06/seed-6"}


def test_a_stage_code_change_rekeys_that_kind_and_what_reads_it(loaded):
    story, panels = loaded
    base = make_graph(story, panels, ids())
    pdf = dataclasses.replace(ids(), code={**code_identities(), "pdf": "edited"})
    assert changed(base, make_graph(story, panels, pdf)) == {"pdf"}
    select = dataclasses.replace(ids(), code={**code_identities(), "select": "edited"})
    assert changed(base, make_graph(story, panels, select)) == (
        {f"select/{i:02d}" for i in range(1, 9)} | {f"panel/{i:02d}" for i in range(1, 9)}
        | {"storyboard", "pdf", "scores", "page", "thumbnail", "bundle"})


def test_fonts_key_only_what_draws_text(loaded):
    story, panels = loaded
    base = make_graph(story, panels, ids())
    other = dataclasses.replace(ids(), fonts={"font.ttf": "f2"})
    assert changed(base, make_graph(story, panels, other)) == {"storyboard", "pdf", "thumbnail"}


def test_engine_lora_and_scorer_identities_change_what_they_make(loaded):
    story, panels = loaded
    base = make_graph(story, panels, ids())
    other_engine = make_graph(story, panels, ids(engine={**ENGINE, "code": "c2"}))
    assert {str(n.id) for n in base.of_kind("render")} <= changed(base, other_engine)

    kolors = {"name": "kolors", "code": "k1", "files": "w1"}
    lora1 = LoraSource("train", 2.0, dataset={"files": "d1"})
    lora2 = LoraSource("train", 2.0, dataset={"files": "d2"})
    scorer = {"aesthetic": {"model": "m", "weights": {"fingerprint": "s1"}}, "alignment": None}
    a = make_graph(story, panels, ids(engine=kolors, preview=False, lora=lora1, scorer=scorer))
    b = make_graph(story, panels, ids(engine=kolors, preview=False, lora=lora2, scorer=scorer))
    renders = {str(n.id) for n in a.of_kind("render")}
    assert {"dataset", "lora"} | renders <= changed(a, b)
    assert len(a.of_kind("score")) == 8 and a.node("lora").deps == (NodeId("dataset"),)

    new_weights = {"aesthetic": {"model": "m", "weights": {"fingerprint": "s2"}}, "alignment": None}
    c = make_graph(story, panels, ids(engine=kolors, preview=False, lora=lora1, scorer=new_weights))
    diff = changed(a, c)
    assert {str(n.id) for n in a.of_kind("score")} <= diff and not renders & diff and "lora" not in diff

    weights = make_graph(story, panels, ids(engine={**kolors, "files": "w2"}, preview=False, lora=lora1, scorer=scorer))
    assert {"lora"} | renders <= changed(a, weights)  # training reads the base weights too


def test_candidates_render_each_seed_with_kolors(loaded):
    story, panels = loaded
    more = [dataclasses.replace(panels[0], candidates=3)] + panels[1:]
    graph = make_graph(story, more, ids(engine={"name": "kolors"}, preview=False))
    assert [str(n.id) for n in graph.of_kind("render") if n.id.panel == 1] == [
        "render/01/seed-1", "render/01/seed-2", "render/01/seed-3"]
    # the preview engine draws only candidate 1: nothing could choose among drafts
    assert len([n for n in make_graph(story, more, ids()).of_kind("render") if n.id.panel == 1]) == 1


def test_key_is_hash_of_canonical_inputs(loaded):
    story, panels = loaded
    node = make_graph(story, panels, ids()).node("render/01/seed-1")
    assert node.key == digest({"kind": "render", "inputs": node.inputs})
    assert node.inputs["prompt"] == panels[0].prompt and "caption" not in node.inputs


def test_graph_keys_do_not_depend_on_where_the_project_is(loaded, tmp_path):
    story, panels = loaded
    moved = make_project(tmp_path / "elsewhere" / "project")
    story2, panels2 = api.load(story_path(moved))
    assert keys(make_graph(story, panels, ids())) == keys(make_graph(story2, panels2, ids()))
