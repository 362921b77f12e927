"""Helpers for the story-format tests: a throwaway project with the repository's styles and
stories, and small text edits of a story."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EXAMPLE_STORIES = sorted((REPO / "stories").glob("*.yaml"))


def make_project(tmp_path: Path) -> Path:
    """tmp_path/proj with styles/ and stories/ copied from the repository."""
    root = tmp_path / "proj"
    shutil.copytree(REPO / "styles", root / "styles")
    shutil.copytree(REPO / "stories", root / "stories")
    return root


def story_text(name: str = "classroom-dream") -> str:
    return (REPO / "stories" / f"{name}.yaml").read_text(encoding="utf-8")


def write_story(root: Path, text: str, name: str = "s.yaml") -> Path:
    """Write stories/<name>. A copy of a story beside it takes the file's name as its id, as an
    author copying a story must (two stories with one id are refused by check and build)."""
    path = root / "stories" / name
    m = re.search(r"^id: ([a-z0-9-]+)$", text, re.M)
    if m and m.group(1) != path.stem and (path.parent / f"{m.group(1)}.yaml").exists() and re.match(r"^[a-z0-9-]+$", path.stem):
        text = text[: m.start(1)] + path.stem + text[m.end(1):]
    path.write_text(text, encoding="utf-8")
    return path


def edit(text: str, old: str, new: str, count: int = 1) -> str:
    assert old in text, f"{old!r} not in story"
    return text.replace(old, new, count)


def line_of(text: str, needle: str) -> int:
    """1-based line of the first line containing `needle`."""
    for n, line in enumerate(text.splitlines(), 1):
        if needle in line:
            return n
    raise AssertionError(f"{needle!r} not found")
