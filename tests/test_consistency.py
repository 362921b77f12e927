"""kolorsc.consistency: which characters a scene shows (from its template's names), the
scale of each reference per panel, who shares attention with whom, the character sheet."""

from __future__ import annotations

import pytest
from _spec_fixtures import edit, make_project, story_text, write_story

from kolorsc.consistency import (
    SHEET_INDEX,
    ReferenceUse,
    character_sheet_panel,
    generated_characters,
    panel_consistency,
    scene_characters,
    sheet_seed,
)
from kolorsc.spec import load_story
from kolorsc.spec.model import DEFAULT_SHEET_POSE

GIRL = "    look: 一个黑色长发少女，红色长裙\n"
PRINCE = "    look: 一个英俊少年，白色长袍\n"


@pytest.fixture
def proj(tmp_path):
    from PIL import Image

    root = make_project(tmp_path)
    Image.new("RGB", (32, 32), (200, 30, 30)).save(root / "stories" / "girl.png")
    return root


def story_with(proj, block: str = "", scene_edits=(), prince="generate"):
    text = edit(story_text(), GIRL, GIRL + "    reference: girl.png\n")
    if prince:
        text = edit(text, PRINCE, PRINCE + f"    reference: {prince}\n")
    if block:
        text = edit(text, "defaults:\n", block + "defaults:\n")
    for old, new in scene_edits:
        text = edit(text, old, new)
    return load_story(write_story(proj, text))


def test_scene_characters_come_from_the_template_names(proj):
    story = story_with(proj)
    assert [scene_characters(story, s) for s in story.scenes] == [
        ("girl",), ("girl",), ("girl",), ("prince",), ("girl", "prince"), ("girl", "prince"), ("girl",), ("girl",)]
    from dataclasses import replace

    scene = story.scenes[0]
    for template, expected in [
        ("{{ prince.look }} and {{ girl.name }}", ("girl", "prince")),  # story order, attributes count
        ("{% for c in [prince] %}{{ c }}{% endfor %}", ("prince",)),
        ("{% if false %}{{ girl }}{% endif %}a lake", ("girl",)),  # named, even in a branch not taken
        ("{{ style }}, an empty room, {{ scene.caption }}", ()),
        ("{{ girl", ()),  # does not parse: names nothing (check reports it)
    ]:
        assert scene_characters(story, replace(scene, prompt=template)) == expected, template


def test_consistency_is_off_by_default(proj):
    story = story_with(proj)
    assert all(not pc.on and pc.references == () and pc.sharing is None for pc in panel_consistency(story))


def test_scales_resolve_scene_then_story_then_default(proj):
    story = story_with(proj, "consistency:\n  ip_adapter: {scale: 0.6, characters: {prince: 0.3}}\n", [
        ('"{{ prince }}，{{ girl }}，两个人坐在古桥上一起聊天，开心"\n',
         '"{{ prince }}，{{ girl }}，两个人坐在古桥上一起聊天，开心"\n    consistency: {ip_adapter: {scale: 0.2}}\n'),
        ('"{{ prince }}，{{ girl }}，两个人一起骑着马，穿行在樱花古道上"\n',
         '"{{ prince }}，{{ girl }}，两个人一起骑着马，穿行在樱花古道上"\n    consistency: {ip_adapter: {characters: {girl: 0}}}\n'),
        ('"{{ girl }}，坐在教室里，盯着黑板，认真上课"\n', '"{{ girl }}，坐在教室里，盯着黑板，认真上课"\n    consistency: {ip_adapter: false}\n'),
    ])
    girl = story.characters["girl"].reference.path
    refs = {pc.index: pc.references for pc in panel_consistency(story)}
    assert refs[1] == (ReferenceUse("girl", 0.6, girl),)
    assert refs[4] == (ReferenceUse("prince", 0.3, None, generate=True),)
    assert refs[5] == (ReferenceUse("girl", 0.2, girl), ReferenceUse("prince", 0.2, None, generate=True))  # scene scale over story's per-character
    assert refs[6] == (ReferenceUse("prince", 0.3, None, generate=True),)  # girl at 0: dropped, keyed as without it
    assert refs[8] == ()
    assert refs[5][1].as_dict() == {"character": "prince", "scale": 0.2, "generate": True}


def test_a_scene_may_turn_the_adapter_on_alone(proj):
    story = story_with(proj, "", [('"{{ girl }}，坐在教室里，盯着黑板，认真上课"\n',
                                   '"{{ girl }}，坐在教室里，盯着黑板，认真上课"\n    consistency: {ip_adapter: true}\n')])
    refs = [pc.references for pc in panel_consistency(story)]
    assert refs[:7] == [()] * 7 and refs[7][0].scale == 0.5


def test_sharing_identity_and_rates(proj):
    story = story_with(proj, "consistency:\n  shared_attention: {identity: 2, group: 3, rate: 0.4}\n", [
        ('"{{ girl }}，坐在教室里，盯着黑板，深思"\n', '"{{ girl }}，坐在教室里，盯着黑板，深思"\n    consistency: {shared_attention: false}\n'),
        ('"{{ prince }}，骑着白马，从山间小路奔来"\n', '"{{ prince }}，骑着白马，从山间小路奔来"\n    consistency: {shared_attention: {rate: 0.1}}\n'),
    ])
    pcs = panel_consistency(story)
    assert pcs[0].sharing is None  # opted out
    assert {pc.sharing.identity for pc in pcs[1:]} == {(2, 3)}  # the first two sharing scenes
    assert [pc.sharing.rate for pc in pcs[1:]] == [0.4, 0.4, 0.1, 0.4, 0.4, 0.4, 0.4]
    assert pcs[1].is_identity(seed=2, first_seed=2) and not pcs[1].is_identity(seed=3, first_seed=2)
    assert not pcs[3].is_identity(seed=4, first_seed=4)
    assert pcs[2].sharing.as_dict() == {"identity": [2, 3], "group": 3, "rate": 0.4, "layers": "up", "from_step": 1}


def test_character_sheet_panel(proj):
    story = story_with(proj, "consistency:\n  ip_adapter: true\n")
    sheet = character_sheet_panel(story, "prince")
    assert sheet.index == SHEET_INDEX and sheet.caption == "王子"
    assert sheet.prompt == "古风，水墨画，一个英俊少年，白色长袍，" + DEFAULT_SHEET_POSE
    assert sheet.negative.startswith(story.style.negative.split("，")[0]) and "低对比度" in sheet.negative
    assert (sheet.width, sheet.height, sheet.steps, sheet.cfg, sheet.candidates, sheet.refine) == (1024, 1024, 50, 4.0, 1, None)
    assert sheet.seed == sheet_seed(story, "prince") != sheet_seed(story, "girl")
    assert generated_characters(story) == ["prince"]
    # its own pose and seed; a story-level pose for the others
    posed = story_with(proj, "consistency:\n  ip_adapter: true\n  sheet: {pose: 全身}\n", [
        ("    reference: generate\n", "    reference: generate\n    sheet: {pose: 侧面站立, seed: 42}\n")])
    sheet = character_sheet_panel(posed, "prince")
    assert sheet.prompt.endswith("侧面站立") and sheet.seed == 42


def test_sheet_seed_is_stable_when_characters_change(proj):
    a = story_with(proj)
    b = story_with(proj, prince=None)
    assert sheet_seed(a, "girl") == sheet_seed(b, "girl")


def test_unused_sheets_are_not_generated(proj):
    story = story_with(proj)  # adapter off: nobody uses the prince's sheet
    assert generated_characters(story) == []


def test_render_key_inputs_only_when_on_and_with_what_decides_the_image(proj):
    from kolorsc.consistency import render_key_inputs
    from kolorsc.prompts import compile_story

    plain = story_with(proj)
    panels = {p.index: p for p in compile_story(plain)}
    pcs = {pc.index: pc for pc in panel_consistency(plain)}
    assert all(render_key_inputs(pcs[i], panels, pcs, {}) is None for i in pcs)

    story = story_with(proj, "consistency:\n  ip_adapter: true\n  shared_attention: {identity: 2}\n")
    panels = {p.index: p for p in compile_story(story)}
    pcs = {pc.index: pc for pc in panel_consistency(story)}
    sha = {"girl": "g" * 64, "prince": "p" * 64}
    five = render_key_inputs(pcs[5], panels, pcs, sha)
    assert five["references"] == [{"character": "girl", "scale": 0.5, "generate": False, "sha256": "g" * 64},
                                  {"character": "prince", "scale": 0.5, "generate": True, "sha256": "p" * 64}]
    assert [m["panel"] for m in five["sharing"]["identity"]] == [1, 2]
    assert five["sharing"]["identity"][0]["settings"] == panels[1].settings()
    assert five["sharing"]["identity"][1]["references"][0]["sha256"] == "g" * 64
    # a new prince picture changes the keys of the prince's panels only (the identity panels show the girl)
    moved = {**sha, "prince": "q" * 64}
    changed = [i for i in pcs if render_key_inputs(pcs[i], panels, pcs, sha) != render_key_inputs(pcs[i], panels, pcs, moved)]
    assert changed == [4, 5, 6]


def test_render_jobs_carry_pictures_and_identity_images(proj):
    import hashlib

    from kolorsc.engines.jobs import render_jobs
    from kolorsc.prompts import compile_story

    story = story_with(proj, "consistency:\n  ip_adapter: {scale: 0.4}\n  shared_attention: {identity: 2, group: 3}\n")
    panels = compile_story(story)
    pictures = {"girl": b"girl-png", "prince": b"prince-png"}
    jobs = render_jobs(panels, panel_consistency(story), pictures)
    assert sorted(jobs) == [(p.index, p.seed) for p in panels]
    five = jobs[(5, panels[4].seed)]
    assert [(r.character, r.scale, r.sha256) for r in five.references] == [
        ("girl", 0.4, hashlib.sha256(b"girl-png").hexdigest()), ("prince", 0.4, hashlib.sha256(b"prince-png").hexdigest())]
    assert [(m.panel.index, m.seed) for m in five.shared.identity] == [(1, panels[0].seed), (2, panels[1].seed)]
    assert five.shared.group == 3 and five.shared.identity[0].references[0].image == b"girl-png"
    off = render_jobs(panels, panel_consistency(story_with(proj)), pictures)
    assert all(not j.consistent for j in off.values())


def test_pictures_used_include_the_identity_panels(proj):
    from kolorsc.consistency import pictures_used

    story = story_with(proj, "consistency:\n  ip_adapter: true\n  shared_attention: {identity: [4]}\n", [
        ('"{{ girl }}，坐在教室里，盯着黑板，认真上课"\n', '"{{ girl }}，坐在教室里，盯着黑板，认真上课"\n    consistency: {ip_adapter: false}\n')])
    pcs = {pc.index: pc for pc in panel_consistency(story)}
    assert pictures_used(pcs[1], pcs) == ["girl", "prince"]  # its girl, and the prince of identity panel 4
    assert pictures_used(pcs[8], pcs) == ["prince"]  # no picture of its own, but it attends to panel 4
    off = {pc.index: pc for pc in panel_consistency(story_with(proj))}
    assert pictures_used(off[1], off) == []
