"""Prompt compilation: the eight panels, merging rules, normalisation, template errors and the sandbox."""

from __future__ import annotations

from pathlib import Path

import pytest

from _spec_fixtures import REPO, edit, line_of, story_text, write_story
from kolorsc.errors import SpecError
from kolorsc.prompts import Panel, compile_story, merge_negatives, normalise, template_environment
from kolorsc.spec import load_story


def compile_text(proj: Path, text: str) -> list[Panel]:
    write_story(proj, text)
    return compile_story(load_story(Path("stories/s.yaml")))


def errors_of(proj: Path, text: str):
    with pytest.raises(SpecError) as info:
        compile_text(proj, text)
    return info.value.diagnostics


# --- the compiled panels ------------------------------------------------------------------


def test_classroom_dream_compiles_to_the_seed_prompts():
    panels = compile_story(load_story(REPO / "stories" / "classroom-dream.yaml"))
    assert [p.index for p in panels] == list(range(1, 9))
    p1 = panels[0]
    # the seed's first prompt, with the trigger first and the shot last
    assert p1.prompt == "古风，水墨画，一个黑色长发少女，红色长裙，坐在教室里，盯着黑板，深思，上半身"
    assert p1.caption == "女主正在上课" and p1.shot == "上半身"
    assert p1.negative == "照片，写实，3D渲染，油画，霓虹灯，低分辨率，文字，水印，丑陋，变形，嘈杂，模糊，低对比度"
    assert (p1.seed, p1.steps, p1.cfg, p1.width, p1.height, p1.candidates) == (1, 50, 4.0, 1024, 1024, 1)
    assert [p.seed for p in panels] == list(range(1, 9))  # defaults.seed 0 + panel number
    # the block-scalar scene: the line break became a separator
    assert panels[6].prompt == "古风，水墨画，一个黑色长发少女，红色长裙，坐在教室里，下课铃声响了，同学们开始走动，从睡梦中醒来，深思，上半身"
    assert panels[4].prompt.count("，") >= 6 and "一个英俊少年，白色长袍，一个黑色长发少女" in panels[4].prompt


def test_hero_dragon_scene_negatives_merge_without_duplicates():
    panels = compile_story(load_story(REPO / "stories" / "hero-dragon.yaml"))
    # style 低分辨率，文字覆盖，形态扭曲，低对比度，黑白图 + story 低分辨率，文字覆盖，形态扭曲 + scene 低对比度，黑白图
    assert panels[0].negative == "低分辨率，文字覆盖，形态扭曲，低对比度，黑白图"
    assert panels[5].negative.endswith("表情僵硬，光线不足")
    assert panels[7].prompt.startswith("高精度3D渲染") and "女勇者和公主骑着白马" in panels[7].prompt
    assert [p.seed for p in panels] == list(range(101, 109))


def test_overrides_and_defaults(proj):
    text = edit(story_text(), "    shot: 全身\n", "    shot: 全身\n    seed: 42\n    steps: 20\n    cfg: 7.5\n    size: [768, 1344]\n    candidates: 3\n")
    text = edit(text, "  seed: 0\n", "  seed: 10\n  candidates: 2\n  refine: {scale: 1.5, strength: 0.3}\n")
    panels = compile_text(proj, text)
    p4 = panels[3]
    assert (p4.seed, p4.steps, p4.cfg, p4.width, p4.height, p4.candidates) == (42, 20, 7.5, 768, 1344, 3)
    assert p4.candidate_seeds() == [42, 43, 44]
    p5 = panels[4]
    assert (p5.seed, p5.steps, p5.cfg, p5.width, p5.candidates) == (15, 50, 4.0, 1024, 2)
    assert p5.refine.scale == 1.5 and p5.refine.strength == 0.3 and p5.refine.steps is None


def test_trigger_and_shot_are_not_repeated_when_the_template_places_them(proj):
    text = edit(story_text(), '"{{ girl }}，坐在教室里，盯着黑板，深思"', '"{{ scene.shot }}，{{ girl }}，{{ style.trigger }}，看书"')
    p1 = compile_text(proj, text)[0]
    assert p1.prompt == "上半身，一个黑色长发少女，红色长裙，古风，水墨画，看书"


def test_template_sees_story_scene_and_character_fields(proj):
    text = edit(story_text(), '"{{ girl }}，坐在教室里，盯着黑板，深思"',
                '"{{ girl.name }}/{{ girl.key }}/{{ story.title }}/{{ story.id }}/{{ scene.index }}/{{ scene.caption }}/{{ style.name }}/{{ style }}"')
    p1 = compile_text(proj, text)[0]
    assert p1.prompt == "少女/girl/课堂上的梦/s/1/女主正在上课/水墨/古风，水墨画，上半身"


def test_scene_negative_is_a_template_too(proj):
    text = edit(story_text(), "    shot: 全身\n", "    shot: 全身\n    negative: \"不像{{ prince.name }}，低对比度\"\n")
    p4 = compile_text(proj, text)[3]
    assert p4.negative.endswith("低对比度，不像王子") and p4.negative.count("低对比度") == 1


def test_normalise_rules():
    assert normalise("  a ,, b ，，c\n\n d  e ") == "a, b, c, d e"
    assert normalise("古风，，水墨画 ,  少女\n  红裙") == "古风，水墨画，少女，红裙"
    assert normalise("，,") == ""
    assert normalise("　全角空格　少女　") == "全角空格 少女"  # U+3000 counts as whitespace
    assert merge_negatives("ugly, Blurry", "blurry，模糊", "模糊, ugly") == "ugly，Blurry，模糊"
    assert merge_negatives("", "a, b", "b , c") == "a, b, c"


# --- template errors name the scene and the line ---------------------------------------------


def test_undefined_name_with_hint_and_position(proj):
    text = edit(story_text(), "{{ prince }}，骑着白马", "{{ prnce }}，骑着白马")
    (d,) = errors_of(proj, text)
    line = line_of(text, "{{ prnce }}")
    assert d.format() == (f'stories/s.yaml:{line}:14: scenes[3].prompt: undefined name "prnce" in the prompt '
                          'of scene 4 (did you mean "prince"?)')


def test_every_template_error_of_the_story_is_reported(proj):
    text = edit(story_text(), "{{ prince }}，骑着白马", "{{ prnce }}，骑着白马")
    text = edit(text, "{{ girl }}，站在路边", "{{ girl.age }}，站在路边")
    text = edit(text, "{{ girl }}，坐在教室里，盯着黑板，认真上课", "{% for %}")
    got = [(d.path, d.message.split(" in the ")[0]) for d in errors_of(proj, text)]
    assert got == [
        ("scenes[2].prompt", '"girl" has no field "age"'),
        ("scenes[3].prompt", 'undefined name "prnce"'),
        ("scenes[7].prompt", "template syntax error: Expected an expression, got 'end of statement block'"),
    ]


def test_error_on_a_later_line_of_a_block_template(proj):
    text = edit(story_text(), "      同学们开始走动，从睡梦中醒来，深思", "      同学们开始走动，{{ teacher }}，深思")
    (d,) = errors_of(proj, text)
    assert (d.line, d.col) == (line_of(text, "{{ teacher }}"), 7)


def test_render_time_error_points_at_its_line(proj):
    text = edit(story_text(), "      同学们开始走动，从睡梦中醒来，深思", "      同学们开始走动，{{ 1 // 0 }}")
    (d,) = errors_of(proj, text)
    assert d.line == line_of(text, "{{ 1 // 0 }}") and "ZeroDivisionError" in d.message


@pytest.mark.parametrize(
    "template, words",
    [
        ("{{ ''.__class__.__mro__ }}", "template not allowed: access to attribute '__class__'"),
        ("{{ girl.__class__ }}", 'has no field "__class__"'),
        ("{{ style.trigger.__class__.__base__.__subclasses__() }}", "template not allowed"),
        ("{{ range.__globals__ }}", "template not allowed"),
        ("{{ 'x' * 100000000000 }}", "over budget: a value would grow beyond 20,000 characters"),
        ("{{ 2 ** 100000 }}", "over budget: a number would grow beyond 1024 bits"),
        ("{{ '%s' % girl }}", "%-formatting is not available"),
        ("{{ range(1000000) | join }}", "range() is limited"),
        ("{{ girl | random }}", "No filter named 'random'"),
        ("{{ lipsum() }}", 'undefined name "lipsum"'),
        ("{% macro m() %}{{ m() }}{% endmacro %}{{ m() }}", "{% macro %} is not allowed"),
        ("{% include 'x' %}", "{% include %} is not allowed"),
        ("{% for a in range(9) %}{% for b in range(9) %}{% for c in range(9) %}x{% endfor %}{% endfor %}{% endfor %}",
         "loops nested more than 2 deep"),
        ("{% set x = 'y' %}" * 11, "more than 10 {% set %}"),
        ("{{ [].append(1) }}", "template not allowed"),
        ("{{ '{:>999999999}'.format(1) }}", "str.format is not available"),
        ("{{ style.trigger | replace('', 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx') | replace('', 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx') }}", "grow beyond"),
    ],
)
def test_sandbox_refuses_python_internals_and_blowups(proj, template, words):
    text = edit(story_text(), '"{{ girl }}，坐在教室里，盯着黑板，深思"', '"' + template.replace('"', '\\"') + '"')
    (d,) = errors_of(proj, text)
    assert d.path == "scenes[0].prompt" and words in d.message, d.format()


def test_one_environment_factory_is_sandboxed_and_strict():
    from jinja2 import StrictUndefined
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = template_environment()
    assert isinstance(env, ImmutableSandboxedEnvironment)
    assert env.undefined is StrictUndefined and not env.autoescape
    assert env.from_string("{{ a | upper }}<b>").render(a="x&y") == "X&Y<b>"


def test_direct_substitution_gives_the_same_panels_as_jinja(monkeypatch):
    import kolorsc.spec.templates as templates

    files = [*sorted((REPO / "stories").glob("*.yaml")), *sorted((REPO / "tests" / "acceptance" / "valid").glob("*.yaml"))]
    fast = {f: compile_story(load_story(f)) for f in files}
    monkeypatch.setattr(templates, "_render_simple", lambda *a: templates._NOT_SIMPLE)
    slow = {f: compile_story(load_story(f)) for f in files}
    assert fast == slow


def test_direct_substitution_reports_like_jinja(proj, monkeypatch):
    import kolorsc.spec.templates as templates

    text = edit(story_text(), "{{ prince }}，骑着白马", "{{prnce}}，{{ girl.age }}骑着白马")
    fast = [d.format() for d in errors_of(proj, text)]
    monkeypatch.setattr(templates, "_render_simple", lambda *a: templates._NOT_SIMPLE)
    slow = [d.format() for d in errors_of(proj, text)]
    assert fast == slow and len(fast) == 2


def test_trigger_written_with_other_commas_is_not_added_twice(proj):
    text = edit(story_text(), '"{{ girl }}，坐在教室里，盯着黑板，深思"', '"古风, 水墨画, {{ girl }}"')
    assert compile_text(proj, text)[0].prompt == "古风，水墨画，一个黑色长发少女，红色长裙，上半身"
