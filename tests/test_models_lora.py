"""A style reusing a LoRA published on ModelScope (`lora.modelscope`, `file`, `revision`): the
spec, and the download into the models directory (an injected downloader stands in for the
hub, which no machine here reaches; it writes what modelscope's snapshot_download writes)."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from safetensors.numpy import save_file

from kolorsc import models
from kolorsc.errors import ModelMissingError, SpecError, UsageError
from kolorsc.spec import check_paths, load_style

STYLE = """kolorsc: 1
name: 借用
trigger: 水彩画
lora:
  scale: 1.2
  modelscope: some-team/watercolour-lora
{extra}"""


def write_style(root, extra=""):
    (root / "styles").mkdir(exist_ok=True)
    path = root / "styles" / "borrowed.yaml"
    path.write_text(STYLE.format(extra=extra), encoding="utf-8")
    return path


def lora_bytes(tmp_path, seed=0) -> bytes:
    rng = np.random.default_rng(seed)
    path = tmp_path / f"made-{seed}.safetensors"
    save_file({"lora_unet_x.lora_down.weight": rng.standard_normal((4, 8)).astype(np.float32),
               "lora_unet_x.lora_up.weight": rng.standard_normal((8, 4)).astype(np.float32)}, str(path))
    return path.read_bytes()


def hub(files: dict[str, bytes]):
    """A downloader serving `files` (repo-relative name -> bytes) for whatever patterns it is asked."""
    import fnmatch

    calls = []

    def download(repo, patterns, dest, revision):
        calls.append((repo, list(patterns), revision))
        for name, data in files.items():
            if any(fnmatch.fnmatch(name, p) for p in patterns):
                (dest / name).parent.mkdir(parents=True, exist_ok=True)
                (dest / name).write_bytes(data)

    download.calls = calls
    return download


def test_the_spec_reads_modelscope_file_and_revision(tmp_path):
    style = load_style(write_style(tmp_path, "  file: v2/lora.safetensors\n  revision: v1.0\n"))
    assert (style.lora.modelscope, style.lora.file, style.lora.revision) == ("some-team/watercolour-lora", "v2/lora.safetensors", "v1.0")
    assert style.lora.path is None and style.lora.training is None and style.lora.scale == 1.2


@pytest.mark.parametrize("extra, message", [
    ("  path: ../x.safetensors\n", "lora: give only one of path, modelscope or train, not path and modelscope"),
    ("  file: ../../etc/x.safetensors\n", "lora.file: must be a .safetensors path inside the repository"),
    ("  file: lora.bin\n", "lora.file: must be a .safetensors path inside the repository"),
    ("  revision: a/b\n", "lora.revision: must be a branch, tag or commit name"),
])
def test_bad_modelscope_settings_are_reported(tmp_path, extra, message):
    with pytest.raises(SpecError) as info:
        load_style(write_style(tmp_path, extra))
    assert message in info.value.diagnostics[0].format()


def test_bad_repository_id_and_file_without_modelscope(tmp_path):
    path = tmp_path / "styles" / "borrowed.yaml"
    write_style(tmp_path)
    path.write_text(path.read_text("utf-8").replace("some-team/watercolour-lora", "not a repo"), encoding="utf-8")
    assert "lora.modelscope: must look like owner/name" in check_paths([path]).diagnostics[0].format()
    path.write_text("kolorsc: 1\nname: n\ntrigger: t\nlora:\n  path: ../a.safetensors\n  file: a.safetensors\n",
                    encoding="utf-8")
    assert '"file" needs "modelscope" beside it' in check_paths([path]).diagnostics[0].format()


def test_downloaded_once_through_partial_then_kept(tmp_path):
    spec = load_style(write_style(tmp_path)).lora
    models_dir = tmp_path / "models"
    data = lora_bytes(tmp_path)
    download = hub({"watercolour.safetensors": data, "README.md": b"card"})
    path = models.modelscope_lora_path(spec, models_dir, download)
    assert path == models_dir / "some-team" / "watercolour-lora" / "watercolour.safetensors"
    assert path.read_bytes() == data and download.calls == [("some-team/watercolour-lora", ["*.safetensors"], None)]
    assert not [p for p in (models_dir / ".partial").rglob("*") if p.is_file()]
    assert models.lora_file(spec, models_dir, download) == path and len(download.calls) == 1  # no second download
    assert hashlib.sha256(path.read_bytes()).hexdigest() == hashlib.sha256(data).hexdigest()  # the key's input


def test_a_pinned_revision_and_file_get_their_own_folder(tmp_path):
    spec = load_style(write_style(tmp_path, "  file: v2/lora.safetensors\n  revision: v1.0\n")).lora
    download = hub({"v2/lora.safetensors": lora_bytes(tmp_path, 1), "v1/lora.safetensors": lora_bytes(tmp_path, 2)})
    path = models.modelscope_lora_path(spec, tmp_path / "models", download)
    assert path == tmp_path / "models" / "some-team" / "watercolour-lora@v1.0" / "v2" / "lora.safetensors"
    assert download.calls == [("some-team/watercolour-lora", ["v2/lora.safetensors"], "v1.0")]


def test_offline_the_error_says_what_is_missing_and_how_to_get_it(tmp_path):
    spec = load_style(write_style(tmp_path)).lora

    def offline(repo, patterns, dest, revision):
        (dest / "watercolour.safetensors").write_bytes(b"half a fi")  # what a dropped connection leaves
        raise ConnectionError("Failed to resolve 'modelscope.cn'")

    with pytest.raises(ModelMissingError) as info:
        models.modelscope_lora_path(spec, tmp_path / "models", offline)
    text = str(info.value)
    assert "LoRA some-team/watercolour-lora (*.safetensors) is not in" in text and "modelscope.cn" in text
    assert "modelscope download --model some-team/watercolour-lora" in text
    assert not [p for p in (tmp_path / "models").rglob("*") if p.is_file()]  # nothing half-downloaded stays


def test_truncated_missing_and_ambiguous_downloads(tmp_path):
    spec = load_style(write_style(tmp_path)).lora
    whole = lora_bytes(tmp_path)
    with pytest.raises(ModelMissingError, match="is incomplete: truncated"):
        models.modelscope_lora_path(spec, tmp_path / "m1", hub({"w.safetensors": whole[:-10]}))
    assert not (tmp_path / "m1" / "some-team" / "watercolour-lora" / "w.safetensors").exists()
    with pytest.raises(ModelMissingError, match="has no \\*.safetensors"):
        models.modelscope_lora_path(spec, tmp_path / "m2", hub({"README.md": b"x"}))
    with pytest.raises(UsageError, match="holds 2 LoRA files .* choose one with lora.file"):
        models.modelscope_lora_path(spec, tmp_path / "m3", hub({"a.safetensors": whole, "b.safetensors": whole}))
    # a file damaged after download is reported, not used
    good = models.modelscope_lora_path(spec, tmp_path / "m4", hub({"w.safetensors": whole}))
    good.write_bytes(whole[:100])
    with pytest.raises(ModelMissingError, match="is damaged"):
        models.modelscope_lora_path(spec, tmp_path / "m4", hub({}))
