"""Character consistency in the build graph: which nodes a story with references, sheets or
shared attention gets, what goes into their keys, and that a story (or a panel) without
consistency keeps exactly the keys it had before the feature existed. Pure: graphs are made
from compiled example stories and compared."""

from __future__ import annotations

import dataclasses

import pytest
from _build_fixtures import edit, make_project, story_path, use_lora_file_style

from kolorsc import api
from kolorsc.build.graph import KINDS, Identities, LoraSource, NodeId, make_graph
from kolorsc.consistency import character_sheet_panel

STORY = "hero-dragon"  # hero in every panel, the dragon in 3 and 5, the princess in 7 and 8
DRAGON = "    look: 巨大的守护龙，鳞片闪耀\n"
PRINCESS = "    look: 公主，穿着破旧的礼服\n"
DRAGON_SHA = "d" * 64
ENGINE_REFS = {"code": "consistent-1", "ip_adapter": "adapter-files-1"}
ENGINE_SHARING = {"code": "consistent-1"}


def ids(preview=False, **kw) -> Identities:
    """Fixed identities (fake code and model identities), so keys depend on the story only."""
    base = dict(engine={"name": "preview" if preview else "kolors", "code": "e1"}, preview=preview,
                code={k: f"code-{k}" for k in KINDS}, fonts={"f.ttf": "f1"},
                scorer=None if preview else {"aesthetic": {"weights": "w1"}},
                lora=None if preview else LoraSource("file", 1.5, file_sha256="ab" * 32))
    if not preview:
        base.update(pictures={"dragon": DRAGON_SHA}, consistency={"references": ENGINE_REFS, "sharing": ENGINE_SHARING})
    base.update(kw)
    return Identities(**base)


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    project = make_project(tmp_path_factory.mktemp("graph-consistency") / "project",
                           stories=("classroom-dream", STORY))
    use_lora_file_style(project)
    return project


def load(project, name=STORY, *edits):
    path = story_path(project, name)
    original = path.read_text("utf-8")
    try:
        for old, new in edits:
            edit(path, old, new)
        return api.load(path)
    finally:
        path.write_text(original, "utf-8")


REFERENCES = ((DRAGON, DRAGON + "    reference: dragon.png\n"), (PRINCESS, PRINCESS + "    reference: generate\n"))
IP_ON = ("defaults:\n", "consistency:\n  ip_adapter: {scale: 0.5}\ndefaults:\n")


@pytest.fixture(scope="module")
def dragon_png(project):
    from PIL import Image

    Image.new("RGB", (32, 32), (200, 30, 30)).save(project / "stories" / "dragon.png")


def keys(graph, kinds=None) -> dict[str, str]:
    return {str(n.id): n.key for n in graph.nodes if kinds is None or n.kind in kinds}


# -- node ids ----------------------------------------------------------------------------------


def test_character_node_ids_print_parse_and_sort():
    sheet = NodeId("sheet", name="girl")
    assert str(sheet) == "sheet/girl" and NodeId.parse("sheet/girl") == sheet
    assert NodeId.parse("picture/prince_2") == NodeId("picture", name="prince_2")
    assert sheet.sibling("reference") == NodeId.parse("reference/girl")
    assert NodeId.parse("select/03") == NodeId("select", 3)  # a number is a panel, never a name
    for bad in ("render/girl", "select/girl", "sheet/2girl", "sheet/girl/seed-1"):
        with pytest.raises(ValueError):
            NodeId.parse(bad)
    mixed = [NodeId("render", 2, 2), sheet, NodeId("lora"), NodeId("reference", name="boy"), NodeId("render", 1, 1),
             NodeId("sheet", name="boy")]
    assert [str(n) for n in sorted(mixed)] == ["lora", "reference/boy", "render/01/seed-1", "render/02/seed-2",
                                                "sheet/boy", "sheet/girl"]


# -- stories without consistency: the keys main computed -------------------------------------

# Computed by main at e400fc5 (before consistency was wired into the build) with `ids()`'s
# fixed identities: the work that costs GPU time keeps its keys, so nobody's cache is lost.
MAIN_KEYS = {
    "classroom-dream/preview": {
        "render/01/seed-1": "1f5cd7da0a8c3b03", "render/02/seed-2": "b8568e514e400a6a",
        "render/05/seed-5": "f910dc8d2487571d", "render/08/seed-8": "5823b001f2504b47"},
    "classroom-dream/real": {
        "dataset": "4e5b53063ed2ba61", "lora": "a17dfd5e829f27a7", "render/01/seed-1": "4484d770c782112b",
        "render/05/seed-5": "0639266e15103a8b", "render/08/seed-8": "236194b92858dab3",
        "score/01/seed-1": "83fb64a6d265c9f9", "score/08/seed-8": "fb063da1c4d3f54b"},
    "hero-dragon/preview": {"render/03/seed-103": "aa4074767b407195", "render/07/seed-107": "0be766bf7b74f5a5"},
    "hero-dragon/real": {
        "lora": "438065e0aa7a2d30", "render/01/seed-101": "8cf2d6f2fb3c5d0f", "render/03/seed-103": "b3c9ff2632509038",
        "render/05/seed-105": "78f97b9d5d4481d4", "render/07/seed-107": "701a134469356bd3",
        "score/03/seed-103": "fbd7b26455d17ef1", "score/08/seed-108": "bbe8f0819744f296"},
}


@pytest.mark.parametrize("name", ["classroom-dream", STORY])
@pytest.mark.parametrize("preview", [True, False])
def test_keys_of_stories_without_consistency_are_the_ones_main_computed(project, name, preview):
    story, panels = load(project, name)
    lora = LoraSource("file", 1.5, file_sha256="ab" * 32) if name == STORY else LoraSource(
        "train", 2.0, dataset={"source": "generate", "x": 1})
    graph = make_graph(story, panels, ids(preview, lora=None if preview else lora, pictures={}, consistency={}))
    assert {n.kind for n in graph.nodes} & {"picture", "sheet", "reference"} == set()
    for node in graph.of_kind("render"):
        assert set(node.inputs) == {"prompt", "negative", "panel_seed", "seed", "settings", "base_model", "engine",
                                    "lora", "lora_scale", "code"}
    got = keys(graph)
    want = MAIN_KEYS[f"{name}/{'preview' if preview else 'real'}"]
    assert {i: got[i][:16] for i in want} == want


def test_references_without_the_switch_change_no_key(project, dragon_png):
    plain = make_graph(*load(project), ids())
    pictures_only = make_graph(*load(project, STORY, *REFERENCES), ids())  # pictures, but ip_adapter off
    assert keys(pictures_only) == keys(plain)


# -- references and sheets ----------------------------------------------------------------------


def test_a_reference_enters_exactly_the_renders_of_its_characters_panels(project, dragon_png):
    plain = make_graph(*load(project), ids())
    graph = make_graph(*load(project, STORY, *REFERENCES, IP_ON), ids())
    renders = {n.id.panel: n for n in graph.of_kind("render")}
    before = {n.id.panel: n for n in plain.of_kind("render")}
    assert [i for i in renders if renders[i].key != before[i].key] == [3, 5, 7, 8]  # the dragon's and the princess's

    sheet = graph.node("sheet/princess")
    three, seven = renders[3], renders[7]
    assert three.inputs["pictures"] == {"dragon": DRAGON_SHA} and three.inputs["consistency_engine"] == ENGINE_REFS
    assert three.inputs["ip_adapter"] == {"dragon": 0.5} and "shared_attention" not in three.inputs
    assert seven.inputs["pictures"] == {"princess": sheet.key}  # a generated picture is its sheet's key
    assert NodeId("picture", name="dragon") in three.deps and sheet.id in seven.deps
    assert not any(d.kind in ("picture", "sheet") for d in renders[1].deps)
    # the other inputs are the plain render's
    assert {k: v for k, v in three.inputs.items() if k in before[3].inputs} == before[3].inputs

    picture = graph.node("picture/dragon")
    assert picture.inputs == {"picture_sha256": DRAGON_SHA, "code": "code-picture"} and picture.output is None
    story = graph.story
    assert picture.loc == story.locs["characters.dragon.reference"]


def test_a_sheet_is_keyed_like_a_plain_render_of_the_character_alone(project, dragon_png):
    story, panels = load(project, STORY, *REFERENCES, IP_ON)
    graph = make_graph(story, panels, ids())
    sheet = graph.node("sheet/princess")
    panel = character_sheet_panel(story, "princess")
    settings = panel.settings()
    assert sheet.inputs == {
        "prompt": settings.pop("prompt"), "negative": settings.pop("negative"), "panel_seed": settings.pop("seed"),
        "seed": panel.seed, "settings": settings, "base_model": story.style.base_model, "engine": graph.engine,
        "lora": graph.node("lora").key, "lora_scale": 1.5, "code": "code-sheet"}
    assert sheet.deps == (NodeId("lora"),) and sheet.output == "characters/princess.png"
    assert graph.render_panel(sheet.id) == panel and "公主" in panel.prompt
    # the storyboard and the PDF show it; the scores, page and bundle do not
    assert graph.node("storyboard").inputs["sheets"] == {"princess": {"key": sheet.key, "name": "公主"}}
    assert "sheets" in graph.node("pdf").inputs and "sheets" not in graph.node("scores").inputs
    # run order: every dependency before its reader
    kinds = [n.kind for n in graph.nodes]
    assert kinds == sorted(kinds, key=KINDS.index)


def test_a_new_picture_or_sheet_changes_exactly_its_panels_render_keys(project, dragon_png):
    story, panels = load(project, STORY, *REFERENCES, IP_ON)
    graph = make_graph(story, panels, ids())
    other = make_graph(story, panels, ids(pictures={"dragon": "e" * 64}))
    renders = keys(graph, {"render"})
    assert sorted(i for i, k in keys(other, {"render"}).items() if renders[i] != k) == [
        "render/03/seed-103", "render/05/seed-105"]
    reseeded = load(project, STORY, *REFERENCES, IP_ON,
                    ("    reference: generate\n", "    reference: generate\n    sheet: {seed: 7}\n"))
    changed = make_graph(*reseeded, ids())
    assert changed.node("sheet/princess").key != graph.node("sheet/princess").key
    assert sorted(i for i, k in keys(changed, {"render"}).items() if renders[i] != k) == [
        "render/07/seed-107", "render/08/seed-108"]


def test_zero_scale_drops_the_picture_from_the_key(project, dragon_png):
    plain = make_graph(*load(project), ids())
    zero = make_graph(*load(project, STORY, *REFERENCES, ("defaults:\n", "consistency:\n  ip_adapter: {scale: 0}\n"
                                                                          "defaults:\n")), ids())
    assert keys(zero, {"render", "score"}) == keys(plain, {"render", "score"})


def test_reference_scores_and_selection_read_the_pictures(project, dragon_png):
    graph = make_graph(*load(project, STORY, *REFERENCES, IP_ON), ids())
    ref = graph.node("reference/dragon")
    assert ref.inputs == {"picture": DRAGON_SHA, "scorer": {"aesthetic": {"weights": "w1"}}, "code": "code-reference"}
    assert ref.deps == (NodeId("picture", name="dragon"),)
    assert graph.node("reference/princess").inputs["picture"] == graph.node("sheet/princess").key
    select = graph.node("select/03")
    assert select.inputs["characters"] == {"hero": [1, 2, 3, 4, 5, 6, 7, 8], "dragon": [3, 5], "princess": [7, 8]}
    assert set(select.inputs["references"]) == {"reference/dragon", "reference/princess"} <= {str(d) for d in select.deps}
    # without scorer weights' identity (no scores at all) there is nothing to compare
    unscored = make_graph(*load(project, STORY, *REFERENCES, IP_ON), ids(scorer=None))
    assert not unscored.of_kind("reference") and "characters" not in unscored.node("select/03").inputs


def test_missing_picture_identity_is_a_bug_not_a_key(project, dragon_png):
    with pytest.raises(ValueError, match="dragon"):
        make_graph(*load(project, STORY, *REFERENCES, IP_ON), ids(pictures={}))


# -- shared attention and the preview engine -----------------------------------------------------


def test_sharing_without_pictures_keys_the_identity_panels(project):
    shared = ("defaults:\n", "consistency:\n  shared_attention: {identity: 2}\ndefaults:\n")
    story, panels = load(project, STORY, shared)
    graph = make_graph(story, panels, ids())
    five = graph.node("render/05/seed-105")
    assert five.inputs["consistency_engine"] == ENGINE_SHARING and "pictures" not in five.inputs
    assert [m["panel"] for m in five.inputs["shared_attention"]["identity"]] == [1, 2] and "ip_adapter" not in five.inputs
    # editing an identity scene re-renders every sharing panel; another scene only itself
    first = dataclasses.replace(panels[0], prompt=panels[0].prompt + "，黄昏")
    fourth = dataclasses.replace(panels[3], prompt=panels[3].prompt + "，黄昏")
    before = keys(graph, {"render"})
    for edited, expected in (([first, *panels[1:]], 8), ([*panels[:3], fourth, *panels[4:]], 1)):
        after = keys(make_graph(story, edited, ids()), {"render"})
        assert sum(before[i] != after[i] for i in before) == expected


def test_preview_drafts_note_references_but_never_key_or_read_pictures(project, dragon_png):
    plain = make_graph(*load(project), ids(preview=True))
    graph = make_graph(*load(project, STORY, *REFERENCES, IP_ON), ids(preview=True))
    assert not graph.of_kind("picture") and not graph.of_kind("reference")
    assert [str(n.id) for n in graph.of_kind("sheet")] == ["sheet/princess"]  # drafted for the cover
    renders = {n.id.panel: n for n in graph.of_kind("render")}
    before = {n.id.panel: n for n in plain.of_kind("render")}
    assert [i for i in renders if renders[i].key != before[i].key] == [3, 5, 7, 8]
    assert set(renders[7].inputs) - set(before[7].inputs) == {"ip_adapter"}  # the note, not the picture
    assert renders[7].deps == ()


def test_the_per_panel_resolution_is_not_render_code():
    """kolorsc.consistency computes values that are render inputs already (scales, sharing, a
    sheet's prompt): an edit to it must not re-render every panel of every story, as it would
    if it were in the render stage's or the preview engine's code identity. What turns those
    values into engine jobs (kolorsc.engines.jobs) is code, and counts."""
    from kolorsc.codeid import closure

    for module in ("kolorsc.build.stages.render", "kolorsc.build.stages.sheet", "kolorsc.engines.preview"):
        assert "kolorsc.consistency" not in closure(module)
    assert "kolorsc.engines.jobs" in closure("kolorsc.build.stages.render")
