"""The story-format commands: check, prompts, init, schema; exit codes; no torch at start-up."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from _cli_fixtures import run
from _spec_fixtures import REPO, edit, line_of, story_text, write_story



def test_check_valid_collection_exits_0(proj):
    result = run("check", "stories", "styles/anime.yaml")
    assert result.exit_code == 0
    assert result.output == "4 files checked, 0 invalid, 0 problems\n"


def test_check_prints_one_line_per_problem_and_exits_2(proj):
    write_story(proj, edit(story_text(), "  cfg: 4", "  cfg: four"), "bad.yaml")
    write_story(proj, "", "empty.yaml")
    result = run("check", "stories")
    assert result.exit_code == 2
    lines = result.output.splitlines()
    assert lines[0].startswith("stories/bad.yaml:") and lines[0].endswith('defaults.cfg: expected number, got "four"')
    assert lines[1] == "stories/empty.yaml:1:1: file is empty (start from `kolorsc init NAME`)"
    assert lines[-1] == "5 files checked, 2 invalid, 2 problems"
    assert "Traceback" not in result.output


def test_check_warns_about_characters_no_font_can_draw(proj):
    text = edit(story_text(), "女主正在上课", "女主正在上课\U000f0000")
    write_story(proj, text, "tofu.yaml")
    result = run("check", "stories/tofu.yaml")
    assert result.exit_code == 0  # a warning: the build still works, with one empty box
    line = line_of(text, "\U000f0000")
    col = text.splitlines()[line - 1].index("\U000f0000") + 1
    assert result.output.splitlines()[0].startswith(f"stories/tofu.yaml:{line}:{col}: warning: scenes[0].caption: ")
    assert "U+F0000" in result.output
    assert result.output.splitlines()[-1] == "1 file checked, 0 invalid, 0 problems, 1 warning"
    # emoji and Extension B ideographs are drawn by the fallback faces: nothing to warn about
    write_story(proj, edit(story_text(), "女主正在上课", "女主正在上课🦊𠮷"), "tofu.yaml")
    assert run("check", "stories/tofu.yaml").output == "1 file checked, 0 invalid, 0 problems\n"


def test_check_needs_a_path():
    assert run("check").exit_code == 2


def test_prompts_table_and_json(proj):
    result = run("prompts", "stories/classroom-dream.yaml")
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[0].split() == ["#", "caption", "seed", "steps", "cfg", "size"]
    assert "女主正在上课" in result.output and "1024x1024" in result.output
    assert sum(1 for l in lines if l.strip().startswith("prompt:")) == 8
    data = json.loads(run("prompts", "--json", "stories/classroom-dream.yaml").output)
    assert len(data) == 8 and data[0]["index"] == 1 and data[0]["size"] == [1024, 1024]
    assert set(data[0]) >= {"caption", "prompt", "negative", "seed", "steps", "cfg", "size"}


def test_prompts_on_a_bad_story_prints_diagnostics_and_exits_2(proj):
    write_story(proj, edit(story_text(), "{{ prince }}，骑着白马", "{{ ''.__class__ }}"))
    result = run("prompts", "stories/s.yaml")
    assert result.exit_code == 2 and "template not allowed" in result.output and "Traceback" not in result.output


def test_init_writes_a_story_that_checks_and_refuses_to_overwrite(proj):
    result = run("init", "my-tale")
    assert result.exit_code == 0, result.output
    assert (proj / "stories" / "my-tale.yaml").is_file()
    assert run("check", "stories/my-tale.yaml").exit_code == 0
    assert run("prompts", "stories/my-tale.yaml").exit_code == 0
    again = run("init", "my-tale")
    assert again.exit_code == 2 and "refusing to overwrite" in again.output


def test_init_template_shows_consistency_and_checks_with_it_switched_on(proj):
    assert run("init", "my-tale").exit_code == 0
    text = (proj / "stories" / "my-tale.yaml").read_text(encoding="utf-8")
    assert "# reference: generate" in text and "# consistency:" in text
    on = (text.replace("    # reference: generate", "    reference: generate").replace("# consistency:", "consistency:")
          .replace("#   ip_adapter", "  ip_adapter").replace("#   shared_attention", "  shared_attention"))
    (proj / "stories" / "on.yaml").write_text(on.replace("id: my-tale", "id: with-consistency"), encoding="utf-8")
    from kolorsc.spec import load_story

    story = load_story(proj / "stories" / "on.yaml")
    assert story.consistency.ip_adapter is not None and story.consistency.shared_attention is not None
    assert story.characters["hero"].reference.generate


def test_init_in_an_empty_folder_writes_its_style_too(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run("init", "first", "--dir", "tales", "--style", "pastel", "--title", "第一个: 故事", "--team", "队")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "tales" / "styles" / "pastel.yaml").is_file()  # root is the story's folder
    assert run("check", "tales/first.yaml").exit_code == 0
    default = run("init", "second", "--dir", "more")
    assert default.exit_code == 0 and run("check", "more").exit_code == 0
    assert (tmp_path / "more" / "styles" / "anime.yaml").is_file()


def test_init_rejects_bad_names(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert run("init", "Bad Name").exit_code == 2
    assert run("init", "ok", "--team", "a/b").exit_code == 2
    assert not list(tmp_path.iterdir())


def test_schema_command_prints_the_published_files():
    for which in ("story", "style"):
        out = run("schema", which).output
        assert json.loads(out) == json.loads((REPO / "schemas" / f"{which}.schema.json").read_text(encoding="utf-8"))
    assert run("schema", "stroy").exit_code == 2


@pytest.mark.parametrize("args", [["--help"], ["check", "stories/classroom-dream.yaml"]])
def test_help_and_check_do_not_import_torch(args):
    code = (
        "import sys\n"
        "from kolorsc.cli import main\n"
        "try:\n"
        f"    main({args!r}, standalone_mode=False)\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = [m for m in ('torch', 'diffsynth', 'transformers', 'data_juicer', 'lightning', 'peft', 'PIL', 'reportlab')\n"
        "         if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert "HEAVY []" in out.stdout, out.stdout + out.stderr
