"""The submission bundle and `kolorsc bundle verify`: layout, determinism, and every rule
verify enforces (eight images only, prompts, a loadable LoRA, not a preview, the gate)."""

from __future__ import annotations

import io
import json
import zipfile

import pytest
from click.testing import CliRunner

from _emit_fixtures import images, make_png, make_result, write_safetensors
from kolorsc.cli import main
from kolorsc.emit import PREVIEW_MARKER, bundle_filename, bundle_zip, panel_png, verify_bundle
from kolorsc.emit.bundle import bundle_entries, deterministic_zip
from kolorsc.errors import BuildError, UsageError


def _bundle(tmp_path, **kw) -> tuple[object, bytes]:
    result = make_result(tmp_path, **kw)
    pngs = [panel_png(png, pr, result) for png, pr in zip(images(), result.panels)]
    return result, bundle_zip(result, pngs, result.lora.path if result.lora else None)


NAMED = "星河队-可图Kolors训练-rainy-day.zip"  # the challenge's rule: {team}-可图Kolors训练-{id}.zip


def _write(tmp_path, data: bytes, name: str = NAMED):
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _entries(tmp_path, **kw) -> dict[str, bytes]:
    result = make_result(tmp_path, **kw)
    pngs = [panel_png(png, pr, result) for png, pr in zip(images(), result.panels)]
    return bundle_entries(result, pngs, result.lora.path if result.lora else None)


def _messages(report) -> str:
    return "\n".join(f.format() for f in report.findings)


class FakeScorer:
    """Scores we control, to test the gate logic (not the scorer)."""

    def __init__(self, value: float):
        self.value = value
        self.seen: list = []

    def score(self, imgs):
        self.seen = list(imgs)
        return [self.value] * len(imgs)


def test_bundle_layout(tmp_path):
    result, data = _bundle(tmp_path, aesthetic=[6.5] * 8)
    assert bundle_filename(result) == "星河队-可图Kolors训练-rainy-day.zip"
    zf = zipfile.ZipFile(io.BytesIO(data))
    names = zf.namelist()
    assert [n for n in names if n.startswith("images/")] == [f"images/{i:02d}.png" for i in range(1, 9)]
    assert set(names) == {f"images/{i:02d}.png" for i in range(1, 9)} | {
        "lora/watercolor.safetensors", "README.md", "prompts.json", "prompts.md", "scores.json", "workflow_comfyui.json",
    }
    assert names == sorted(names)
    for info in zf.infolist():
        assert info.date_time == (1980, 1, 1, 0, 0, 0)
        assert info.external_attr >> 16 == 0o100644
    assert zf.read("lora/watercolor.safetensors") == result.lora.path.read_bytes()
    prompts = json.loads(zf.read("prompts.json"))
    assert [p["seed"] for p in prompts["panels"]] == [pr.seed for pr in result.panels]
    assert prompts["panels"][0]["prompt"] == result.panels[0].panel.prompt
    assert prompts["lora"]["scale"] == 2.0 and prompts["lora"]["comfyui_strength"] == 8.0
    card = zf.read("README.md").decode()
    assert "Kwai-Kolors/Kolors" in card and "ComfyUI-Kolors-MZ" in card and "lora_alpha=2.0" in card
    assert "PREVIEW" not in card
    assert "PREVIEW" not in zf.read("prompts.md").decode()


def test_bundle_uses_the_chosen_seed(tmp_path):
    from dataclasses import replace

    result = make_result(tmp_path)
    pr = result.panels[0]
    panels = (replace(pr, chosen=pr.candidates[1]),) + result.panels[1:]  # candidate 2 won
    result = replace(result, panels=panels)
    entries = bundle_entries(result, images(), None)
    assert json.loads(entries["prompts.json"])["panels"][0]["seed"] == pr.panel.seed + 1
    assert json.loads(entries["scores.json"])["panels"][0]["seed"] == pr.panel.seed + 1
    workflow = json.loads(entries["workflow_comfyui.json"])
    samplers = [n for n in workflow.values() if n["class_type"] == "KSampler"]
    assert [n["inputs"]["seed"] for n in samplers if n["_meta"]["title"].startswith("panel 01")] == [pr.panel.seed + 1]


def test_bundle_is_deterministic(tmp_path):
    _, a = _bundle(tmp_path)
    _, b = _bundle(tmp_path)
    assert a == b


def test_deterministic_zip_marks_utf8_names():
    data = deterministic_zip({"说明.txt": b"x", "a.txt": b"y"})
    info = zipfile.ZipFile(io.BytesIO(data)).getinfo("说明.txt")
    assert info.flag_bits & 0x800


def test_bundle_refuses_anything_but_eight_images(tmp_path):
    result = make_result(tmp_path)
    with pytest.raises(BuildError, match="exactly 8"):
        bundle_zip(result, images()[:7], None)


def test_preview_bundle_says_so_and_fails_verify(tmp_path):
    _, data = _bundle(tmp_path, preview=True)
    zf = zipfile.ZipFile(io.BytesIO(data))
    assert "NOT A VALID SUBMISSION" in zf.read(PREVIEW_MARKER).decode()
    assert "NOT A VALID SUBMISSION" in zf.read("README.md").decode()
    report = verify_bundle(_write(tmp_path, data))
    assert not report.ok
    assert "PREVIEW" in _messages(report) and "8 image(s) marked kolorsc:preview" in _messages(report)


def test_preview_images_alone_are_caught(tmp_path):
    entries = _entries(tmp_path, preview=True, aesthetic=[7.0] * 8)
    del entries[PREVIEW_MARKER]
    prompts = json.loads(entries["prompts.json"])
    prompts["preview"] = False
    entries["prompts.json"] = json.dumps(prompts).encode()
    report = verify_bundle(_write(tmp_path, deterministic_zip(entries)))
    assert [f.message for f in report.errors] == [
        "this is a PREVIEW bundle (drafts, not Kolors renders), not a valid submission: 8 image(s) marked kolorsc:preview"
    ]


def test_valid_bundle_passes(tmp_path):
    _, data = _bundle(tmp_path, aesthetic=[6.5] * 8)
    report = verify_bundle(_write(tmp_path, data))
    assert report.ok, _messages(report)
    assert report.findings == []
    assert report.aesthetic_mean == pytest.approx(6.5)


def test_seven_images(tmp_path):
    entries = _entries(tmp_path, aesthetic=[6.5] * 8)
    del entries["images/05.png"]
    report = verify_bundle(_write(tmp_path, deterministic_zip(entries)))
    assert not report.ok
    assert "holds 7 files, not exactly 8" in _messages(report) and "missing: images/05.png" in _messages(report)


def test_an_extra_file_in_images(tmp_path):
    entries = _entries(tmp_path, aesthetic=[6.5] * 8)
    entries["images/.DS_Store"] = b"junk"
    report = verify_bundle(_write(tmp_path, deterministic_zip(entries)))
    assert not report.ok
    assert "holds 9 files" in _messages(report) and "extra: images/.DS_Store" in _messages(report)
    assert "images/.DS_Store is not an image file" in _messages(report)


def test_an_unreadable_image(tmp_path):
    entries = _entries(tmp_path, aesthetic=[6.5] * 8)
    entries["images/03.png"] = entries["images/03.png"][:200]  # truncated
    report = verify_bundle(_write(tmp_path, deterministic_zip(entries)))
    assert [f.message.split(":")[0] for f in report.errors] == ["images/03.png cannot be read as an image"]


def test_missing_prompts(tmp_path):
    entries = _entries(tmp_path, aesthetic=[6.5] * 8)
    prompts = json.loads(entries["prompts.json"])
    prompts["panels"][1]["prompt"] = ""
    entries["prompts.json"] = json.dumps(prompts).encode()
    report = verify_bundle(_write(tmp_path, deterministic_zip(entries)))
    assert [f.message for f in report.errors] == ["no prompt in prompts.json for images/02.png"]
    del entries["prompts.json"]
    report = verify_bundle(_write(tmp_path, deterministic_zip(entries)))
    assert "prompts.json is missing" in _messages(report) and not report.ok


def test_missing_lora(tmp_path):
    entries = _entries(tmp_path, aesthetic=[6.5] * 8)
    del entries["lora/watercolor.safetensors"]
    report = verify_bundle(_write(tmp_path, deterministic_zip(entries)))
    assert [f.message for f in report.errors] == [
        "no LoRA .safetensors file in the bundle: the challenge requires the trained LoRA"
    ]


@pytest.mark.parametrize(
    "damage, expected",
    [
        (lambda b: b[:-10], "not a loadable safetensors file"),  # truncated data
        (lambda b: b"\xff" * 8 + b[8:], "not a loadable safetensors file"),  # absurd header length
        (lambda b: b[:8] + b"\x80" + b[9:], "not a loadable safetensors file"),  # header not UTF-8 JSON
    ],
)
def test_corrupt_lora(tmp_path, damage, expected):
    entries = _entries(tmp_path, aesthetic=[6.5] * 8)
    entries["lora/watercolor.safetensors"] = damage(entries["lora/watercolor.safetensors"])
    report = verify_bundle(_write(tmp_path, deterministic_zip(entries)))
    assert not report.ok and expected in _messages(report)


def test_safetensors_without_lora_tensors(tmp_path):
    entries = _entries(tmp_path, aesthetic=[6.5] * 8)
    entries["lora/watercolor.safetensors"] = write_safetensors(tmp_path / "w.safetensors", {"unet.conv.weight": ("F16", [4, 4])}).read_bytes()
    report = verify_bundle(_write(tmp_path, deterministic_zip(entries)))
    assert "is not a LoRA: no lora_down/lora_up" in _messages(report)
    entries["lora/watercolor.safetensors"] = write_safetensors(tmp_path / "w2.safetensors", {"x.lora_down.weight": ("F16", [4, 4])}).read_bytes()
    report = verify_bundle(_write(tmp_path, deterministic_zip(entries)))
    assert "without their pair" in _messages(report)
    # peft-style names are a LoRA too
    entries["lora/watercolor.safetensors"] = write_safetensors(
        tmp_path / "w3.safetensors", {"x.lora_A.weight": ("F16", [4, 8]), "x.lora_B.weight": ("F16", [8, 4])}
    ).read_bytes()
    assert verify_bundle(_write(tmp_path, deterministic_zip(entries))).ok


def test_gate_from_scores_json(tmp_path):
    _, data = _bundle(tmp_path, aesthetic=[5.9] * 8)
    report = verify_bundle(_write(tmp_path, data))
    assert not report.ok and "mean aesthetic score 5.900 (from scores.json) is below the threshold 6.0" in _messages(report)
    assert verify_bundle(_write(tmp_path, data), threshold=5.5).ok


def test_gate_unknown_without_scores_is_a_warning(tmp_path):
    _, data = _bundle(tmp_path)
    report = verify_bundle(_write(tmp_path, data))
    assert report.ok
    assert [f.level for f in report.findings] == ["warning"]
    assert "could not be checked" in report.findings[0].message


@pytest.mark.parametrize("value, ok", [(5.999, False), (6.0, True), (6.001, True)])
def test_gate_flips_at_the_threshold_with_a_rescoring_scorer(tmp_path, value, ok):
    _, data = _bundle(tmp_path, aesthetic=[9.0] * 8)  # scores.json says 9: the scorer must win
    scorer = FakeScorer(value)
    report = verify_bundle(_write(tmp_path, data), scorer=scorer)
    assert report.ok is ok
    assert report.rescored and report.aesthetic_mean == pytest.approx(value)
    assert len(scorer.seen) == 8 and scorer.seen[0].mode == "RGB"


def test_not_a_zip_or_missing_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="no such file"):
        verify_bundle(tmp_path / "nope.zip")
    with pytest.raises(UsageError, match="not a zip"):
        verify_bundle(_write(tmp_path, make_png(1), "x.zip"))


def test_cli_exit_codes(tmp_path):
    runner = CliRunner()
    _, good = _bundle(tmp_path, aesthetic=[6.5] * 8)
    ok = runner.invoke(main, ["bundle", "verify", str(_write(tmp_path / "good", good))])
    assert ok.exit_code == 0, ok.output
    assert "OK" in ok.output and "mean aesthetic 6.500" in ok.output
    _, low = _bundle(tmp_path, aesthetic=[6.5] * 8)
    strict = runner.invoke(main, ["bundle", "verify", str(_write(tmp_path / "low", low)), "--threshold", "7"])
    assert strict.exit_code == 1 and "below the threshold 7.0" in strict.output
    _, preview = _bundle(tmp_path, preview=True)
    bad = runner.invoke(main, ["bundle", "verify", str(_write(tmp_path / "p", preview))])
    assert bad.exit_code == 1 and "error: this is a PREVIEW bundle" in bad.output and "NOT VALID" in bad.output
    missing = runner.invoke(main, ["bundle", "verify", str(tmp_path / "none.zip")])
    assert missing.exit_code == 2


def test_cli_rescore_without_weights_says_what_is_missing(tmp_path):
    _, data = _bundle(tmp_path, aesthetic=[6.5] * 8)
    out = CliRunner().invoke(
        main, ["bundle", "verify", str(_write(tmp_path, data)), "--rescore", "--models-dir", str(tmp_path / "models")]
    )
    assert out.exit_code in (1, 2) and "error" in out.output.lower()


def test_a_bundle_zipped_with_its_folder_gets_a_hint(tmp_path):
    entries = _entries(tmp_path, aesthetic=[6.5] * 8)
    nested = deterministic_zip({f"team-bundle/{name}": data for name, data in entries.items()})
    report = verify_bundle(_write(tmp_path, nested))
    assert not report.ok
    assert "found team-bundle/images/: zip the folder's contents, not the folder" in _messages(report)


_HASH_SCRIPT = """
import hashlib, sys
from pathlib import Path
sys.path.insert(0, sys.argv[2])
from _emit_fixtures import images, make_result
from kolorsc.emit import bundle_zip, panel_png, storyboard_pdf, storyboard_png
r = make_result(Path(sys.argv[1]), aesthetic=[6.2] * 8)
pngs = [panel_png(p, pr, r) for p, pr in zip(images(), r.panels)]
for data in (storyboard_pdf(r, images()), storyboard_png(r, images()), bundle_zip(r, pngs, r.lora.path)):
    print(hashlib.sha256(data).hexdigest())
"""


def test_outputs_are_identical_across_processes(tmp_path):
    """Two clean builds are two processes: different hash seeds, fresh font registration."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    here = str(Path(__file__).parents[1])  # where the _*_fixtures helpers are
    runs = []
    for seed in ("1", "2"):
        work = tmp_path / seed
        work.mkdir()
        env = dict(os.environ, PYTHONHASHSEED=seed)
        out = subprocess.run([sys.executable, "-c", _HASH_SCRIPT, str(work), here], capture_output=True, text=True, env=env, check=True)
        runs.append(out.stdout.split())
    assert len(runs[0]) == 3 and runs[0] == runs[1]


def test_model_card_explains_a_missing_lora(tmp_path):
    from kolorsc.emit import model_card

    card = model_card(make_result(tmp_path, lora=False, preview=True))
    assert "preview builds do not train it" in card and "lora/watercolor" not in card


@pytest.mark.parametrize("name, message", [
    ("bundle.zip", "the file name bundle.zip does not follow the challenge's rule {team}-可图Kolors训练-{id}.zip"),
    ("-可图Kolors训练-rainy-day.zip", "does not follow the challenge's rule"),
    ("my-team-可图Kolors训练-rainy-day.zip", 'the team is the placeholder "my-team"'),
    ("月亮队-可图Kolors训练-rainy-day.zip", 'the file name says team "月亮队" but prompts.json says "星河队"'),
    ("星河队-可图Kolors训练-sunny-day.zip", 'the file name says "sunny-day" but prompts.json is of the story "rainy-day"'),
])
def test_the_file_name_follows_the_challenge_rule(tmp_path, name, message):
    _, data = _bundle(tmp_path, aesthetic=[6.5] * 8)
    assert verify_bundle(_write(tmp_path / "ok", data)).ok
    report = verify_bundle(_write(tmp_path / "bad", data, name))
    assert not report.ok and any(message in f.message for f in report.errors), [f.message for f in report.errors]
