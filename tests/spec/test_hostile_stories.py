"""Hostile stories (issue 14), each through the real CLI: templates that try to allocate
gigabytes or spin, values that are not text, float-for-int, NUL and control characters,
names too long in bytes, keys with line breaks, and the 256-token warning.

The denial-of-service cases run `kolorsc` in a subprocess capped at 512 MB of address
space and 20 s of CPU: before the fix they took gigabytes or minutes; a regression now
fails on its exit code, fast."""

from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner

from _cli_fixtures import run
from _hostile_fixtures import run_capped
from _spec_fixtures import edit, story_text, write_story
from kolorsc.cli import main

FIRST_PROMPT = '"{{ girl }}，坐在教室里，盯着黑板，深思"'


def with_prompt(template: str) -> str:
    return edit(story_text(), FIRST_PROMPT, json.dumps(template, ensure_ascii=False))


def lines(output: str) -> list[str]:
    return output.splitlines()


# --- denial of service from a small story: capped subprocess, exit 2 in well under a second ---

LONG_LOOK = "长发" * 9_000  # 18,000 characters, within the 20,000 a look may have


@pytest.mark.parametrize(
    "template, words",
    [
        ("{{ girl }}" * 1_500, "would be 27,000,000 characters long (limit 20,000)"),  # fast path
        ("{{ ((((10**64)**64)**64)**64)**64 }}", "a number would grow beyond 1024 bits"),
        ("{{ 10**300 * 10**300 }}", "a number would grow beyond 1024 bits"),
        ("{{ girl|replace('长', girl.look) }}", "a value would grow beyond 20,000 characters"),
        ("{{ girl.look.replace('', girl.look) }}", "a value would grow beyond 20,000 characters"),
        ("{{ girl ~ girl ~ girl }}", "a value would grow beyond 20,000 characters"),
        ("{% for i in range(100) %}{% for j in range(100) %}{{ girl }}{% endfor %}{% endfor %}",
         "the rendered text would grow beyond 20,000 characters"),
        ("{% set x %}{% for i in range(100) %}{% for j in range(100) %}{{ girl.look ~ '!' }}{% endfor %}"
         "{% endfor %}{% endset %}{{ x|length }}", "template over budget"),
        ("{% for c in girl.look %}{% for d in girl.look %}{% endfor %}{% endfor %}", "do too much work"),
        ("{% for i in range(100) %}{% for j in range(100) %}{{ girl.look|list|sort|length }}{% endfor %}"
         "{% endfor %}", "do too much work"),
        ("{{ ([girl.look] * 1000)|join }}", "a value would grow beyond 20,000 characters"),
        ("{{ 'x'.center(10**9) }}", "str.center() is not available"),
        ("{{ (2).to_bytes(10**9, 'big') }}", "int.to_bytes() is not available"),
        ("{{ girl.look.upper().lower()|join }}" * 500, "more than 500 pieces of template code"),  # parsing alone: 3 s
    ],
)
def test_templates_that_would_blow_up_fail_fast_at_their_line(proj, template, words):
    text = edit(story_text(), "look: 一个黑色长发少女，红色长裙", f"look: {LONG_LOOK}")
    write_story(proj, edit(text, FIRST_PROMPT, json.dumps(template, ensure_ascii=False)))
    result = run_capped(["check", "stories/s.yaml"], proj, memory_mb=512, cpu_seconds=20)
    assert result.returncode == 2, result.output[-2000:]
    (diag,) = [line for line in lines(result.stdout) if "scenes[0].prompt" in line]
    assert diag.startswith("stories/s.yaml:29:") and words in diag, diag
    assert "Traceback" not in result.output


def test_a_look_longer_than_the_limit_is_refused_so_the_preview_build_cannot_hang(proj, tmp_path):
    write_story(proj, edit(story_text(), "look: 一个黑色长发少女，红色长裙", "look: " + "长" * 100_000))
    checked = run_capped(["check", "stories/s.yaml"], proj, memory_mb=512)
    assert checked.returncode == 2 and "characters.girl.look: too long (100000 characters; at most 20000)" in checked.stdout
    built = run_capped(["build", "stories/s.yaml", "--cache-dir", str(tmp_path / "cache")], proj, memory_mb=1024)
    assert built.returncode == 2 and "too long" in built.output and "Traceback" not in built.output


# --- values that are not text or numbers are errors, not reprs ------------------------------------


@pytest.mark.parametrize(
    "template, words",
    [
        ("{{ range }}", "not the function 'range'"),
        ("{{ 'a'.upper }}", "not the function 'upper'"),
        ("{{ [girl]|map(attribute='__class__')|list }}", "not a list"),
        ("{{ [girl]|map(attribute='__class__')|join }}", "access to attribute '__class__'"),
        ("{{ girl.look is string }}", "not true/false"),
        ("{{ (-8) ** 0.5 }}", "not a real number"),
    ],
)
def test_non_text_values_are_errors(proj, template, words):
    write_story(proj, with_prompt(template))
    result = run("check", "stories/s.yaml")
    assert result.exit_code == 2 and words in result.output, result.output
    assert "0x" not in result.output  # no memory address ever reaches a message or a prompt


def test_prompts_command_never_shows_a_repr(proj):
    write_story(proj, with_prompt("{{ girl }} {{ [1, 2]|join('+') }} {{ scene.index * 2 }}"))
    result = run("prompts", "stories/s.yaml", "--json")
    assert result.exit_code == 0
    assert json.loads(result.output)[0]["prompt"] == "古风，水墨画，一个黑色长发少女，红色长裙 1+2 2，上半身"


# --- caption templates: same sandbox, same rules ---------------------------------------------------

STYLE = """kolorsc: 1
id: caps
name: caps
trigger: t
lora:
  train: {{rank: 4}}
  dataset:
    source: local
    path: ../data
    caption: template
    caption_text: {caption}
"""


@pytest.mark.parametrize(
    "caption, words",
    [
        ("\"{% include 'x' %}\"", "{% include %} is not allowed in caption templates"),
        ("\"{% import 'x' as y %}\"", "{% import %} is not allowed in caption templates"),
        ("\"{% extends 'x' %}\"", "{% extends %} is not allowed in caption templates"),
        ("\"{% macro m() %}{{ m() }}{% endmacro %}{{ m() }}\"", "{% macro %} is not allowed in caption templates"),
        ("\"{{ stem * 100000 }}\"", "a value would grow beyond 20,000 characters"),
        ("\"{{ stem.upper }}\"", "not the function 'upper'"),
        ("\"{{ stme }}\"", 'undefined name "stme"'),
    ],
)
def test_caption_templates_follow_the_prompt_rules(proj, caption, words):
    (proj / "data").mkdir()
    (proj / "styles" / "caps.yaml").write_text(STYLE.format(caption=caption), encoding="utf-8")
    result = run("check", "styles/caps.yaml")
    assert result.exit_code == 2 and "lora.dataset.caption_text" in result.output and words in result.output, result.output


# --- float for int, NUL and control characters, byte-long names, line breaks in keys -------------


def test_integers_refuse_floats_at_check_time_and_plan_does_not_crash(proj):
    text = edit(story_text(), "  seed: 0", "  seed: 0.0\n  candidates: 1.0")
    write_story(proj, text)
    checked = run("check", "stories/s.yaml")
    assert checked.exit_code == 2
    assert "defaults.candidates: expected integer, got 1.0" in checked.output
    assert "defaults.seed: expected integer, got 0.0" in checked.output
    planned = CliRunner().invoke(main, ["plan", "stories/s.yaml"])
    assert planned.exit_code == 2 and "expected integer, got 1.0" in planned.output
    assert planned.exception is None or isinstance(planned.exception, SystemExit)


@pytest.mark.parametrize("command", ["check", "prompts", "plan"])
def test_nul_in_a_lora_path_or_a_dataset_path_is_a_diagnostic(proj, command):
    # a style that trains from a local folder whose path holds a NUL
    (proj / "styles" / "ink-wash.yaml").write_text(
        "kolorsc: 1\nid: ink-wash\nname: 水墨\ntrigger: 古风，水墨画\nnegative: 照片\nlora:\n  train: {rank: 4}\n"
        '  dataset: {source: local, path: "../data/ink\\0wash", caption: sidecar}\n', encoding="utf-8")
    inline = edit(story_text(), "style: ink-wash",
                  'style: {name: x, trigger: t, lora: {path: "../loras/a\\0.safetensors"}}')
    write_story(proj, story_text(), "a.yaml")
    write_story(proj, inline, "b.yaml")
    for story in ("stories/a.yaml", "stories/b.yaml"):
        result = CliRunner().invoke(main, [command, story])
        assert result.exit_code == 2, result.output
        assert "holds a control character (U+0000)" in result.output
        assert result.exception is None or isinstance(result.exception, SystemExit)


@pytest.mark.parametrize("field, value", [("title", '"a\\x07b"'), ("team", '"x\\u2028y"'), ("id", '"ab\\n"')])
def test_control_characters_in_names_are_diagnostics(proj, field, value):
    text = story_text()
    old = next(line for line in text.splitlines() if line.startswith(f"{field}:"))
    write_story(proj, edit(text, old, f"{field}: {value}"))
    result = run("check", "stories/s.yaml")
    assert result.exit_code == 2 and f"{field}: holds a control character" in result.output


def test_a_nul_in_prompt_text_is_refused_but_line_breaks_are_fine(proj):
    write_story(proj, with_prompt("{{ girl }}\n坐在教室里\t深思"))
    assert run("check", "stories/s.yaml").exit_code == 0
    write_story(proj, with_prompt("{{ girl }}\x00坐在教室里"))
    result = run("check", "stories/s.yaml")
    assert result.exit_code == 2 and "scenes[0].prompt: holds a control character (U+0000)" in result.output


def test_a_template_cannot_make_a_control_character_either(proj):
    write_story(proj, with_prompt("{{ girl }}{{ '\\x00' }}"))
    result = run("check", "stories/s.yaml")
    assert result.exit_code == 2 and "the template renders a control character (U+0000)" in result.output


def test_a_team_of_64_emoji_fails_check_not_the_build(proj, tmp_path):
    # written over the story itself: a copy beside it would take another id (write_story), and
    # the byte counts below are those of the id classroom-dream
    write_story(proj, edit(story_text(), "team: kolorsc", "team: " + "🐉" * 64), "classroom-dream.yaml")
    result = run("check", "stories/classroom-dream.yaml")
    assert result.exit_code == 2
    assert "team: makes the bundle's file name 295 bytes long; file names may have 241" in result.output
    fits = edit(story_text(), "team: kolorsc", "team: " + "🐉" * 40)  # 160 bytes: the name is 216
    write_story(proj, fits, "classroom-dream.yaml")
    assert run("check", "stories/classroom-dream.yaml").exit_code == 0
    built = run_capped(["build", "stories/classroom-dream.yaml", "--cache-dir", str(tmp_path / "cache"), "-q"], proj,
                       memory_mb=2048, cpu_seconds=120, timeout=180)
    assert built.returncode == 0, built.output[-1500:]
    assert (proj / "build" / "classroom-dream" / ("🐉" * 40 + "-可图Kolors训练-classroom-dream.zip")).is_file()


def test_a_key_ending_in_a_line_break_is_one_diagnostic_on_one_line(proj):
    write_story(proj, edit(story_text(), "  prince:\n", '  "prince\\n":\n'))
    result = run("check", "stories/s.yaml")
    assert result.exit_code == 2
    assert lines(result.output) == [
        'stories/s.yaml:16:3: characters["prince\\n"]: the key "prince\\n" holds a control character (U+000A) '
        "(keys are one line of printable text)",
        "1 file checked, 1 invalid, 1 problem",
    ]


# --- what Kolors actually reads: the 256-token warning -----------------------------------------


def test_check_warns_where_kolors_cuts_a_long_prompt(proj):
    from kolorsc.spec import tokens

    long = "{{ girl }}，" + "，".join(["坐在教室里盯着黑板深思"] * 40)
    write_story(proj, with_prompt(long))
    result = run("check", "stories/s.yaml")
    assert result.exit_code == 0  # a warning: the story is valid
    (warning,) = [line for line in lines(result.output) if "warning:" in line]
    assert warning.startswith("stories/s.yaml:29:14: warning: scenes[0].prompt: the compiled prompt of scene 1 is ")
    assert "Kolors reads 254" in warning and "cuts it after character" in warning
    exact = tokens.tokenizer_model() is not None
    assert ("about" in warning) is not exact
    assert lines(result.output)[-1] == "1 file checked, 0 invalid, 0 problems, 1 warning"


def test_without_the_tokenizer_the_count_is_an_estimate(proj, monkeypatch):
    from kolorsc.spec import tokens

    monkeypatch.setattr(tokens, "_processor", lambda: None)
    write_story(proj, with_prompt("{{ girl }}，" + "，".join(["坐在教室里盯着黑板深思"] * 40)))
    result = run("check", "stories/s.yaml")
    assert result.exit_code == 0 and "is about " in result.output and "install kolorsc[models]" in result.output
    write_story(proj, story_text())
    assert "warning" not in run("check", "stories/s.yaml").output


def test_the_token_count_is_diffsynths_kolors_tokenizer():
    """The SentencePiece model read directly gives exactly the tokens diffsynth's
    ChatGLMTokenizer gives (it is what Kolors encodes with), including the cut."""
    pytest.importorskip("diffsynth")
    from kolorsc.engines.kolors.encoding import MAX_LENGTH, tokenizer
    from kolorsc.spec import tokens

    assert tokens.tokenizer_model() is not None and MAX_LENGTH == tokens.MAX_TOKENS
    glm = tokenizer()
    texts = ["古风，水墨画，一个黑色长发少女，红色长裙，坐在教室里", "a  b   c </s> <unk> [gMASK] <|user|>",
             "emoji 🐉😀 ａｂｃ全角\t\n", "", "长" * 300, "watercolor, " * 120]
    for text in texts:
        enc = glm(text, padding="max_length", max_length=MAX_LENGTH, truncation=True)
        kept = [t for t, m in zip(enc["input_ids"], enc["attention_mask"]) if m][2:]
        count = tokens.count_tokens(text)
        assert count.exact and min(count.tokens, tokens.TEXT_TOKENS) == len(kept), text
        assert glm.decode(kept) == glm.decode(glm(text[: count.kept])["input_ids"][2:]), text


def test_refine_may_not_make_panels_over_the_pixel_budget(proj):
    text = edit(story_text(), "  size: [1024, 1024]", "  size: [2048, 2048]\n  refine: {scale: 4}")
    write_story(proj, text)
    result = run("check", "stories/s.yaml")
    assert result.exit_code == 2
    assert "defaults.refine.scale: refines panels to about 67 megapixels, over the 40-megapixel budget" in result.output
    write_story(proj, edit(story_text(), "  size: [1024, 1024]", "  size: [2048, 2048]\n  refine: {scale: 3}"))
    assert run("check", "stories/s.yaml").exit_code == 0


def test_every_template_of_a_story_shares_one_budget(proj):
    heavy = "{% for i in range(100) %}{% for j in range(100) %}{{ girl.look|list|sort|length }}{% endfor %}{% endfor %}"
    text = edit(story_text(), "look: 一个黑色长发少女，红色长裙", f"look: {LONG_LOOK}")
    for old in ('"{{ girl }}，坐在教室里，盯着黑板，深思"', '"{{ girl }}，坐在教室里，趴在桌子上睡着了"'):
        text = edit(text, old, json.dumps(heavy))
    write_story(proj, text)
    result = run_capped(["check", "stories/s.yaml"], proj, memory_mb=512, cpu_seconds=20)
    assert result.returncode == 2
    assert [line.split(": ")[1] for line in lines(result.stdout) if "do too much work" in line] == [
        "scenes[0].prompt", "scenes[1].prompt"]


def test_a_file_of_tens_of_thousands_of_values_is_refused_before_validation(proj):
    chars = "".join(f"  k{i}: 长发\n" for i in range(20_000))
    write_story(proj, story_text().replace("characters:\n", "characters:\n" + chars))
    result = run_capped(["check", "stories/s.yaml"], proj, memory_mb=512, cpu_seconds=20)
    assert result.returncode == 2
    assert "stories/s.yaml:5:1: the file holds 20,0" in result.stdout and "limit 10,000" in result.stdout


def test_template_code_is_limited_per_story_too(proj):
    code = "{% if scene.index > 4 %}夜{% endif %}" * 45  # 495 tokens: within one template's 500
    text = story_text()
    for old in re.findall(r'    prompt: ("\{\{ .*")', text):  # the 7 one-line prompts
        text = text.replace(old, json.dumps(code), 1)
    text = text.replace("    shot: ", "    negative: " + json.dumps(code) + "\n    shot: ")  # and 8 negatives
    write_story(proj, text)
    result = run("check", "stories/s.yaml")
    assert result.exit_code == 2
    over = [line.split(": ")[1] for line in lines(result.output) if "more than 4,000 pieces of template code" in line]
    assert over[0] == "scenes[4].prompt"  # the ninth template of 495 tokens makes 4,455
