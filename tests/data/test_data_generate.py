"""`dataset.source: generate`: the spec, images rendered through the Engine interface (the
preview engine here; the build passes the kolors engine) with caption sidecars, their key,
and the generated folder prepared like any local dataset."""

from __future__ import annotations

import csv

import pytest
from _build_fixtures import CountingEngine

from kolorsc.data import dataset_fingerprint, prepare_dataset
from kolorsc.data.generate import (
    DEFAULT_SUBJECTS,
    as_local,
    ensure_generated,
    generate_dataset,
    generate_fingerprint,
    generation_jobs,
)
from kolorsc.engines.preview import PreviewEngine
from kolorsc.errors import SpecError, TrainingError
from kolorsc.spec import load_style

STYLE = """kolorsc: 1
name: 童话3D
trigger: 高精度3D渲染，童话插画
negative: 低分辨率，文字
lora:
  train: {{rank: 4, resolution: 512}}
  dataset:
    source: generate
{generate}"""


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KOLORSC_CACHE", str(tmp_path / "cache" / "store"))  # the hash memo lives beside it


def style_file(tmp_path, generate="    generate:\n      count: 5\n      prompts: [一只猫, 古桥和流水]\n      seed: 7\n      steps: 20\n"):
    (tmp_path / "styles").mkdir(exist_ok=True)
    path = tmp_path / "styles" / "fairy.yaml"
    path.write_text(STYLE.format(generate=generate), encoding="utf-8")
    return load_style(path)


def tree(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_the_spec_and_the_jobs(tmp_path):
    style = style_file(tmp_path)
    gen = style.lora.dataset.generate
    assert (gen.count, gen.prompts, gen.seed, gen.steps, gen.cfg) == (5, ("一只猫", "古桥和流水"), 7, 20, 4.0)
    jobs = generation_jobs(style)
    assert [j.panel.prompt for j in jobs] == ["高精度3D渲染，童话插画，一只猫", "高精度3D渲染，童话插画，古桥和流水"] * 2 + ["高精度3D渲染，童话插画，一只猫"]
    assert [j.seed for j in jobs] == [7, 8, 9, 10, 11]
    assert {(j.panel.width, j.panel.height, j.panel.steps, j.panel.negative) for j in jobs} == {(512, 512, 20, "低分辨率，文字")}
    defaults = generation_jobs(style_file(tmp_path, generate=""))
    assert len(defaults) == 40 and defaults[0].panel.prompt.endswith(DEFAULT_SUBJECTS[0])


def test_generate_settings_need_source_generate(tmp_path):
    (tmp_path / "styles").mkdir()
    path = tmp_path / "styles" / "x.yaml"
    path.write_text(STYLE.format(generate="    generate: {count: 3}\n").replace("source: generate", "source: local\n    path: ../data"),
                    encoding="utf-8")
    with pytest.raises(SpecError) as info:
        load_style(path)
    assert 'lora.dataset.source: must be "generate", got "local"' in info.value.diagnostics[0].format()


def test_generated_images_captions_and_manifest(tmp_path):
    style = style_file(tmp_path)
    engine = PreviewEngine(long_side=96)
    seen = []
    report = generate_dataset(style, engine, tmp_path / "gen", lambda d, t, label: seen.append((d, t)))
    files = tree(tmp_path / "gen")
    assert sorted(files) == ["00000.png", "00000.txt", "00001.png", "00001.txt", "00002.png", "00002.txt",
                             "00003.png", "00003.txt", "00004.png", "00004.txt", "manifest.json"]
    assert files["00001.txt"].decode() == "高精度3D渲染，童话插画，古桥和流水"
    assert files["00000.png"] != files["00002.png"]  # same subject, another seed
    assert seen[-1] == (5, 5) and report.images[4] == ("00004.png", "高精度3D渲染，童话插画，一只猫", 11)
    assert report.fingerprint == generate_fingerprint(style, engine.identity())
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".gen")]  # no temp folder left

    again = generate_dataset(style, PreviewEngine(long_side=96), tmp_path / "again")
    assert tree(tmp_path / "again") == files and again.fingerprint == report.fingerprint  # deterministic

    prepared = prepare_dataset(as_local(style.lora.dataset, tmp_path / "gen"), tmp_path, tmp_path / "prepared")
    assert prepared.kept == 5
    with open(tmp_path / "prepared" / "train" / "metadata.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [r["text"] for r in rows][:2] == ["高精度3D渲染，童话插画，一只猫", "高精度3D渲染，童话插画，古桥和流水"]


def test_the_key_follows_every_input(tmp_path):
    style = style_file(tmp_path)
    identity = PreviewEngine(long_side=96).identity()
    base = generate_fingerprint(style, identity)
    assert generate_fingerprint(style, {**identity, "version": "2"}) != base  # another model or engine
    assert generate_fingerprint(style_file(tmp_path, generate="    generate: {count: 6, prompts: [一只猫, 古桥和流水], seed: 7, steps: 20}\n"), identity) != base
    assert generate_fingerprint(style_file(tmp_path, generate="    generate: {count: 5, prompts: [一只狗, 古桥和流水], seed: 7, steps: 20}\n"), identity) != base
    with pytest.raises(TrainingError, match="keyed by the style and the engine"):
        dataset_fingerprint(style.lora.dataset, tmp_path)
    full = dataset_fingerprint(style.lora.dataset, tmp_path, style=style, engine_identity=identity)
    assert full == dataset_fingerprint(style.lora.dataset, tmp_path, style=style, engine_identity=identity)
    with pytest.raises(TrainingError, match="rendered first"):
        prepare_dataset(style.lora.dataset, tmp_path, tmp_path / "p")


def test_reused_when_unchanged_and_nothing_kept_when_the_engine_fails(tmp_path):
    style = style_file(tmp_path)
    engine = CountingEngine()
    assert ensure_generated(style, engine, tmp_path / "gen") is True and len(engine.rendered) == 5
    assert ensure_generated(style, engine, tmp_path / "gen") is False and len(engine.rendered) == 5

    with pytest.raises(RuntimeError, match="simulated crash"):
        generate_dataset(style, CountingEngine(fail_after=2), tmp_path / "broken")
    assert not (tmp_path / "broken").exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".broken")]

    class Forgetful(PreviewEngine):
        def render(self, jobs, lora, progress=None):
            yield from list(super().render(jobs, lora, progress))[:-1]

    with pytest.raises(TrainingError, match="no image for 1 of 5"):
        generate_dataset(style, Forgetful(long_side=64), tmp_path / "short")
    assert not (tmp_path / "short").exists()


def test_kolorsc_train_renders_then_prepares_a_generated_dataset(tmp_path, monkeypatch):
    """`kolorsc train --dataset-only` on a generate style; the kolors engine it asks for is the
    preview engine here (no weights on this machine), through the same Engine interface."""
    from click.testing import CliRunner

    import kolorsc.api
    from kolorsc.cli import main

    style_file(tmp_path)
    asked = []
    monkeypatch.setattr(kolorsc.api, "get_engine", lambda name, **kw: asked.append(name) or PreviewEngine(long_side=64))
    args = ["train", str(tmp_path / "styles" / "fairy.yaml"), "--dataset-only", "--out", str(tmp_path / "out")]
    first = CliRunner().invoke(main, args, catch_exceptions=False)
    assert first.exit_code == 0, first.output
    assert asked == ["kolors"] and f"generated: {tmp_path / 'out' / 'generated'}" in first.output
    assert "5 image(s) found, 5 kept" in first.output
    assert len((tmp_path / "out" / "dataset" / "train" / "metadata.csv").read_text("utf-8").splitlines()) == 6
    second = CliRunner().invoke(main, args, catch_exceptions=False)
    assert "generated dataset unchanged" in second.output and "dataset unchanged" in second.output
