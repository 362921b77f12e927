"""`kolorsc plan` (issue 12): what changed, old → new, at the line that changed it; folders like
`build`; `--changed`; one JSON shape with `build --dry-run --json`."""

from __future__ import annotations

import json

from _cli_fixtures import run
from _build_fixtures import STORY, edit, make_project, story_path



def _line(path, text: str) -> int:
    return next(n for n, line in enumerate(path.read_text("utf-8").splitlines(), 1) if text in line)


def test_plan_names_old_and_new_values_and_the_line_that_changed_them(tmp_path, monkeypatch):
    project = make_project(tmp_path / "p", stories=(STORY, "hero-dragon"))
    cache = tmp_path / "cache"
    assert run("build", project / "stories", "--cache-dir", cache, "-q").exit_code == 0
    monkeypatch.chdir(project)
    story = story_path(project)
    edit(story, "    shot: 上半身\n", "    shot: 上半身\n    seed: 5\n")  # scene 1, which had seed 1
    edit(story, "style: ink-wash", "style: anime")
    seed_line, style_line = _line(story, "    seed: 5"), _line(story, "style: anime")
    rel = f"stories/{STORY}.yaml"

    result = run("plan", "stories", "--cache-dir", cache, "--changed")
    assert result.exit_code == 0
    lines = result.output.splitlines()
    render = next(line for line in lines if "render/01/" in line)
    assert render.split()[:2] == ["to-run", "render/01/seed-5"]
    assert f"seed 1 → 5 at {rel}:{seed_line}" in render
    assert f"prompt changed by style ink-wash → anime at {rel}:{style_line}" in render
    assert any(f"style ink-wash → anime at {rel}:{style_line}" in line for line in lines if "storyboard" in line)
    # --changed: nothing cached is listed; the unchanged story lists nothing but its header
    assert not any(line.strip().startswith("cached") for line in lines)
    (header,) = [line for line in lines if line.startswith("hero-dragon (engine preview):")]
    assert ", 0 to run," in header and lines[-1] == header

    full = run("plan", "stories", "--cache-dir", cache)
    assert any(line.strip().startswith("cached") for line in full.output.splitlines())


def test_plan_json_is_the_shape_of_build_dry_run_json(tmp_path, monkeypatch):
    project = make_project(tmp_path / "p")
    cache = tmp_path / "cache"
    assert run("build", project / "stories", "--cache-dir", cache, "-q").exit_code == 0
    edit(story_path(project), "steps: 50", "steps: 30")
    monkeypatch.chdir(tmp_path)  # paths in JSON are relative to the project root, wherever kolorsc runs
    planned = json.loads(run("plan", "p/stories", "--cache-dir", cache, "--json", "--changed").output)
    dry = json.loads(run("build", "p/stories", "--cache-dir", cache, "--dry-run", "--json", "--changed").output)
    for doc in (planned, dry):
        for story in doc["stories"]:
            story.pop("seconds")
    assert planned == dry
    (story,) = planned["stories"]
    assert story["path"] == f"stories/{STORY}.yaml" and story["status"] == "planned"
    renders = [n for n in story["nodes"] if n["kind"] == "render"]
    assert len(renders) == 8 and all(n["status"] == "to-run" for n in story["nodes"])
    (change,) = renders[0]["changes"]
    steps_line = _line(story_path(project), "steps: 30")
    assert change == {"what": "steps", "old": 50, "new": 30, "by": None, "file": f"stories/{STORY}.yaml",
                      "line": steps_line, "col": 10}
    assert renders[0]["loc"]["file"] == f"stories/{STORY}.yaml"


def test_plan_of_an_invalid_story_exits_2_with_json_diagnostics(tmp_path, monkeypatch):
    project = make_project(tmp_path / "p")
    edit(story_path(project), "  cfg: 4", "  cfg: four")
    monkeypatch.chdir(project)
    result = run("plan", f"stories/{STORY}.yaml", "--json")
    assert result.exit_code == 2
    (story,) = json.loads(result.output)["stories"]
    (d,) = story["diagnostics"]
    assert d == {"file": f"stories/{STORY}.yaml", "line": _line(story_path(project), "cfg: four"), "col": 8,
                 "path": "defaults.cfg", "severity": "error", "message": 'expected number, got "four"', "hint": None}
