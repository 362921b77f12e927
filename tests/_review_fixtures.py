"""A collection repository for the `kolorsc diff` tests: the three example stories and their
styles in a real git repository, built once with the preview engine (small drafts) so the
lock files are committed and the renders are in a cache."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from kolorsc import api

from _build_fixtures import CountingEngine, edit, make_project  # noqa: F401  (edit re-exported)

EXAMPLES = ("classroom-dream", "hero-dragon", "idol-diary")
GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.org", "GIT_CONFIG_NOSYSTEM": "1"}


def git(repo: Path, *args: str) -> str:
    env = {**os.environ, **GIT_ENV, "HOME": str(repo.parent)}
    proc = subprocess.run(["git", *args], cwd=repo, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, f"git {' '.join(args)}: {proc.stderr}"
    return proc.stdout


def make_collection(base: Path) -> tuple[Path, Path]:
    """(repository, cache): the examples built with the preview engine, everything committed."""
    repo = make_project(base / "repo", EXAMPLES)
    (repo / ".gitignore").write_text("build/\n", encoding="utf-8")
    cache = base / "cache"
    summary = api.build([repo / "stories"], engine=CountingEngine(), cache_dir=cache)
    assert summary.exit_code == 0, summary.to_json()
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "three stories")
    return repo, cache


def copy_collection(built: Path, dest: Path) -> tuple[Path, Path]:
    shutil.copytree(built / "repo", dest / "repo", symlinks=True)
    shutil.copytree(built / "cache", dest / "cache")
    return dest / "repo", dest / "cache"


def build(repo: Path, cache: Path, *stories: str, engine=None):
    paths = [repo / "stories" / f"{s}.yaml" for s in stories] or [repo / "stories"]
    summary = api.build(paths, engine=engine or CountingEngine(), cache_dir=cache)
    assert summary.exit_code == 0, summary.to_json()
    return summary


def snapshot(repo: Path) -> dict[str, bytes]:
    """Every file of the working tree and .git (index included), by relative path."""
    return {p.relative_to(repo).as_posix(): p.read_bytes() for p in sorted(repo.rglob("*")) if p.is_file()}
