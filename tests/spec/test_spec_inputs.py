"""`kolorsc check` (by default; `--no-inputs` skips it): the local files a style names must
exist, so a story that a fresh clone cannot build fails in CI, not an hour into a GPU build.
The repository's examples pass."""

from __future__ import annotations

from pathlib import Path

from _spec_fixtures import REPO, edit, make_project, story_text, write_story
from click.testing import CliRunner

from kolorsc.cli import main
from kolorsc.spec import check_paths


def lines(report):
    return [d.format() for d in report.diagnostics]


def test_every_example_story_and_style_has_obtainable_inputs(monkeypatch):
    monkeypatch.chdir(REPO)
    report = check_paths([Path("stories"), *sorted(Path("styles").glob("*.yaml"))], inputs=True)
    assert report.ok, lines(report)
    assert {f.path.name for f in report.files} >= {"classroom-dream.yaml", "hero-dragon.yaml", "idol-diary.yaml"}


def test_missing_lora_file_and_dataset_folder_point_at_their_lines(tmp_path, monkeypatch):
    proj = make_project(tmp_path)
    monkeypatch.chdir(proj)
    (proj / "styles" / "fairytale-3d.yaml").write_text(
        "kolorsc: 1\nname: 童话\ntrigger: 童话\nlora:\n  scale: 1.5\n  path: ../loras/fairytale-3d.safetensors\n", "utf-8")
    ink = (proj / "styles" / "ink-wash.yaml").read_text("utf-8")
    ink = ink[: ink.index("    source: generate")] + "    source: local\n    path: ../data/ink-wash\n"
    (proj / "styles" / "ink-wash.yaml").write_text(ink, "utf-8")

    assert check_paths([Path("stories")], inputs=False).ok  # --no-inputs: the files themselves are valid
    got = lines(check_paths([Path("stories")]))
    assert got == [
        ("styles/ink-wash.yaml:31:11: lora.dataset.path: the dataset folder data/ink-wash does not exist "
        "(add the images there (x.jpg with a caption in x.txt), or use source: modelscope (a dataset id) "
        "or source: generate (rendered by the base model))"),
        ("styles/fairytale-3d.yaml:6:9: lora.path: the LoRA file loras/fairytale-3d.safetensors does not exist "
        "(put the file there, reuse a LoRA published on ModelScope (lora.modelscope), or train one (lora.train))"),
    ]
    (proj / "data" / "ink-wash").mkdir(parents=True)
    (proj / "data" / "ink-wash" / "notes.txt").write_text("no images yet", "utf-8")
    assert "holds no images" in lines(check_paths([Path("styles/ink-wash.yaml")], inputs=True))[0]
    (proj / "data" / "ink-wash" / "a.png").write_bytes(b"\x89PNG")
    (proj / "loras").mkdir()
    (proj / "loras" / "fairytale-3d.safetensors").write_bytes(b"x")
    assert check_paths([Path("stories"), Path("styles/ink-wash.yaml")], inputs=True).ok


def test_inline_style_points_into_the_story_and_the_cli_flag(tmp_path, monkeypatch):
    proj = make_project(tmp_path)
    monkeypatch.chdir(proj)
    text = edit(story_text(), "style: ink-wash", "style:\n  name: 水彩\n  trigger: 水彩画\n  lora: {path: ../loras/w.safetensors}")
    write_story(proj, text)
    (got,) = lines(check_paths([Path("stories/s.yaml")], inputs=True))
    assert got.startswith("stories/s.yaml:13:16:") and "style.lora.path: the LoRA file loras/w.safetensors does not exist" in got

    result = CliRunner().invoke(main, ["check", "stories/s.yaml"])
    assert result.exit_code == 2 and "does not exist" in result.output
    assert CliRunner().invoke(main, ["check", "stories/s.yaml", "--inputs"]).exit_code == 2  # the default, said
    assert CliRunner().invoke(main, ["check", "stories/s.yaml", "--no-inputs"]).exit_code == 0
