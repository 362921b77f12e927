"""Scoring against the seed's own evaluation code, on tiny random models of the real classes
saved in the real ModelScope layouts (tests/_scoring_fixtures.py)."""

from __future__ import annotations

import json
import os
import shutil

import pytest

pytest.importorskip("torch")
pytest.importorskip("aesthetics_predictor")

from PIL import Image  # noqa: E402

from kolorsc.errors import ModelMissingError  # noqa: E402
from kolorsc.scoring import load_scorers, score_images  # noqa: E402
from kolorsc.scoring.folder import scan_folder  # noqa: E402

from _scoring_fixtures import (  # noqa: E402
    AESTHETIC_REPO,
    make_aesthetic_model,
    make_chinese_clip,
    make_images,
)

TOL = 1e-6


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    make_aesthetic_model(root)
    make_chinese_clip(root)
    return root


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("panels")
    make_images(folder, n=5, seed=1, size=(40, 32))
    make_images(folder / "more", n=3, seed=2, size=(30, 50))  # other sizes, moved up below
    for p in sorted((folder / "more").iterdir()):
        p.rename(folder / f"b{p.name}")
    (folder / "more").rmdir()
    return folder


@pytest.fixture(scope="module")
def scorers(models_dir):
    return load_scorers(models_dir, device="cpu")


def seed_evaluate(model_id: str, folder: str, device: str = "cpu") -> tuple[float, dict[str, float]]:
    """The challenge's scoring code (seed, section 美学评分), verbatim in spirit; it also
    returns the per-file scores so each panel can be compared."""
    import torch
    from aesthetics_predictor import AestheticsPredictorV2Linear
    from transformers import CLIPProcessor

    predictor = AestheticsPredictorV2Linear.from_pretrained(model_id)
    processor = CLIPProcessor.from_pretrained(model_id)
    predictor = predictor.to(device)

    def get_aesthetics_score(image):
        inputs = processor(images=image, return_tensors="pt")
        inputs = {k: v.to(device) for k, v in inputs.items()}
        with torch.no_grad():
            outputs = predictor(**inputs)
        prediction = outputs.logits
        return prediction.tolist()[0][0]

    scores = []
    per_file = {}
    for file_name in os.listdir(folder):
        if os.path.isfile(os.path.join(folder, file_name)):
            image = Image.open(os.path.join(folder, file_name))
            scores.append(get_aesthetics_score(image))
            per_file[file_name] = scores[-1]
    if len(scores) == 0:
        return 0, per_file
    return sum(scores) / len(scores), per_file


def open_all(paths):
    return [Image.open(p) for p in paths]


def test_aesthetic_equals_the_seeds_evaluation(models_dir, image_dir, scorers):
    ref_mean, ref = seed_evaluate(str(models_dir / AESTHETIC_REPO), str(image_dir))
    scan = scan_folder(image_dir)
    assert sorted(p.name for p in scan.images) == sorted(ref)
    report = score_images(open_all(scan.images), None, scorers)
    for path, got in zip(scan.images, report.aesthetics):
        assert got == pytest.approx(ref[path.name], abs=TOL), path.name
    assert report.aesthetic_mean == pytest.approx(ref_mean, abs=TOL)
    # the scores are not all one number: the comparison above is a real one
    assert max(report.aesthetics) - min(report.aesthetics) > 1e-4


@pytest.mark.parametrize("batch_size", [1, 3, 16])
def test_batching_does_not_change_the_numbers(image_dir, scorers, batch_size):
    paths = scan_folder(image_dir).images
    baseline = scorers.aesthetic.score(open_all(paths))
    scorers.aesthetic.batch_size, old = batch_size, scorers.aesthetic.batch_size
    try:
        scores, embeds = scorers.aesthetic.score_and_embed(open_all(paths))
    finally:
        scorers.aesthetic.batch_size = old
    assert scores == pytest.approx(baseline, abs=TOL)
    assert len(embeds) == len(paths)


def test_embeddings_are_the_predictors_normalised_clip_embeddings(models_dir, image_dir, scorers):
    import torch
    from transformers import CLIPProcessor, CLIPVisionModelWithProjection

    paths = scan_folder(image_dir).images[:3]
    # the plain CLIP vision tower read from the same weights file (the head's keys are ignored)
    model = CLIPVisionModelWithProjection.from_pretrained(str(models_dir / AESTHETIC_REPO)).eval()
    processor = CLIPProcessor.from_pretrained(str(models_dir / AESTHETIC_REPO))
    with torch.no_grad():
        direct = model(**processor(images=open_all(paths), return_tensors="pt")).image_embeds
    direct = direct / direct.norm(dim=-1, keepdim=True)
    got = scorers.aesthetic.embed(open_all(paths))
    assert got.shape == tuple(direct.shape)
    for row_got, row_ref in zip(got.tolist(), direct.tolist()):
        assert row_got == pytest.approx(row_ref, abs=1e-5)


def test_report_coherence_matches_its_embeddings(image_dir, scorers):
    from kolorsc.scoring import coherence

    report = score_images(open_all(scan_folder(image_dir).images), None, scorers)
    again = coherence([s.embedding for s in report.images])
    assert report.coherence == again
    n = len(report.images)
    assert len(report.coherence.matrix) == n and 1 <= report.coherence.outlier_panel <= n
    assert report.coherence.min <= report.coherence.mean <= 1.0


def test_alignment_equals_a_direct_chinese_clip_computation(models_dir, image_dir, scorers):
    import torch
    from transformers import ChineseCLIPModel, ChineseCLIPProcessor

    folder = str(models_dir / "AI-ModelScope/chinese-clip-vit-base-patch16")
    paths = scan_folder(image_dir).images[:4]
    texts = ["女孩骑马", "王子，白袍少年", "水墨古风，山河", "红色长裙的女孩在教室"]
    got = scorers.alignment.score(open_all(paths), texts)
    assert len(got) == 4 and all(-1.0 <= g <= 1.0 for g in got)
    assert scorers.alignment.score(open_all(paths), texts) == got  # deterministic

    model = ChineseCLIPModel.from_pretrained(folder).eval()
    processor = ChineseCLIPProcessor.from_pretrained(folder)
    inputs = processor(text=texts, images=open_all(paths), return_tensors="pt", padding=True)
    with torch.no_grad():
        out = model(**inputs)
    # logits_per_image = scale * cos(image_i, text_j): the diagonal pairs each panel with its prompt
    expected = (out.logits_per_image.diagonal() / model.logit_scale.exp()).tolist()
    assert got == pytest.approx(expected, abs=1e-5)
    assert len(set(round(g, 6) for g in got)) > 1

    report = score_images(open_all(paths), texts, scorers)
    assert report.alignments == pytest.approx(got, abs=TOL)
    assert report.alignment_mean == pytest.approx(sum(got) / 4, abs=TOL)
    assert report.note is None


def test_missing_aesthetic_model_names_the_pull_command(tmp_path):
    with pytest.raises(ModelMissingError) as info:
        load_scorers(tmp_path, device="cpu")
    assert "kolorsc models pull aesthetic" in str(info.value)
    assert any(m.endswith("pytorch_model.bin") for m in info.value.missing)


def test_half_downloaded_aesthetic_model_is_missing(tmp_path, models_dir):
    shutil.copytree(models_dir / AESTHETIC_REPO, tmp_path / AESTHETIC_REPO)
    (tmp_path / AESTHETIC_REPO / "pytorch_model.bin").unlink()
    with pytest.raises(ModelMissingError, match="pytorch_model.bin"):
        load_scorers(tmp_path, device="cpu")


def test_without_chinese_clip_alignment_is_not_computed(tmp_path, models_dir, image_dir):
    shutil.copytree(models_dir / AESTHETIC_REPO, tmp_path / AESTHETIC_REPO)
    scorers = load_scorers(tmp_path, device="cpu")
    assert scorers.alignment is None
    report = score_images(open_all(scan_folder(image_dir).images[:2]), ["女孩", "王子"], scorers)
    assert report.alignments == [None, None] and report.alignment_mean is None
    assert "kolorsc models pull chinese-clip" in report.note
    assert report.to_scores().alignment_mean is None


def test_identity_is_stable_and_follows_the_weights(tmp_path, models_dir, scorers):
    again = load_scorers(models_dir, device="cpu")
    assert again.identity == scorers.identity
    assert json.dumps(scorers.identity, sort_keys=True)  # JSON-able: it goes into cache keys
    make_aesthetic_model(tmp_path, seed=1)
    other = load_scorers(tmp_path, device="cpu")
    assert other.identity["aesthetic"] != scorers.identity["aesthetic"]
    assert other.identity["aesthetic"]["model"] == scorers.identity["aesthetic"]["model"]


def run_cli(*args):
    from click.testing import CliRunner

    from kolorsc.cli import main

    return CliRunner().invoke(main, ["score", *map(str, args)], catch_exceptions=False)


def test_cli_score_prints_the_seeds_numbers(models_dir, image_dir):
    ref_mean, ref = seed_evaluate(str(models_dir / AESTHETIC_REPO), str(image_dir))
    result = run_cli(image_dir, "--models-dir", models_dir, "--device", "cpu", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert {d["file"]: d["aesthetic"] for d in data["images"]} == pytest.approx(ref, abs=TOL)
    assert data["aesthetic_mean"] == pytest.approx(ref_mean, abs=TOL)
    assert data["gate"] == ("PASS" if data["aesthetic_mean"] >= 6.0 else "FAIL")
    # the gate follows --threshold on the same mean
    below = run_cli(image_dir, "--models-dir", models_dir, "--threshold", ref_mean + 0.01, "--json")
    assert json.loads(below.stdout)["gate"] == "FAIL"
    above = run_cli(image_dir, "--models-dir", models_dir, "--threshold", ref_mean - 0.01)
    assert "gate            PASS" in above.stdout
    assert f"{ref_mean:.4f}" in above.stdout


def test_cli_score_with_prompts_and_a_stray_file(tmp_path, models_dir, image_dir):
    folder = tmp_path / "imgs"
    shutil.copytree(image_dir, folder)
    names = sorted(p.name for p in folder.iterdir())
    (folder / "notes.txt").write_text("not an image")
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("\n".join(["女孩骑马"] * len(names)), encoding="utf-8")
    result = run_cli(folder, "--models-dir", models_dir, "--prompts", prompts, "--json")
    assert result.exit_code == 0, result.output
    assert "notes.txt" in result.stderr and "warning" in result.stderr
    data = json.loads(result.stdout)
    assert [d["file"] for d in data["images"]] == names
    assert all(isinstance(d["alignment"], float) for d in data["images"])
    assert data["not_images"] == ["notes.txt"]


def test_cli_score_without_the_model_fails_without_a_number(tmp_path, image_dir):
    result = run_cli(image_dir, "--models-dir", tmp_path / "empty")
    assert result.exit_code == 1
    assert "kolorsc models pull aesthetic" in result.stderr
    assert "gate" not in result.stdout and "mean" not in result.stdout
    assert not any(ch.isdigit() for ch in result.stdout)
