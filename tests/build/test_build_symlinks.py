"""Outputs never follow a symlink the build did not create (issue 14): a repository that
ships `build`, `build/<id>`, `build/<id>/panels` or an output file as a link makes `kolorsc
build` fail with a message naming the link, and nothing outside the project is written,
read or deleted."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from _build_fixtures import STORY, make_project, story_path, tree_bytes
from kolorsc.cli import main
from kolorsc.safefs import OutputDir, output_root


def build(project: Path, cache: Path, *extra):
    result = CliRunner().invoke(main, ["build", str(story_path(project)), "--cache-dir", str(cache), *map(str, extra)])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return result


@pytest.fixture
def victim(tmp_path) -> Path:
    """A folder outside the project with files a build must never touch."""
    folder = tmp_path / "victim"
    (folder / "panels").mkdir(parents=True)
    (folder / "keep.txt").write_text("mine", encoding="utf-8")
    (folder / "panels" / "09.png").write_bytes(b"not a panel")  # looks stale to a build
    (folder / f"old-可图Kolors训练-{STORY}.zip").write_bytes(b"looks like an old bundle")
    return folder


@pytest.mark.parametrize("planted", ["build", f"build/{STORY}", f"build/{STORY}/panels"])
def test_a_planted_folder_link_fails_the_build_and_touches_nothing(tmp_path, victim, planted):
    project = make_project(tmp_path / "project")
    link = project / planted
    link.parent.mkdir(parents=True, exist_ok=True)
    target = victim / "panels" if planted.endswith("panels") else victim
    link.symlink_to(target, target_is_directory=True)
    before = tree_bytes(victim)

    result = build(project, tmp_path / "cache")
    assert result.exit_code == 1
    assert f"{link} is a symbolic link (to {target}) that this build did not create" in result.output
    assert tree_bytes(victim) == before
    assert not (project / "stories" / f"{STORY}.lock").exists()


def test_a_planted_file_link_is_refused_not_written_through(tmp_path, victim):
    project = make_project(tmp_path / "project")
    assert build(project, tmp_path / "cache").exit_code == 0
    out = project / "build" / STORY / "storyboard.png"
    out.unlink()
    out.symlink_to(victim / "keep.txt")
    result = build(project, tmp_path / "cache")
    assert result.exit_code == 1 and f"{out} is a symbolic link (to {victim / 'keep.txt'})" in result.output
    assert (victim / "keep.txt").read_text(encoding="utf-8") == "mine"


def test_out_folder_chosen_by_the_user_is_trusted_but_not_its_id_folder(tmp_path, victim):
    project = make_project(tmp_path / "project")
    elsewhere = tmp_path / "real-out"
    elsewhere.mkdir()
    chosen = tmp_path / "out-link"
    chosen.symlink_to(elsewhere, target_is_directory=True)  # the user's own link: followed
    assert build(project, tmp_path / "cache", "--out", chosen).exit_code == 0
    assert (elsewhere / STORY / "panels" / "01.png").is_file()
    (elsewhere / STORY / "panels" / "01.png").unlink()
    os.rename(elsewhere / STORY, tmp_path / "moved")
    (elsewhere / STORY).symlink_to(victim, target_is_directory=True)  # <id> planted: refused
    before = tree_bytes(victim)
    result = build(project, tmp_path / "cache", "--out", chosen)
    assert result.exit_code == 1 and "is a symbolic link" in result.output
    assert tree_bytes(victim) == before


def test_stale_outputs_are_still_removed_inside_the_real_folder(tmp_path):
    project = make_project(tmp_path / "project")
    assert build(project, tmp_path / "cache").exit_code == 0
    panels = project / "build" / STORY / "panels"
    (panels / "09.png").write_bytes(b"stale")
    (panels / "notes.txt").write_text("kept", encoding="utf-8")
    result = build(project, tmp_path / "cache")
    assert result.exit_code == 0, result.output
    assert not (panels / "09.png").exists() and (panels / "notes.txt").is_file()


def test_output_dir_writes_atomically_and_refuses_links_everywhere(tmp_path):
    root = tmp_path / "proj"
    root.mkdir()
    with output_root(root / "build" / "x", root) as out:
        with out.subdir("panels") as panels:
            panels.write_bytes("01.png", b"one")
            assert panels.sha256("01.png") is not None and panels.names() == ["01.png"]
        os.symlink("/etc/passwd", root / "build" / "x" / "f")
        for action in (lambda: out.write_bytes("f", b"x"), lambda: out.sha256("f"), lambda: out.unlink("f")):
            with pytest.raises(Exception, match="is a symbolic link"):
                action()
        os.mkfifo(root / "build" / "x" / "fifo")
        with pytest.raises(Exception, match="not a regular file"):
            out.sha256("fifo")  # would block forever if opened for reading
    assert (root / "build" / "x" / "panels" / "01.png").read_bytes() == b"one"
    assert not [p for p in (root / "build" / "x" / "panels").iterdir() if p.name.endswith(".tmp")]
    with OutputDir.open(root, ("build",)) as again:
        assert again.kind("x") == "folder" and again.kind("missing") is None
