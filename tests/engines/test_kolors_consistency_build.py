"""`kolorsc build` with character consistency on the kolors engine (tiny real modules, CPU;
_consistency_fixtures): reference pictures and a character sheet through Kolors-IP-Adapter-Plus,
shared attention, the adapter missing, and what a rebuild does. The build core's side with
draft engines is tests/build/test_build_consistency.py."""

from __future__ import annotations

from _extras import require_models

require_models()

import json
import shutil

import pytest
from _build_fixtures import edit, make_project, story_path, use_lora_file_style
from _consistency_fixtures import TinyStoryUNet, make_story_engine, picture, write_story_layout
from _kolors_fixtures import write_lora

from kolorsc import api
from kolorsc.build import lockfile

STORY = "hero-dragon"  # hero in every panel, the dragon in 3 and 5, the princess in 7 and 8
DRAGON = "    look: 巨大的守护龙，鳞片闪耀\n"
PRINCESS = "    look: 公主，穿着破旧的礼服\n"
STEPS = 2


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("kolors-consistency") / "models"
    write_story_layout(root)
    return root


@pytest.fixture
def project(tmp_path):
    project = make_project(tmp_path / "project", stories=(STORY,))
    write_lora(use_lora_file_style(project), TinyStoryUNet(), ("blocks.1.transformer_blocks.0.attn1.to_q",))
    path = story_path(project, STORY)
    edit(path, "steps: 50", f"steps: {STEPS}")
    edit(path, "size: [1024, 1024]", "size: [256, 256]")
    (project / "stories" / "dragon.png").write_bytes(picture((200, 30, 30)))
    return project


def with_references(project, consistency="  ip_adapter: {scale: 0.7}\n"):
    path = story_path(project, STORY)
    edit(path, DRAGON, DRAGON + "    reference: dragon.png\n")
    edit(path, PRINCESS, PRINCESS + "    reference: generate\n")
    edit(path, "defaults:\n", f"consistency:\n{consistency}defaults:\n")


def build(project, tmp_path, models, engine=None):
    engine = engine or make_story_engine(models, tmp_path / "cache")
    summary = api.build([story_path(project, STORY)], engine=engine, cache_dir=tmp_path / "cache", models_dir=models)
    return summary.outcomes[0], engine


def renders(project) -> dict[str, str]:
    lock = lockfile.read(lockfile.lock_path(story_path(project, STORY))).lock
    return {i: e.output for i, e in lock.nodes.items() if i.startswith(("render/", "sheet/"))}


def test_references_and_a_sheet_end_to_end_then_a_new_picture(project, tmp_path, models):
    from _scoring_fixtures import make_aesthetic_model

    scored = tmp_path / "models"  # the story layout plus the tiny aesthetic predictor
    shutil.copytree(models, scored)
    make_aesthetic_model(scored)
    with_references(project)
    outcome, engine = build(project, tmp_path, scored)
    assert outcome.exit_code == 0, outcome.error
    assert "load ip_adapter" in engine.events
    assert engine.calls.image_encoder == 3  # the dragon's file, the princess's sheet, the zero picture
    assert engine.calls.unet == 9 * STEPS  # the sheet and eight panels, guidance batched
    out = project / "build" / STORY
    assert (out / "characters" / "princess.png").is_file() and (out / "storyboard.pdf").is_file()
    result = outcome.report.result
    assert result.sheets[0].character == "princess"
    refs = {c.character: c.reference for c in result.scores.characters}
    assert refs["dragon"] is not None and refs["princess"] is not None and refs["hero"] is None
    scores = json.loads((out / "scores.json").read_bytes())  # what was measured, as written
    assert {c["character"]: c["panels"] for c in scores["characters"]} == {
        "hero": [1, 2, 3, 4, 5, 6, 7, 8], "princess": [7, 8], "dragon": [3, 5]}
    assert {c["character"]: c["reference"] for c in scores["characters"]} == refs
    first = renders(project)

    # nothing changed: nothing runs, no model loads
    outcome, again = build(project, tmp_path, scored)
    assert outcome.status == "up-to-date" and again.calls.unet == 0 and again.loader.loaded == []

    # a new dragon: the plan says so, exactly panels 3 and 5 render again, and look different
    (project / "stories" / "dragon.png").write_bytes(picture((30, 200, 30), pattern=2))
    plan = api.plan(story_path(project, STORY), engine=make_story_engine(scored, tmp_path / "cache"),
                    cache_dir=tmp_path / "cache", models_dir=scored)
    assert {str(n.id) for n in plan.to_run() if n.kind in ("render", "sheet")} == {"render/03/seed-103",
                                                                                "render/05/seed-105"}
    assert plan.node("render/03/seed-103").why[0].startswith("reference picture of dragon changed at ")
    outcome, engine = build(project, tmp_path, scored)
    assert outcome.exit_code == 0 and engine.calls.unet == 2 * STEPS and engine.calls.image_encoder == 1
    second = renders(project)
    assert sorted(i for i in first if first[i] != second[i]) == ["render/03/seed-103", "render/05/seed-105"]


def test_scale_zero_renders_exactly_what_no_adapter_renders(project, tmp_path, models):
    outcome, _ = build(project, tmp_path, models)  # the story as it was, no consistency
    assert outcome.exit_code == 0, outcome.error
    before = renders(project)
    panels = {p.name: p.read_bytes() for p in (project / "build" / STORY / "panels").iterdir()}
    with_references(project, "  ip_adapter: {scale: 0.5, characters: {dragon: 0, princess: 0}}\n")
    outcome, engine = build(project, tmp_path, models)
    assert outcome.exit_code == 0 and engine.calls.unet == 0  # the same keys: nothing to render
    assert renders(project) == before
    assert {p.name: p.read_bytes() for p in (project / "build" / STORY / "panels").iterdir()} == panels
    # the princess at 0.6: her sheet and her panels render, the dragon's stay as they were
    edit(story_path(project, STORY), "princess: 0}", "princess: 0.6}")
    outcome, engine = build(project, tmp_path, models)
    assert outcome.exit_code == 0 and engine.calls.unet == 3 * STEPS
    after = renders(project)
    assert sorted(i for i in after if after[i] != before.get(i)) == ["render/07/seed-107", "render/08/seed-108",
                                                                     "sheet/princess"]


def test_shared_attention_builds_the_story_in_one_batch(project, tmp_path, models):
    edit(story_path(project, STORY), "defaults:\n", "consistency:\n  shared_attention: {identity: 2}\ndefaults:\n")
    outcome, engine = build(project, tmp_path, models)
    assert outcome.exit_code == 0, outcome.error
    assert engine.calls.unet == STEPS  # eight panels, one batch of eight, guidance batched: one call per step
    assert "load ip_adapter" not in engine.events  # no pictures: the adapter is not involved
    before = renders(project)
    # a panel that is not an identity panel: it alone renders again (its batch still holds the identity panels)
    edit(story_path(project, STORY), "历史感，微光照明", "历史感，火把照明")
    outcome, engine = build(project, tmp_path, models)
    after = renders(project)
    assert sorted(i for i in after if after[i] != before[i]) == ["render/04/seed-104"]
    assert engine.calls.unet == STEPS


def test_a_missing_adapter_fails_at_planning_before_anything_renders(project, tmp_path, models):
    bare = tmp_path / "bare"
    shutil.copytree(models / "Kwai-Kolors" / "Kolors", bare / "Kwai-Kolors" / "Kolors")
    with_references(project)
    engine = make_story_engine(bare, tmp_path / "cache")
    outcome, _ = build(project, tmp_path, bare, engine)
    assert outcome.status == "failed" and outcome.plan is None  # refused while planning
    assert "kolorsc models pull ip-adapter" in outcome.error and outcome.exit_code != 0
    assert engine.loader.loaded == [] and engine.calls.unet == 0
    assert not (project / "build" / STORY).exists()
