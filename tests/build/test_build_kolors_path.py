"""The non-preview path of the build (what `--engine kolors` takes) without Kolors weights:
an engine that draws drafts but presents itself as a real engine, a style with a LoRA file,
and the scoring wiring with and without the (tiny, real) aesthetic predictor."""

from __future__ import annotations

from _extras import require_models

require_models()  # the scorers (numpy, torch) come with the models extra, as --engine kolors does

import io
import json
import zipfile

import pytest

from kolorsc import api
from kolorsc.build import lockfile
from kolorsc.build.lockfile import lock_path
from kolorsc.cache import Cache
from kolorsc.scoring import TIE_MARGIN

from _build_fixtures import RealishEngine, edit, make_project, story_path, use_lora_file_style

STORY = "hero-dragon"  # style fairytale-3d, made to reuse `lora.path: ../loras/fairytale-3d.safetensors`


@pytest.fixture
def project(tmp_path):
    project = make_project(tmp_path / "project", stories=(STORY,))
    use_lora_file_style(project).write_bytes(b"lora weights v1" * 100)
    return project


def build(project, tmp_path, engine, models):
    return api.build([story_path(project, STORY)], engine=engine, cache_dir=tmp_path / "cache",
                     models_dir=models)


def test_lora_file_and_missing_scorer_weights(project, tmp_path):
    models = tmp_path / "models"  # empty: no scorer weights
    engine = RealishEngine()
    summary = build(project, tmp_path, engine, models)
    assert summary.exit_code == 0, summary.to_json()
    report = summary.outcomes[0].report
    lora = engine.loras[0]
    assert lora.scale == 1.5 and lora.key == report.plan.node("lora").key
    assert lora.path.read_bytes() == b"lora weights v1" * 100  # the cache's own copy
    assert report.result.scores.aesthetic_mean is None
    assert report.result.scores.note == "not computed: run `kolorsc models pull aesthetic`"
    assert [pr.chosen.seed for pr in report.result.panels] == [p.seed for p in report.plan.panels]

    out = project / "build" / STORY
    scores = json.loads((out / "scores.json").read_bytes())
    assert "not computed" in json.dumps(scores, ensure_ascii=False)
    bundle = next(out.glob("*.zip"))
    with zipfile.ZipFile(io.BytesIO(bundle.read_bytes())) as z:
        assert any(n.endswith(".safetensors") for n in z.namelist())
    lock = lockfile.read(lock_path(story_path(project, STORY))).lock
    record = json.loads(Cache(tmp_path / "cache").read_bytes(lock.nodes["score/01/seed-101"].key))
    assert record["score"] is None and record["scorer"]["aesthetic"]["absent"]  # a record, never a number

    # next build: nothing to do while the weights are still missing
    again = RealishEngine()
    summary = build(project, tmp_path, again, models)
    assert summary.exit_code == 0 and again.rendered == [] and summary.outcomes[0].status == "up-to-date"

    # the weights arrive: every score runs, and what is made from scores; no render
    from _scoring_fixtures import make_aesthetic_model

    make_aesthetic_model(models)
    plan = api.plan(story_path(project, STORY), engine=RealishEngine(), cache_dir=tmp_path / "cache",
                    models_dir=models)
    assert {n.why for n in plan.of_kind("score")} == {("scorer aesthetic changed",)}
    assert {n.kind for n in plan.to_run()} == {"score", "select", "panel", "storyboard", "pdf", "scores", "page",
                                                 "thumbnail", "bundle"}

    # a new LoRA file re-renders every panel, and says why
    (project / "loras" / "fairytale-3d.safetensors").write_bytes(b"lora weights v2" * 100)
    plan = api.plan(story_path(project, STORY), engine=RealishEngine(), cache_dir=tmp_path / "cache",
                    models_dir=models)
    assert plan.node("lora").why == ("LoRA file changed",)
    assert plan.node("render/03/seed-103").why == ("style (LoRA) changed",)


def test_scores_and_best_of_n_with_a_tiny_real_predictor(project, tmp_path):
    from _scoring_fixtures import make_aesthetic_model

    models = tmp_path / "models"
    make_aesthetic_model(models)
    edit(story_path(project, STORY), "  seed: 100\n", "  seed: 100\n  candidates: 2\n")
    engine = RealishEngine()
    summary = build(project, tmp_path, engine, models)
    assert summary.exit_code == 0, summary.to_json()
    assert len(engine.rendered) == 16
    result = summary.outcomes[0].report.result
    assert result.scores.aesthetic_mean is not None and result.scores.note is None
    for pr in result.panels:
        values = [c.aesthetic for c in pr.candidates]
        assert len(values) == 2 and None not in values
        assert pr.chosen.aesthetic >= max(values) - TIE_MARGIN - 1e-9
        assert all(c.coherence is not None for c in pr.candidates)
    chosen = [pr.chosen.aesthetic for pr in result.panels]
    assert result.scores.aesthetic_mean == pytest.approx(sum(chosen) / len(chosen))

    # scores are cached: a second build scores nothing and chooses the same candidates
    again = build(project, tmp_path, RealishEngine(), models)
    report = again.outcomes[0].report
    assert report.ran == {} and [pr.chosen.seed for pr in report.result.panels] == [
        pr.chosen.seed for pr in result.panels]


def test_new_scorer_weights_rescore_every_panel_and_scores_json_names_them(project, tmp_path):
    """Issue 10: the aesthetic predictor's weights replaced in the models directory. Every
    score node runs again (renders do not), and scores.json names the new weights."""
    from _scoring_fixtures import make_aesthetic_model

    models = tmp_path / "models"
    make_aesthetic_model(models, seed=0)
    assert build(project, tmp_path, RealishEngine(), models).exit_code == 0
    scores_file = project / "build" / STORY / "scores.json"
    before = json.loads(scores_file.read_bytes())

    make_aesthetic_model(models, seed=1)  # other weights, same shapes and file names
    engine = RealishEngine()
    summary = build(project, tmp_path, engine, models)
    assert summary.exit_code == 0 and engine.rendered == []
    assert summary.outcomes[0].report.ran["score"] == 8
    after = json.loads(scores_file.read_bytes())
    assert after["scorer"]["aesthetic"]["weights"] != before["scorer"]["aesthetic"]["weights"]
    assert [p["aesthetic"] for p in after["panels"]] != [p["aesthetic"] for p in before["panels"]]
