"""Acceptance: every file in valid/ checks clean; every file in invalid/ produces exactly the
diagnostics its `# expect:` lines list, and in Chinese its `# expect-zh:` lines (file omitted
when it is the story itself; hints are not compared) — through the library and through the
real CLI (`kolorsc check --json --lang en|zh`). Also the repository's own stories/ and styles/
must check clean.

The project root of these files is tests/acceptance (it holds styles/, and the loras/ and data/
the examples' styles name).
"""

from __future__ import annotations

from pathlib import Path

import contextlib
import json

import pytest
from click.testing import CliRunner

from kolorsc import i18n
from kolorsc.cli import main
from kolorsc.errors import Diagnostic
from kolorsc.spec import check_paths

HERE = Path(__file__).parent
REPO = HERE.parent.parent
VALID = sorted((HERE / "valid").glob("*.yaml"))
INVALID = sorted((HERE / "invalid").glob("*.yaml"))


def expectations(path: Path, lang: str = "en") -> list[str]:
    tag = b"# expect: " if lang == "en" else f"# expect-{lang}: ".encode()
    out = []
    for line in path.read_bytes().splitlines():
        if line.startswith(tag):
            out.append(line[len(tag):].decode("utf-8"))
    return out


@contextlib.contextmanager
def language(lang: str):
    i18n.set_language(lang)
    try:
        yield
    finally:
        i18n.set_language(None)


def render(d: Diagnostic, own: str) -> str:
    bare = Diagnostic("", d.line, d.col, d.path, d.message, severity=d.severity).format()  # ":L:C: path: message"
    prefix = "" if d.file == own else d.file
    return (prefix + bare) if prefix else bare.lstrip(":")


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.name)
def test_valid_files_pass(path, monkeypatch):
    monkeypatch.chdir(HERE)
    report = check_paths([path.relative_to(HERE)])
    assert report.ok, [d.format() for d in report.diagnostics]


@pytest.mark.parametrize("lang", ["en", "zh"])
@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.name)
def test_invalid_files_give_exactly_the_expected_diagnostics(path, lang, monkeypatch):
    monkeypatch.chdir(HERE)
    rel = path.relative_to(HERE)
    expected = expectations(path, lang)
    assert expected, f"{path.name} has no '# expect{'' if lang == 'en' else '-' + lang}:' line"
    with language(lang):
        report = check_paths([rel])
        got = [render(d, str(rel)) for d in report.diagnostics]
    assert got == expected


@pytest.mark.parametrize("lang", ["en", "zh"])
@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.name)
def test_the_cli_gives_the_same_diagnostics(path, lang, monkeypatch):
    monkeypatch.chdir(HERE)
    rel = path.relative_to(HERE)
    result = CliRunner().invoke(main, ["check", str(rel), "--json", "--lang", lang])
    assert result.exit_code == (0 if "fullwidth-quotes-text" in path.name else 2), result.output
    with language(lang):
        got = [render(Diagnostic(**{k: d[k] for k in ("file", "line", "col", "path", "message", "hint", "severity")}),
                      str(rel)) for d in json.loads(result.output)["diagnostics"]]
    assert got == expectations(path, lang)


def test_there_are_enough_examples():
    assert len(VALID) >= 2 and len(INVALID) >= 40


def test_repository_stories_and_styles_check_clean(monkeypatch):
    monkeypatch.chdir(REPO)
    styles = sorted(Path("styles").glob("*.yaml"))
    report = check_paths([Path("stories"), *styles])
    assert report.ok, [d.format() for d in report.diagnostics]
    assert {f.path.name for f in report.files} >= {
        "classroom-dream.yaml", "hero-dragon.yaml", "idol-diary.yaml", "ink-wash.yaml", "anime.yaml"}
