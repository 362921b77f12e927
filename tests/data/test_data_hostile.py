"""Hostile dataset folders (issue 14), through `kolorsc train --dataset-only`: files that
link outside the folder are refused and listed (never read: no /etc/passwd caption, no
outside image in the training set), images over the pixel budget are left out before
decoding, and caption templates fail tidily at train time too."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from _hostile_fixtures import bomb_png
from kolorsc.cli import main

STYLE = """kolorsc: 1
id: ink
name: ink
trigger: 水墨
lora:
  train: {{rank: 4}}
  dataset:
    source: local
    path: ../data
    caption: {caption}
{extra}"""


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KOLORSC_CACHE", str(tmp_path / "cache"))


def project(tmp_path: Path, caption: str = "sidecar", extra: str = "") -> Path:
    root = tmp_path / "proj"
    (root / "styles").mkdir(parents=True)
    (root / "data").mkdir()
    (root / "styles" / "ink.yaml").write_text(STYLE.format(caption=caption, extra=extra), encoding="utf-8")
    for i in range(2):
        Image.new("RGB", (64, 64), (40 * i, 90, 120)).save(root / "data" / f"ok{i}.png")
        (root / "data" / f"ok{i}.txt").write_text(f"山水 {i}", encoding="utf-8")
    return root


def train_dataset_only(root: Path):
    result = CliRunner().invoke(main, ["train", str(root / "styles" / "ink.yaml"), "--dataset-only"])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    return result


def captions(root: Path) -> list[str]:
    rows = (root / "build" / "lora" / "ink" / "dataset" / "train" / "metadata.csv").read_text(encoding="utf-8")
    return rows.splitlines()[1:]


def test_files_linking_outside_the_dataset_folder_are_refused_and_listed(tmp_path):
    root = project(tmp_path)
    secret = tmp_path / "secret.txt"
    secret.write_text("root:x:0:0:root:/root:/bin/bash", encoding="utf-8")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    Image.new("RGB", (64, 64), "red").save(outside / "private.png")
    data = root / "data"
    (data / "stolen.png").symlink_to(outside / "private.png")
    (data / "ok1.txt").unlink()
    (data / "ok1.txt").symlink_to(secret)  # an in-folder image whose caption links out
    (data / "linked").symlink_to(outside, target_is_directory=True)
    Image.new("RGB", (64, 64), "blue").save(data / "inner.png")
    (data / "alias.png").symlink_to(data / "inner.png")  # a link inside the folder is fine
    (data / "inner.txt").write_text("蓝", encoding="utf-8")
    (data / "alias.txt").write_text("蓝", encoding="utf-8")

    result = train_dataset_only(root)
    assert result.exit_code == 0, result.output
    assert f"skipped stolen.png: refused: links outside the dataset folder (to {outside / 'private.png'})" in result.output
    assert f"skipped linked: refused: links outside the dataset folder (to {outside})" in result.output
    assert "skipped ok1.png: refused: its caption ok1.txt links outside the dataset folder" in result.output
    rows = captions(root)
    assert sorted(r.split(",", 1)[1] for r in rows) == ["山水 0", "蓝", "蓝"]
    assert not any("root:x" in r for r in rows)
    report = json.loads((root / "build" / "lora" / "ink" / "dataset" / "report.json").read_text(encoding="utf-8"))
    assert sorted(src for _, src in report["files"]) == ["alias.png", "inner.png", "ok0.png"]


def test_an_image_over_the_pixel_budget_is_left_out_before_decoding(tmp_path):
    root = project(tmp_path)
    (root / "data" / "bomb.png").write_bytes(bomb_png(12_000, 12_000))
    (root / "data" / "bomb.txt").write_text("x", encoding="utf-8")
    result = train_dataset_only(root)
    assert result.exit_code == 0, result.output
    assert "skipped bomb.png: 12000x12000 is 144.0 megapixels, over the pixel budget of 40 megapixels" in result.output
    assert len(captions(root)) == 2


def test_a_caption_template_that_fails_on_real_data_is_a_tidy_error(tmp_path):
    root = project(tmp_path, caption="template", extra="    caption_text: \"{{ sidecar * 2000 }}\"\n")
    (root / "data" / "ok0.txt").write_text("山水" * 100, encoding="utf-8")  # 200 chars x 2000: over the limit
    result = train_dataset_only(root)
    assert result.exit_code == 1
    assert result.output.startswith("error: caption template of image 'ok0': template over budget")
