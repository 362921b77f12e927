"""`kolorsc init --collection NAME`: the new repository checks, builds, diffs, and its CI
workflow is valid for GitHub (check-jsonschema's vendored github-workflows schema), its
pre-commit config for pre-commit."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from kolorsc import api
from kolorsc.cli import main
from kolorsc.errors import UsageError
from kolorsc.spec import check_paths
from kolorsc.spec.collection import WORKFLOW, init_collection

from _build_fixtures import CountingEngine


def tool(name: str) -> str:
    exe = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if exe is None:
        pytest.skip(f"{name} is not installed (pip install -e '.[test]')")
    return exe


@pytest.fixture
def collection(tmp_path):
    written = init_collection("team-stories", tmp_path, team="星河队")
    return tmp_path / "team-stories", written


def test_layout_and_a_passing_check(collection):
    root, written = collection
    rel = sorted(p.relative_to(root).as_posix() for p in written)
    assert rel == sorted([".github/workflows/kolorsc.yml", ".gitignore", ".pre-commit-config.yaml", "README.md",
                          "schemas/story.schema.json", "schemas/style.schema.json", "stories/first-story.yaml",
                          "styles/anime.yaml"])
    assert check_paths([root / "stories", root / "styles"]).ok
    assert (root / "stories" / "first-story.yaml").read_text("utf-8").startswith(
        "# yaml-language-server: $schema=../schemas/story.schema.json")
    assert (root / ".git").is_dir()  # a repository of its own


def test_workflow_is_valid_for_github_and_does_the_review_steps(collection):
    root, _ = collection
    workflow = root / WORKFLOW
    proc = subprocess.run([tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", str(workflow)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    steps = yaml.safe_load(workflow.read_text("utf-8"))["jobs"]["stories"]["steps"]
    runs = [s.get("run", "") for s in steps]
    order = [next(i for i, r in enumerate(runs) if needle in r)
             for needle in ("kolorsc check --format github", "kolorsc diff", "kolorsc build stories/ --engine preview")]
    assert order == sorted(order)  # diff before the preview build rewrites the lock files
    assert steps[0]["with"]["fetch-depth"] == 0
    artifacts = {s["with"]["name"] for s in steps if s.get("uses", "").startswith("actions/upload-artifact")}
    assert artifacts == {"diff", "gallery", "storyboards"}


def test_a_broken_workflow_is_caught_by_the_same_check(collection, tmp_path):
    root, _ = collection
    bad = tmp_path / "bad.yml"
    bad.write_text((root / WORKFLOW).read_text("utf-8").replace("runs-on:", "runs_on:"), "utf-8")
    proc = subprocess.run([tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", str(bad)],
                          capture_output=True, text=True)
    assert proc.returncode == 1


def test_pre_commit_config_and_gitignore(collection):
    root, _ = collection
    proc = subprocess.run([tool("pre-commit"), "validate-config", str(root / ".pre-commit-config.yaml")],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    [repo] = yaml.safe_load((root / ".pre-commit-config.yaml").read_text("utf-8"))["repos"]
    assert [h["id"] for h in repo["hooks"]] == ["kolorsc-check"]
    (root / "build" / "first-story").mkdir(parents=True)
    (root / "build" / "first-story" / "storyboard.png").write_bytes(b"x")
    (root / "stories" / "first-story.lock").write_text("{}", "utf-8")
    ignored = subprocess.run(["git", "check-ignore", "build/first-story/storyboard.png", "stories/first-story.lock"],
                             cwd=root, capture_output=True, text=True).stdout.split()
    assert ignored == ["build/first-story/storyboard.png"]  # lock files stay versioned


def test_readme_says_how_to_build_with_real_weights(collection):
    text = (collection[0] / "README.md").read_text("utf-8")
    for needle in ("kolorsc models pull", "--engine kolors", "kolorsc[models]", "CUDA", ".lock"):
        assert needle in text


def test_builds_and_diffs(collection):
    root, _ = collection
    summary = api.build([root / "stories"], engine=CountingEngine(), cache_dir=root.parent / "cache")
    assert summary.exit_code == 0, summary.to_json()
    assert (root / "stories" / "first-story.lock").is_file()
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@e.org", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@e.org"}
    import os

    for cmd in (["git", "add", "-A"], ["git", "commit", "-q", "-m", "new collection"]):
        subprocess.run(cmd, cwd=root, check=True, env={**os.environ, **env})
    tracked = subprocess.run(["git", "ls-files"], cwd=root, capture_output=True, text=True).stdout.split()
    assert "stories/first-story.lock" in tracked and not any(t.startswith("build/") for t in tracked)
    from kolorsc.review.diff import diff

    assert diff(cwd=root, cache_dir=root.parent / "cache", engine=CountingEngine()).stories == []


def test_refuses_to_write_into_a_non_empty_folder(tmp_path):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "x").write_text("mine", "utf-8")
    with pytest.raises(UsageError, match="not empty"):
        init_collection("taken", tmp_path)
    with pytest.raises(UsageError, match="slug"):
        init_collection("Bad Name", tmp_path)
    assert (tmp_path / "taken" / "x").read_text("utf-8") == "mine"


def test_cli(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["init", "--collection", "our-stories", "--team", "t1"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "our-stories" / WORKFLOW).is_file() and "next: cd our-stories" in result.output
    assert 'team: "t1"' in (tmp_path / "our-stories" / "stories" / "first-story.yaml").read_text("utf-8")
    result = CliRunner().invoke(main, ["init"])
    assert result.exit_code == 2 and "--collection NAME" in result.output
