"""The dataset -> LoRA part of the build graph with the real data preparation and the real
trainer on tiny stand-in models (tests/_train_fixtures.TinyLoader), on CPU."""

from __future__ import annotations

from _extras import require_models

require_models('lightning')

import io
import zipfile

import numpy as np
import pytest
from PIL import Image

from kolorsc import api

from _build_fixtures import RealishEngine, edit, make_project, story_path


STORY = "classroom-dream"  # style ink-wash: trained from the local folder data/ink-wash

TINY_TRAINING = """  train:
    rank: 4
    alpha: 2
    epochs: 1
    steps_per_epoch: 2
    precision: "32"
    gradient_checkpointing: false
    center_crop: true
    resolution: 256
    accelerator: cpu
    devices: 1
  dataset:
    source: local
    path: ../data/ink-wash
    caption: sidecar
"""


@pytest.fixture
def project(tmp_path, monkeypatch):
    import kolorsc.train
    from _train_fixtures import TinyLoader

    monkeypatch.setattr(kolorsc.train, "default_model_loader", TinyLoader())
    project = make_project(tmp_path / "project")
    style = project / "styles" / "ink-wash.yaml"
    text = style.read_text("utf-8")
    style.write_text(text[: text.index("  train:")] + TINY_TRAINING, "utf-8")
    data = project / "data" / "ink-wash"
    data.mkdir(parents=True)
    for i in range(3):
        pixels = np.random.default_rng(i).integers(0, 255, (64, 64 + 8 * i, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(data / f"{i}.png")
        (data / f"{i}.txt").write_text(["水墨 山水", "水墨 竹林", "水墨 小桥"][i], "utf-8")
    return project


def build(project, tmp_path):
    engine = RealishEngine()
    summary = api.build([story_path(project, STORY)], engine=engine, cache_dir=tmp_path / "cache",
                        models_dir=tmp_path / "models")
    assert summary.exit_code == 0, summary.outcomes[0].error
    return summary.outcomes[0].report, engine


def test_dataset_and_lora_are_built_once_and_reused(project, tmp_path):
    report, engine = build(project, tmp_path)
    assert report.ran["dataset"] == 1 and report.ran["lora"] == 1
    lora = engine.loras[0]
    assert lora is not None and lora.key == report.plan.node("lora").key
    assert lora.path.read_bytes()[:8]  # a real file in the cache
    assert report.result.lora.trained and report.result.lora.rank == 4
    bundle = next((project / "build" / STORY).glob("*.zip"))
    with zipfile.ZipFile(io.BytesIO(bundle.read_bytes())) as z:
        assert any(n.endswith(".safetensors") for n in z.namelist())
    assert not (tmp_path / "cache" / "work").exists() or not any((tmp_path / "cache" / "work").iterdir())

    again, engine = build(project, tmp_path)
    assert engine.rendered == [] and not {"dataset", "lora", "render"} & set(again.ran)
    assert {str(n.id): n.status for n in again.plan.nodes[:2]} == {"dataset": "cached", "lora": "cached"}

    # new training settings: the LoRA would be retrained from the cached dataset (planned
    # only: a second training run would double this test's time)
    edit(project / "styles" / "ink-wash.yaml", "rank: 4", "rank: 2")
    plan = api.plan(story_path(project, STORY), engine=RealishEngine(), cache_dir=tmp_path / "cache",
                    models_dir=tmp_path / "models")
    rank = plan.story.style.locs["lora.train.rank"]  # the line that changed it
    assert plan.node("lora").why == (f"training rank 4 → 2 at {rank.file}:{rank.line}",)
    assert plan.node("dataset").status == "cached"
    assert {n.why[0] for n in plan.of_kind("render")} == {"style (LoRA) changed"}
