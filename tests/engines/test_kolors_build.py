"""`kolorsc build` with the kolors engine (tiny models, CPU): the full output set, the style
LoRA merged, and a second build doing no model work. See _kolors_fixtures for what is real."""

from __future__ import annotations

from _extras import require_models

require_models()

import zipfile

from _build_fixtures import edit, make_project, story_path, use_lora_file_style
from _kolors_fixtures import (
    TinyKolorsUNet,
    make_engine,
    write_kolors_layout,
    write_lora,
)
from PIL import Image

from kolorsc import api

STORY = "hero-dragon"  # style fairytale-3d, made to reuse lora.path ../loras/fairytale-3d.safetensors at scale 1.5


def test_build_with_tiny_kolors_produces_every_output(tmp_path):
    models_dir = tmp_path / "models"
    write_kolors_layout(models_dir)
    project = make_project(tmp_path / "project", stories=(STORY,))
    story = story_path(project, STORY)
    edit(story, "steps: 50", "steps: 2")
    edit(story, "size: [1024, 1024]", "size: [256, 256]")
    write_lora(use_lora_file_style(project), TinyKolorsUNet(),
               ("blocks.1.transformer_blocks.0.attn1.to_q", "blocks.1.transformer_blocks.0.attn1.to_k"))

    engine = make_engine(models_dir, tmp_path / "cache")
    summary = api.build([story], engine=engine, cache_dir=tmp_path / "cache", models_dir=models_dir)
    assert summary.exit_code == 0, summary.outcomes[0].error
    assert any(e.startswith("merge lora") and e.endswith("x1.5") for e in engine.events)
    assert engine.calls.unet == 8 * 2  # eight panels, two steps, guidance batched

    out = project / "build" / STORY
    panels = sorted((out / "panels").glob("*.png"))
    assert [p.name for p in panels] == [f"{i:02d}.png" for i in range(1, 9)]
    assert all(Image.open(p).size == (256, 256) for p in panels)
    assert (out / "storyboard.png").is_file() and (out / "storyboard.pdf").is_file()
    [bundle] = list(out.glob("*.zip"))
    with zipfile.ZipFile(bundle) as z:
        assert len([n for n in z.namelist() if n.startswith("images/") and n.endswith(".png")]) == 8

    again = make_engine(models_dir, tmp_path / "cache")
    summary = api.build([story], engine=again, cache_dir=tmp_path / "cache", models_dir=models_dir)
    assert summary.exit_code == 0 and again.calls.unet == 0 and again.loader.loaded == []
