"""Bad input stops a build with exit 2 and says where (issue 12): two stories never write one
output folder, and a real build refuses a style whose local files are missing before any
work, pointing at the field's line."""

from __future__ import annotations

import json

from _cli_fixtures import run
from _build_fixtures import STORY, make_project, story_path, use_lora_file_style



def _id_line(path) -> int:
    return next(n for n, line in enumerate(path.read_text("utf-8").splitlines(), 1) if line.startswith("id: "))


def test_two_stories_with_one_id_in_one_build_are_both_invalid_and_nothing_is_written(tmp_path):
    project = make_project(tmp_path / "p")
    original = story_path(project)
    copy = project / "stories" / "copy.yaml"
    copy.write_text(original.read_text("utf-8"), "utf-8")
    line = _id_line(original)

    result = run("build", project / "stories", "--cache-dir", tmp_path / "cache", "--json")
    assert result.exit_code == 2
    stories = json.loads(result.output)["stories"]
    assert [s["status"] for s in stories] == ["invalid", "invalid"]
    got = [d for s in stories for d in s["diagnostics"]]
    assert [(d["file"], d["line"], d["col"], d["path"]) for d in got] == [
        ("stories/classroom-dream.yaml", line, 5, "id"), ("stories/copy.yaml", line, 5, "id")]
    assert got[0]["message"] == f'another story has the id "{STORY}" too: {copy}:{line}:5'
    assert not (project / "build" / STORY).exists()


def test_a_folder_holding_another_storys_outputs_is_not_overwritten(tmp_path):
    project = make_project(tmp_path / "p")
    cache = tmp_path / "cache"
    assert run("build", story_path(project), "--cache-dir", cache).exit_code == 0
    board = (project / "build" / STORY / "storyboard.png").read_bytes()

    copy = project / "stories" / "copy.yaml"  # a later, separate build of a copy with the same id
    copy.write_text(story_path(project).read_text("utf-8").replace("title: 课堂上的梦", "title: 另一个梦"), "utf-8")
    result = run("build", copy, "--cache-dir", cache)
    assert result.exit_code == 2
    assert (f"{copy}:{_id_line(copy)}:5: id: {project / 'build' / STORY}/ holds the outputs of "
            f"{story_path(project)}:{_id_line(copy)}:5, which has the id \"{STORY}\" too") in result.output
    assert (project / "build" / STORY / "storyboard.png").read_bytes() == board

    # the original renamed (its id with it): the copy may take the folder
    story_path(project).write_text(story_path(project).read_text("utf-8").replace(f"id: {STORY}", "id: renamed"),
                                   "utf-8")
    assert run("build", copy, "--cache-dir", cache).exit_code == 0
    assert (project / "build" / STORY / "storyboard.png").read_bytes() != board


def test_a_real_build_with_a_missing_lora_file_exits_2_at_the_field(tmp_path):
    project = make_project(tmp_path / "p", stories=("hero-dragon",))
    use_lora_file_style(project)  # styles/fairytale-3d.yaml names loras/fairytale-3d.safetensors; not written
    result = run("build", story_path(project, "hero-dragon"), "--engine", "kolors", "--models-dir",
                 tmp_path / "models", "--cache-dir", tmp_path / "cache")
    assert result.exit_code == 2
    style = project / "styles" / "fairytale-3d.yaml"
    assert f"{style}:8:9: lora.path: the LoRA file" in result.output
    assert "✗ hero-dragon: invalid" in result.output
    # the preview engine draws without the LoRA: the same story builds
    assert run("build", story_path(project, "hero-dragon"), "--cache-dir", tmp_path / "cache").exit_code == 0


def test_bad_input_found_by_a_stage_is_exit_2_not_1(tmp_path):
    """A local dataset whose every image is unreadable passes the file checks (the folder holds
    x.png) but the dataset stage finds no usable image: bad input, so the build exits 2."""
    from _build_fixtures import RealishEngine

    from kolorsc import api

    project = make_project(tmp_path / "p")
    style = project / "styles" / "ink-wash.yaml"
    text = style.read_text("utf-8")
    style.write_text(text[: text.index("    source: generate")] + "    source: local\n    path: ../data/ink\n", "utf-8")
    (project / "data" / "ink").mkdir(parents=True)
    (project / "data" / "ink" / "x.png").write_bytes(b"not a png")
    (project / "data" / "ink" / "x.txt").write_text("水墨", "utf-8")
    summary = api.build([story_path(project)], engine=RealishEngine(), cache_dir=tmp_path / "cache",
                        models_dir=tmp_path / "models")
    (outcome,) = summary.outcomes
    assert outcome.status == "failed" and "no usable image" in outcome.error
    assert outcome.exit_code == 2 and summary.exit_code == 2
