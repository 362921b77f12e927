"""The `kolorsc-check` pre-commit hook, run by pre-commit itself: `pre-commit try-repo` of
this repository inside a fresh git repository holding a valid story and style and an invalid
story. pre-commit builds its own virtualenv and pip-installs this repository into it (about
45 s here, once per run: the suite pays it once)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]


def pre_commit() -> list[str]:
    exe = shutil.which("pre-commit", path=str(Path(sys.executable).parent)) or shutil.which("pre-commit")
    if exe is None:
        pytest.skip("pre-commit is not installed (pip install -e '.[test]')")
    return [exe]


def test_manifest_declares_the_hook():
    hooks = yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text("utf-8"))
    [hook] = [h for h in hooks if h["id"] == "kolorsc-check"]
    assert hook["entry"] == "kolorsc check" and hook["language"] == "python"
    proc = subprocess.run([*pre_commit(), "validate-manifest", str(REPO / ".pre-commit-hooks.yaml")],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_try_repo_passes_valid_files_and_fails_invalid_ones(tmp_path):
    if not (REPO / ".git").exists():
        pytest.skip("try-repo needs this repository as a git checkout")
    work = tmp_path / "collection"
    (work / "stories").mkdir(parents=True)
    (work / "styles").mkdir()
    shutil.copy(REPO / "stories" / "classroom-dream.yaml", work / "stories")
    shutil.copy(REPO / "styles" / "ink-wash.yaml", work / "styles")
    (work / "stories" / "broken.yaml").write_text("kolorsc: 1\nid: broken\ntitle: 坏\n", "utf-8")
    (work / "notes.yaml").write_text("not: a story\n", "utf-8")  # outside stories/: not checked
    env = {**os.environ, "PRE_COMMIT_HOME": str(tmp_path / "pre-commit-home"), "GIT_CONFIG_NOSYSTEM": "1",
           "HOME": str(tmp_path)}
    subprocess.run(["git", "init", "-q"], cwd=work, check=True, env=env)
    subprocess.run(["git", "add", "-A"], cwd=work, check=True, env=env)
    proc = subprocess.run([*pre_commit(), "try-repo", str(REPO), "kolorsc-check", "--all-files"],
                          cwd=work, env=env, capture_output=True, text=True, timeout=900)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "kolorsc check (stories and styles)" in out and "Failed" in out
    assert 'stories/broken.yaml:1:1: missing required field "scenes"' in out
    assert "3 files checked, 1 invalid" in out  # the story, its style, the broken story
    assert "classroom-dream.yaml:" not in out and "notes.yaml" not in out
