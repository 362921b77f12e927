"""The story format's consistency parts: character `reference:` (a picture or `generate`),
story `consistency:` with its defaults, scene overrides, and every check the schema cannot do."""

from __future__ import annotations

from pathlib import Path

import pytest
from _spec_fixtures import edit, make_project, story_text, write_story

from kolorsc.errors import SpecError
from kolorsc.spec import check_paths, load_story
from kolorsc.spec.model import DEFAULT_SHEET_POSE, SharedAttention


@pytest.fixture
def proj(tmp_path):
    root = make_project(tmp_path)
    from PIL import Image

    (root / "stories" / "refs").mkdir()
    Image.new("RGB", (40, 60), (200, 30, 30)).save(root / "stories" / "refs" / "girl.png")
    Image.new("RGB", (40, 40), (20, 30, 200)).save(root / "stories" / "refs" / "prince.jpg", format="JPEG")
    return root


GIRL = "    look: 一个黑色长发少女，红色长裙\n"
PRINCE = "    look: 一个英俊少年，白色长袍\n"


def with_refs(text: str, girl: str = "refs/girl.png", prince: str | None = "generate", block: str = "") -> str:
    text = edit(text, GIRL, GIRL + f"    reference: {girl}\n")
    if prince:
        text = edit(text, PRINCE, PRINCE + f"    reference: {prince}\n")
    if block:
        text = edit(text, "defaults:\n", block + "\ndefaults:\n")
    return text


def messages(path: Path) -> list[str]:
    with pytest.raises(SpecError) as info:
        load_story(path)
    return [f"{d.line}:{d.col}: {d.path}: {d.message}" for d in info.value.diagnostics]


def test_references_and_defaults_load_into_the_model(proj):
    block = "consistency:\n  ip_adapter: true\n  shared_attention: true\n"
    story = load_story(write_story(proj, with_refs(story_text(), block=block)))
    girl, prince = story.characters["girl"].reference, story.characters["prince"].reference
    assert girl.path == (proj / "stories" / "refs" / "girl.png").resolve() and not girl.generate
    assert prince.generate and prince.path is None and prince.pose is None and prince.seed is None
    c = story.consistency
    assert c.ip_adapter.scale == 0.5 and c.ip_adapter.characters == {}
    assert c.shared_attention == SharedAttention()  # identity 2, group 4, rate 0.5, up, from step 1
    assert c.sheet_pose == DEFAULT_SHEET_POSE
    assert all(s.consistency is None for s in story.scenes)


def test_consistency_is_off_unless_asked_for(proj):
    story = load_story(write_story(proj, with_refs(story_text())))
    assert story.consistency.ip_adapter is None and story.consistency.shared_attention is None


def test_every_setting_and_scene_override(proj):
    block = ("consistency:\n"
             "  ip_adapter: {scale: 0.6, characters: {prince: 0.3}}\n"
             "  shared_attention: {identity: [1, 3], group: 5, rate: 0.4, layers: up+mid, from_step: 2}\n"
             "  sheet: {pose: 全身，纯白背景}\n")
    text = with_refs(story_text(), prince="generate", block=block)
    text = edit(text, PRINCE + "    reference: generate\n", PRINCE + "    reference: generate\n    sheet: {pose: 侧面, seed: 9}\n")
    text = edit(text, '    prompt: "{{ prince }}，骑着白马，从山间小路奔来"\n',
                '    prompt: "{{ prince }}，骑着白马，从山间小路奔来"\n'
                "    consistency: {ip_adapter: {scale: 0.2, characters: {girl: 0.1}}, shared_attention: {rate: 0.2}}\n")
    text = edit(text, '    prompt: "{{ girl }}，坐在教室里，盯着黑板，认真上课"\n',
                '    prompt: "{{ girl }}，坐在教室里，盯着黑板，认真上课"\n'
                "    consistency: {ip_adapter: false, shared_attention: false}\n")
    story = load_story(write_story(proj, text))
    c = story.consistency
    assert c.ip_adapter.scale == 0.6 and c.ip_adapter.characters == {"prince": 0.3}
    assert c.shared_attention == SharedAttention(identity=(1, 3), group=5, rate=0.4, layers="up+mid", from_step=2)
    assert c.sheet_pose == "全身，纯白背景"
    prince = story.characters["prince"].reference
    assert (prince.pose, prince.seed) == ("侧面", 9)
    s4, s8 = story.scenes[3].consistency, story.scenes[7].consistency
    assert (s4.ip_adapter, s4.ip_scale, s4.ip_characters, s4.shared_attention, s4.shared_rate) == (True, 0.2, {"girl": 0.1}, True, 0.2)
    assert (s8.ip_adapter, s8.shared_attention) == (False, False)


def test_reference_problems_point_at_the_line(proj, tmp_path):
    (proj / "stories" / "refs" / "notes.txt").write_text("not a picture")
    (proj / "stories" / "refs" / "cut.png").write_bytes((proj / "stories" / "refs" / "girl.png").read_bytes()[:60])
    outside = tmp_path / "outside.png"
    outside.write_bytes((proj / "stories" / "refs" / "girl.png").read_bytes())
    cases = {
        "refs/missing.png": 'reference "refs/missing.png" does not exist',
        "refs/notes.txt": 'reference "refs/notes.txt" is not a picture Pillow can read',
        "../../outside.png": 'path "../../outside.png" leaves the project folder',
    }
    for value, message in cases.items():
        got = messages(write_story(proj, with_refs(story_text(), girl=value, prince=None)))
        assert got == [f"16:16: characters.girl.reference: {message}"], value
    [cut] = messages(write_story(proj, with_refs(story_text(), girl="refs/cut.png", prince=None)))
    assert cut.startswith('16:16: characters.girl.reference: reference "refs/cut.png" cannot be read')


def test_picture_formats_and_bombs(proj):
    from PIL import Image

    from kolorsc.spec.consistency import picture_problem

    folder = proj / "stories" / "refs"
    Image.new("RGB", (8, 8)).save(folder / "a.gif")
    Image.new("RGB", (8, 8)).save(folder / "a.webp")
    Image.new("1", (8000, 6000)).save(folder / "huge.png")
    assert picture_problem(folder / "a.gif") == "is a GIF picture, not PNG, JPEG or WebP"
    assert picture_problem(folder / "a.webp") is None
    assert picture_problem(folder / "huge.png").startswith("is 8000x6000 pixels")


def test_checks_the_schema_cannot_express(proj):
    text = story_text()
    cases = [
        # sheet without generate
        (edit(text, GIRL, GIRL + "    sheet: {pose: 侧面}\n"),
         ["16:12: characters.girl.sheet: sheet is only used with `reference: generate`"]),
        # ip_adapter without any reference
        (edit(text, "defaults:\n", "consistency: {ip_adapter: true}\ndefaults:\n"),
         ["20:27: consistency.ip_adapter: ip_adapter is on but no character has a reference picture"]),
        # unknown character in the scales
        (with_refs(text, block="consistency:\n  ip_adapter: {characters: {prnce: 0.3}}\n"),
         ['23:29: consistency.ip_adapter.characters.prnce: unknown character "prnce"']),
        # a scene turning sharing on when the story has it off
        (edit(text, '    shot: 全身\n', '    shot: 全身\n    consistency: {shared_attention: true}\n'),
         ["40:37: scenes[3].consistency.shared_attention: shared_attention is off for the story, so a scene cannot turn it on"]),
        # identity and group
        (edit(text, "defaults:\n", "consistency: {shared_attention: {identity: 4, group: 4}}\ndefaults:\n"),
         ["20:54: consistency.shared_attention.group: group 4 leaves no room beside 4 identity panels"]),
        (edit(text, "defaults:\n", "consistency: {shared_attention: {identity: [1, 2, 3, 4, 5, 6, 7], group: 7}}\ndefaults:\n"),
         ["20:74: consistency.shared_attention.group: group 7 leaves no room beside 7 identity panels"]),
    ]
    for story, expected in cases:
        assert messages(write_story(proj, story)) == expected


def test_sharing_scenes_need_one_size_and_steps(proj):
    text = edit(story_text(), "defaults:\n", "consistency: {shared_attention: true}\ndefaults:\n")
    text = edit(text, '    shot: 全身\n', '    shot: 全身\n    size: [768, 1024]\n    steps: 30\n')
    got = messages(write_story(proj, text))
    assert got == [
        "41:11: scenes[3].size: shared attention renders panels together: size [768, 1024] differs from scene 1's [1024, 1024]",
        "42:12: scenes[3].steps: shared attention renders panels together: 30 steps differ from scene 1's 50",
    ]
    # the same scene opting out is fine
    text = edit(text, "    steps: 30\n", "    steps: 30\n    consistency: {shared_attention: false}\n")
    load_story(write_story(proj, text))


def test_identity_scene_must_share(proj):
    text = edit(story_text(), "defaults:\n", "consistency: {shared_attention: {identity: [1, 4]}}\ndefaults:\n")
    text = edit(text, '    shot: 全身\n', '    shot: 全身\n    consistency: {shared_attention: false}\n')
    assert messages(write_story(proj, text)) == [
        "20:44: consistency.shared_attention.identity: scene 4 is an identity panel but does not share attention"]


def test_schema_rejects_bad_values(proj):
    text = with_refs(story_text(), block="consistency:\n  ip_adapter: {scale: 1.5}\n  shared_attention: {layers: down}\n")
    got = messages(write_story(proj, text))
    assert any("consistency.ip_adapter" in m for m in got) and any("consistency.shared_attention" in m for m in got)


def test_check_reports_consistency_problems_and_never_imports_torch(proj):
    import subprocess
    import sys

    path = write_story(proj, with_refs(story_text(), girl="refs/missing.png", prince=None))
    report = check_paths([path])
    assert not report.ok and "does not exist" in report.diagnostics[0].message
    code = ("import sys; from kolorsc.spec import check_paths; r = check_paths([sys.argv[1]]);"
            "assert 'torch' not in sys.modules; print(r.ok)")
    ok = write_story(proj, with_refs(story_text(), block="consistency: {ip_adapter: true, shared_attention: true}\n"), "ok.yaml")
    out = subprocess.run([sys.executable, "-c", code, str(ok)], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"
