"""`kolorsc score` and `bundle verify --rescore` on hostile input (issue 14), through the real
CLI: decompression bombs are left out with a warning before any decoding (memory bounded by
the pixel budget, checked under a memory cap), damaged scorer weights and missing packages
end in one line saying what to do, never a traceback."""

from __future__ import annotations

import shutil
import sys

import pytest
from click.testing import CliRunner

from _emit_fixtures import images, make_result
from _hostile_fixtures import bomb_png, run_capped
from _scoring_fixtures import AESTHETIC_REPO, make_aesthetic_model, make_images
from kolorsc.cli import main


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    make_aesthetic_model(root)
    return root


@pytest.fixture
def image_dir(tmp_path):
    folder = tmp_path / "panels"
    make_images(folder, n=3, seed=1, size=(40, 32))
    return folder


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def no_traceback(result) -> None:
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output


def test_bomb_pngs_are_left_out_with_a_warning_before_decoding(tmp_path, models_dir, image_dir):
    (image_dir / "huge-200mp.png").write_bytes(bomb_png(20_000, 10_000))  # Pillow's own limit: a traceback before
    (image_dir / "big-144mp.png").write_bytes(bomb_png(12_000, 12_000))  # under Pillow's limit: 2.7 GB before
    result = run_capped(["score", str(image_dir), "--models-dir", str(models_dir), "--device", "cpu", "--json"],
                        tmp_path, memory_mb=1500, data_only=True, cpu_seconds=120, timeout=240)
    assert result.returncode == 0, result.output[-2000:]
    assert "Traceback" not in result.output
    assert "warning: big-144mp.png: 12000x12000 is 144.0 megapixels, over the pixel budget" in result.stderr
    assert "warning: huge-200mp.png: 200.0 megapixels, over the pixel budget" in result.stderr
    import json

    data = json.loads(result.stdout)
    assert [d["file"] for d in data["images"]] == sorted(p.name for p in image_dir.iterdir() if "mp" not in p.name)
    assert data["too_large"] == ["big-144mp.png", "huge-200mp.png"]


def test_damaged_scorer_weights_are_one_line_naming_the_model(tmp_path, models_dir, image_dir):
    broken = tmp_path / "models"
    shutil.copytree(models_dir, broken)
    weights = broken / AESTHETIC_REPO / "pytorch_model.bin"
    weights.write_bytes(weights.read_bytes()[:1000])  # truncated download
    result = invoke("score", image_dir, "--models-dir", broken, "--device", "cpu")
    no_traceback(result)
    assert result.exit_code == 1
    assert "error: the aesthetic model in" in result.output and "cannot be loaded on cpu" in result.output
    assert "kolorsc models verify aesthetic" in result.output

    bundle = tmp_path / "b.zip"
    from kolorsc.emit import bundle_zip, panel_png

    r = make_result(tmp_path, aesthetic=[6.5] * 8)
    bundle.write_bytes(bundle_zip(r, [panel_png(p, pr, r) for p, pr in zip(images(), r.panels)], r.lora.path))
    rescored = invoke("bundle", "verify", bundle, "--rescore", "--models-dir", broken, "--device", "cpu")
    no_traceback(rescored)
    assert rescored.exit_code == 1 and "cannot be loaded on cpu" in rescored.output


@pytest.mark.parametrize("hidden", ["torch", "transformers", "aesthetics_predictor"])
def test_missing_packages_are_one_line_with_the_pip_command(monkeypatch, tmp_path, models_dir, image_dir, hidden):
    bundle = tmp_path / "b.zip"
    from kolorsc.emit import bundle_zip, panel_png

    r = make_result(tmp_path, aesthetic=[6.5] * 8)
    bundle.write_bytes(bundle_zip(r, [panel_png(p, pr, r) for p, pr in zip(images(), r.panels)], r.lora.path))
    monkeypatch.setitem(sys.modules, hidden, None)
    expected = (f"error: this command needs the models extra ({hidden} is not installed): "
                "pip install torch torchvision && pip install 'kolorsc[models]'")
    for args in (["score", image_dir, "--models-dir", models_dir],
                 ["bundle", "verify", bundle, "--rescore", "--models-dir", models_dir]):
        result = invoke(*args)
        no_traceback(result)
        assert result.exit_code == 2 and result.output.strip() == expected, result.output
