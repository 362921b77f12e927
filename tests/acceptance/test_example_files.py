"""Acceptance: every file in valid/ checks clean; every file in invalid/ produces exactly the
diagnostics its `# expect:` lines list (file omitted when it is the story itself; hints are
not compared). Also the repository's own stories/ and styles/ must check clean.

The project root of these files is tests/acceptance (it holds styles/).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kolorsc.errors import Diagnostic
from kolorsc.spec import check_paths

HERE = Path(__file__).parent
REPO = HERE.parent.parent
VALID = sorted((HERE / "valid").glob("*.yaml"))
INVALID = sorted((HERE / "invalid").glob("*.yaml"))


def expectations(path: Path) -> list[str]:
    out = []
    for line in path.read_bytes().splitlines():
        if line.startswith(b"# expect: "):
            out.append(line[len(b"# expect: "):].decode("utf-8"))
    return out


def render(d: Diagnostic, own: str) -> str:
    bare = Diagnostic("", d.line, d.col, d.path, d.message, severity=d.severity).format()  # ":L:C: path: message"
    prefix = "" if d.file == own else d.file
    return (prefix + bare) if prefix else bare.lstrip(":")


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.name)
def test_valid_files_pass(path, monkeypatch):
    monkeypatch.chdir(HERE)
    report = check_paths([path.relative_to(HERE)])
    assert report.ok, [d.format() for d in report.diagnostics]


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.name)
def test_invalid_files_give_exactly_the_expected_diagnostics(path, monkeypatch):
    monkeypatch.chdir(HERE)
    rel = path.relative_to(HERE)
    expected = expectations(path)
    assert expected, f"{path.name} has no '# expect:' line"
    report = check_paths([rel])
    got = [render(d, str(rel)) for d in report.diagnostics]
    assert got == expected


def test_there_are_enough_examples():
    assert len(VALID) >= 2 and len(INVALID) >= 20


def test_repository_stories_and_styles_check_clean(monkeypatch):
    monkeypatch.chdir(REPO)
    styles = sorted(Path("styles").glob("*.yaml"))
    report = check_paths([Path("stories"), *styles])
    assert report.ok, [d.format() for d in report.diagnostics]
    assert {f.path.name for f in report.files} >= {
        "classroom-dream.yaml", "hero-dragon.yaml", "idol-diary.yaml", "ink-wash.yaml", "anime.yaml"}
