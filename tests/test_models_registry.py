"""The models directory: registry, list, pull (with an injected downloader: no hub here), verify
(truncated / corrupt files), fingerprint, and the `kolorsc models` commands."""

from __future__ import annotations

from _extras import require_models

require_models()

import json
import shutil

import pytest
import torch
from _kolors_fixtures import KOLORS_REPO, write_kolors_layout
from click.testing import CliRunner
from safetensors.torch import save_file

from kolorsc import models
from kolorsc.cli import main
from kolorsc.errors import ModelMissingError


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A complete Kolors layout, used as the 'remote' that downloads copy from."""
    root = tmp_path_factory.mktemp("remote") / "models"
    write_kolors_layout(root)
    return root


@pytest.fixture
def complete(source, tmp_path):
    dest = tmp_path / "models"
    shutil.copytree(source, dest)
    return dest


def copy_download(source):
    """A downloader that copies the asked-for files from `source` (what modelscope would fetch)."""
    calls = []

    def download(repo, files, dest):
        calls.append((repo, list(files)))
        for rel in files:
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source / repo / rel, dest / rel)

    download.calls = calls
    return download


def test_registry_has_the_kolors_release_layout():
    spec = models.REGISTRY["kolors"]
    assert spec.repo == "Kwai-Kolors/Kolors"
    shards = [f for f in spec.required if f.startswith("text_encoder/pytorch_model-")]
    assert len(shards) == 7 and shards[-1].endswith("00007-of-00007.bin")
    assert "unet/diffusion_pytorch_model.safetensors" in spec.required
    assert models.REGISTRY["vae-fp16-fix"].repo == "AI-ModelScope/sdxl-vae-fp16-fix"


def test_list_reports_present_and_missing(complete, tmp_path):
    by_name = {s.name: s for s in models.list_models(complete)}
    assert by_name["kolors"].present and by_name["kolors"].size_bytes > 0
    assert not by_name["vae-fp16-fix"].present
    assert by_name["vae-fp16-fix"].missing == ("diffusion_pytorch_model.safetensors",)


def test_require_lists_missing_files(tmp_path):
    with pytest.raises(ModelMissingError) as err:
        models.require("kolors", tmp_path)
    assert "kolorsc models pull kolors" in str(err.value)
    assert len(err.value.missing) == len(models.REGISTRY["kolors"].required)


def test_verify_complete_layout_is_ok(complete):
    report = models.verify(["kolors"], complete)
    assert report.ok, report.problems()


def test_verify_finds_truncated_safetensors(complete):
    path = complete / KOLORS_REPO / "unet" / "diffusion_pytorch_model.safetensors"
    path.write_bytes(path.read_bytes()[:-100])
    report = models.verify(["kolors"], complete)
    assert not report.ok
    [problem] = report.problems()
    assert str(path) in problem and "truncated" in problem
    # a file cut inside its header too
    path.write_bytes(path.read_bytes()[:20])
    assert "truncated" in models.check_file(path)


def test_verify_finds_truncated_shard_and_bad_index(complete):
    te = complete / KOLORS_REPO / "text_encoder"
    shard = te / "pytorch_model-00003-of-00007.bin"
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])
    index = te / "pytorch_model.bin.index.json"
    data = json.loads(index.read_text())
    data["weight_map"]["transformer.extra"] = "pytorch_model-00009-of-00007.bin"
    index.write_text(json.dumps(data))
    problems = "\n".join(models.verify(["kolors"], complete).problems())
    assert "00003-of-00007.bin" in problems and "zip" in problems
    assert "missing shards: pytorch_model-00009-of-00007.bin" in problems


def test_pull_moves_complete_files_into_place(source, tmp_path):
    dest = tmp_path / "models"
    download = copy_download(source)
    [folder] = models.pull(["kolors"], dest, download=download)
    assert folder == dest / KOLORS_REPO and models.verify(["kolors"], dest).ok
    assert not (dest / ".partial" / KOLORS_REPO).exists()
    models.pull(["kolors"], dest, download=download)  # nothing missing: no second download
    assert len(download.calls) == 1


def test_pull_offline_is_one_clear_error(tmp_path):
    def offline(repo, files, dest):
        raise ConnectionError("Failed to resolve 'www.modelscope.cn'")

    with pytest.raises(ModelMissingError) as err:
        models.pull(["vae-fp16-fix"], tmp_path, download=offline)
    assert "modelscope.cn" in str(err.value) and "diffusion_pytorch_model.safetensors" in str(err.value)
    assert not (tmp_path / "AI-ModelScope").exists()


def test_pull_never_keeps_a_half_downloaded_file(tmp_path):
    def interrupted(repo, files, dest):
        save_file({"w": torch.zeros(64, 64)}, str(dest / files[0]))
        path = dest / files[0]
        path.write_bytes(path.read_bytes()[:-500])  # the connection dropped mid-file

    with pytest.raises(ModelMissingError, match="incomplete"):
        models.pull(["vae-fp16-fix"], tmp_path, download=interrupted)
    assert models.missing_files(models.REGISTRY["vae-fp16-fix"], tmp_path) == ["diffusion_pytorch_model.safetensors"]


def test_fingerprint_is_stable_and_sees_a_replaced_file(complete):
    first = models.fingerprint("kolors", complete)
    assert models.fingerprint("kolors", complete) == first
    save_file({"other": torch.zeros(2)}, str(complete / KOLORS_REPO / "vae" / "diffusion_pytorch_model.safetensors"))
    assert models.fingerprint("kolors", complete) != first


def test_cli_models_list_and_verify(complete):
    runner = CliRunner()
    out = runner.invoke(main, ["models", "list", "--models-dir", str(complete)])
    assert out.exit_code == 0 and "kolors" in out.output and "present" in out.output
    ok = runner.invoke(main, ["models", "verify", "kolors", "--models-dir", str(complete)])
    assert ok.exit_code == 0, ok.output
    (complete / KOLORS_REPO / "vae" / "diffusion_pytorch_model.safetensors").write_bytes(b"\x01\x00")
    bad = runner.invoke(main, ["models", "verify", "kolors", "--models-dir", str(complete)])
    assert bad.exit_code == 1 and "vae/diffusion_pytorch_model.safetensors" in bad.output
    unknown = runner.invoke(main, ["models", "verify", "nope", "--models-dir", str(complete)])
    assert unknown.exit_code == 2 and "unknown model" in unknown.output
