"""`kolorsc build`, `plan` and `cache` from the command line: output, JSON and exit codes."""

from __future__ import annotations

import json



from _cli_fixtures import run
from _build_fixtures import STORY, make_project, story_path


def test_build_plan_and_cache_commands(tmp_path):
    project = make_project(tmp_path / "project")
    cache = tmp_path / "cache"

    planned = run("plan", story_path(project), "--cache-dir", cache)
    assert planned.exit_code == 0
    assert "to-run   render/01/seed-1       new node" in planned.output

    built = run("build", story_path(project), "--cache-dir", cache, "--json")
    assert built.exit_code == 0, built.output
    summary = json.loads(built.output)
    assert summary["ok"] and summary["counts"]["built"] == 1
    story = summary["stories"][0]
    assert story["ran"]["render"] == 8 and story["preview"] is True
    assert story["scores"]["gate"] == "UNKNOWN" and "not computed" in story["scores"]["note"]
    assert (project / "build" / STORY / "storyboard.pdf").is_file()

    again = run("build", story_path(project), "--cache-dir", cache)
    assert again.exit_code == 0 and "up-to-date (nothing to run" in again.output
    dry = run("build", story_path(project), "--cache-dir", cache, "--dry-run")
    assert "cached   render/08/seed-8" in dry.output

    info = run("cache", "info", "--cache-dir", cache, "--json")
    assert json.loads(info.output)["entries"] == 30  # 8 renders, 8 selects, 8 panels, 6 story outputs

    gc = run("cache", "gc", "--cache-dir", cache, "--keep", project / "stories", "--older-than", "0")
    assert gc.exit_code == 0 and gc.output.startswith("removed 0 entries")


def test_invalid_story_exits_2_and_missing_path_is_reported(tmp_path):
    project = make_project(tmp_path / "project", stories=())
    bad = project / "stories" / "bad.yaml"
    bad.write_text("kolorsc: 1\nid: Bad Id\n", "utf-8")
    result = run("build", bad, "--cache-dir", tmp_path / "cache", "--quiet")
    assert result.exit_code == 2
    assert "bad.yaml" in result.output and "invalid" in result.output
