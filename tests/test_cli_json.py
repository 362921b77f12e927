"""Machine-readable output (issue 12): `--json` on every command, one shape for diagnostics
({file, line, col, path, severity, message, hint}) with paths relative to the project root,
a JSON error object on stdout for bad input, and `check --format github` annotations."""

from __future__ import annotations

import json

import click
import pytest
from _cli_fixtures import run
from _spec_fixtures import edit, line_of, story_text, write_story
from click.testing import CliRunner

from kolorsc.cli import main

DIAGNOSTIC_KEYS = ["file", "line", "col", "path", "severity", "message", "hint"]
# commands whose output is already one machine-readable document (schema) or a stream (none)
NO_JSON = {"schema"}


def _leaves(group: click.Group, prefix=()):
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            yield from _leaves(command, prefix + (name,))
        else:
            yield prefix + (name,), command


def test_every_command_has_json():
    missing = [" ".join(path) for path, command in _leaves(main)
               if path[-1] not in NO_JSON and not any("--json" in p.opts for p in command.params)]
    assert missing == []


def test_check_json_has_one_shape_and_paths_relative_to_the_project_root(proj, tmp_path, monkeypatch):
    text = edit(story_text(), "  cfg: 4", "  cfg: four")
    write_story(proj, text, "bad.yaml")
    write_story(proj, edit(story_text(), "女主正在上课", "女主正在上课\U000f0000"), "tofu.yaml")
    monkeypatch.chdir(tmp_path)  # from outside the project: names are still relative to its root
    result = run("check", proj / "stories", "--json")
    assert result.exit_code == 2
    doc = json.loads(result.output)
    assert doc["ok"] is False and doc["counts"] == {"files": 5, "invalid": 1, "problems": 1, "warnings": 1}
    assert {f["file"] for f in doc["files"]} >= {"stories/bad.yaml", "stories/classroom-dream.yaml"}
    error, warning = doc["diagnostics"]
    assert list(error) == DIAGNOSTIC_KEYS
    assert error == {"file": "stories/bad.yaml", "line": line_of(text, "cfg: four"), "col": 8, "path": "defaults.cfg",
                     "severity": "error", "message": 'expected number, got "four"', "hint": None}
    assert warning["severity"] == "warning" and (warning["file"], warning["path"]) == ("stories/tofu.yaml", "scenes[0].caption")
    assert warning["message"].startswith("no installed font has a glyph")  # the severity says warning, not the text
    assert run("check", proj / "stories", "--format", "json").output == result.output


def test_check_format_github_annotates_lines(proj):
    text = edit(story_text(), "  cfg: 4", "  cfg: four")
    write_story(proj, text, "bad.yaml")
    write_story(proj, edit(story_text(), "女主正在上课", "女主正在上课\U000f0000"), "tofu.yaml")
    result = run("check", "stories", "--format", "github")
    assert result.exit_code == 2
    lines = result.output.splitlines()
    assert lines[0] == (f"::error file=stories/bad.yaml,line={line_of(text, 'cfg: four')},col=8,"
                        'title=kolorsc check%3A defaults.cfg::expected number, got "four"')
    assert lines[1].startswith("::warning file=stories/tofu.yaml,line=") and "U+F0000" in lines[1]
    assert lines[-1] == "5 files checked, 1 invalid, 1 problem, 1 warning"


@pytest.mark.parametrize("args, code, kind", [
    (["prompts", "stories/nope.yaml"], 2, "SpecError"),
    (["plan", "stories/nope.yaml"], 2, None),
    (["bundle", "verify", "nope.zip"], 2, "UsageError"),
    (["init", "月光下的小狐狸"], 2, "UsageError"),
    (["cache", "gc", "--older-than", "0"], 2, "UsageError"),
])
def test_bad_input_with_json_prints_a_json_error_on_stdout(proj, args, code, kind):
    result = CliRunner(mix_stderr=False).invoke(main, [*args, "--json"]) if _mix_stderr_supported() else \
        CliRunner().invoke(main, [*args, "--json"])
    assert result.exit_code == code
    doc = json.loads(result.stdout)
    assert doc["ok"] is False
    if kind is not None:
        assert doc["error"]["type"] == kind and doc["exit_code"] == code


def _mix_stderr_supported() -> bool:
    import inspect

    return "mix_stderr" in inspect.signature(CliRunner.__init__).parameters


def test_prompts_json_error_carries_the_diagnostics(proj):
    text = edit(story_text(), "  cfg: 4", "  cfg: four")
    write_story(proj, text)
    doc = json.loads(run("prompts", "stories/s.yaml", "--json").output)
    (d,) = doc["diagnostics"]
    assert (d["file"], d["line"], d["path"]) == ("stories/s.yaml", line_of(text, "cfg: four"), "defaults.cfg")


def test_cache_gc_lists_what_it_would_remove_and_asks_before_emptying(proj, tmp_path):
    cache = tmp_path / "cache"
    assert run("build", "stories/classroom-dream.yaml", "--cache-dir", cache, "-q").exit_code == 0
    refused = run("cache", "gc", "--cache-dir", cache, "--older-than", "0")
    assert refused.exit_code == 2 and "--force" in refused.output
    listed = run("cache", "gc", "--cache-dir", cache, "--older-than", "0", "--dry-run")
    paths = [line.strip() for line in listed.output.splitlines()[:-1]]
    assert len(paths) == 30 and all(p.startswith("objects/") for p in paths)
    assert listed.output.splitlines()[-1].startswith("would remove 30 entries")
    doc = json.loads(run("cache", "gc", "--cache-dir", cache, "--older-than", "0", "--dry-run", "--json").output)
    assert doc["dry_run"] and sorted(doc["paths"]) == sorted(paths)
    assert json.loads(run("cache", "info", "--cache-dir", cache, "--json").output)["entries"] == 30  # nothing removed
    forced = run("cache", "gc", "--cache-dir", cache, "--older-than", "0", "--force")
    assert forced.exit_code == 0 and forced.output.startswith("removed 30 entries")


def test_models_list_and_verify_json(tmp_path):
    listed = json.loads(run("models", "list", "--models-dir", tmp_path, "--json").output)
    assert listed["ok"] and {m["name"] for m in listed["models"]} >= {"kolors", "aesthetic"}
    assert all(m["present"] is False and m["missing"] for m in listed["models"])
    verified = run("models", "verify", "kolors", "--models-dir", tmp_path, "--json")
    assert verified.exit_code == 1
    doc = json.loads(verified.output)
    assert doc["ok"] is False and doc["models"]["kolors"]["ok"] is False
    assert all({"file", "ok", "problem"} == set(f) for f in doc["models"]["kolors"]["files"])
