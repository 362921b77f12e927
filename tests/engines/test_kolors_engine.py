"""The kolors engine on CPU with tiny models (see _kolors_fixtures for exactly what is real
and what is a stand-in: the text encoder is diffsynth's real ChatGLM at tiny size loaded
from the release layout; UNet and VAE are tiny modules running diffsynth's own forward code).
"""

from __future__ import annotations

from _extras import require_models

require_models()

import shutil

import numpy as np
import pytest
import torch
from _kolors_fixtures import (
    KOLORS_REPO,
    StandInLoader,
    TinyKolorsUNet,
    make_engine,
    make_panel,
    write_kolors_layout,
    write_lora,
)

from kolorsc.engines.base import LoraWeights, RenderJob
from kolorsc.engines.kolors import device as devices
from kolorsc.errors import EngineError, ModelMissingError
from kolorsc.spec.model import Refine

GB = 1024**3
LORA_MODULES = ("blocks.1.transformer_blocks.0.attn1.to_q", "blocks.1.transformer_blocks.0.attn2.to_v")


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("kolors") / "models"
    write_kolors_layout(root)
    return root


@pytest.fixture
def engine(models_dir, tmp_path):
    e = make_engine(models_dir, tmp_path / "cache")
    yield e
    e.close()


def pixels(image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


def render_one(engine, panel, seed=None, lora=None):
    [(_job, image)] = list(engine.render([RenderJob(panel, panel.seed if seed is None else seed)], lora))
    return image


# -- determinism and candidates ---------------------------------------------------------------


def test_same_seed_same_image_different_seed_different(engine, models_dir, tmp_path):
    panel = make_panel()
    a = render_one(engine, panel)
    assert a.size == (64, 64) and a.mode == "RGB"
    assert pixels(a).std() > 0  # a real picture, not a flat fill
    b = render_one(make_engine(models_dir, tmp_path / "other-cache"), panel)  # fresh engine, fresh cache
    assert np.array_equal(pixels(a), pixels(b))
    c = render_one(engine, panel, seed=panel.seed + 1)
    assert not np.array_equal(pixels(a), pixels(c))


def test_candidates_render_each_seed_and_yield_in_order(engine):
    panel = make_panel(candidates=3, steps=2)
    jobs = [RenderJob(panel, s) for s in panel.candidate_seeds()]
    seen = []
    progress = []
    for job, image in engine.render(jobs, None, progress=lambda d, t, label: progress.append((d, t))):
        seen.append((job.seed, pixels(image)))
    assert [s for s, _ in seen] == [1, 2, 3]
    assert not np.array_equal(seen[0][1], seen[1][1])
    steps = [p for p in progress if p[1] == 6]  # 3 candidates x 2 steps
    assert steps[-1] == (6, 6) and [d for d, _ in steps] == sorted(d for d, _ in steps)
    # guidance passes are batched: one UNet call per step, not two
    assert engine.calls.unet == 6 and engine.calls.vae == 3


def test_two_stage_refine_upscales_and_refines(engine):
    plain = make_panel(steps=2)
    refined = make_panel(steps=2, refine=Refine(scale=2.0, strength=0.5, steps=2))
    small = render_one(engine, plain)
    big = render_one(engine, refined)
    assert big.size == (128, 128)
    upscaled_only = small.resize((128, 128))
    assert not np.array_equal(pixels(big), pixels(upscaled_only))  # the refine pass changed it
    # refine: encode once + decode twice; 2 + 1 UNet steps (strength 0.5 of 2 steps leaves 2 timesteps)
    assert engine.calls.vae == 1 + 3


# -- encoding and the embedding cache ----------------------------------------------------------


def test_prompts_deduplicated_and_cache_hit_skips_text_encoder(models_dir, tmp_path):
    panels = [make_panel(index=i, prompt=p, negative="模糊") for i, p in enumerate(["猫", "狗", "猫"], start=1)]
    first = make_engine(models_dir, tmp_path / "cache")
    list(first.render([RenderJob(p, p.seed) for p in panels], None))
    assert first.loader.text_encoder_calls == 3  # 猫, 狗, 模糊: each distinct string once
    assert first.calls.text_encoder == 3

    second = make_engine(models_dir, tmp_path / "cache")  # same cache dir: embeddings on disk
    list(second.render([RenderJob(panels[0], 7)], None))
    assert second.loader.text_encoder_calls == 0
    assert "text_encoder" not in second.loader.loaded


def test_embedding_cache_key_includes_the_text_encoder(models_dir, tmp_path):
    from kolorsc.engines.kolors.encoding import embedding_key

    assert embedding_key("猫", "te-a") != embedding_key("猫", "te-b")
    assert embedding_key("猫", "te-a") != embedding_key("狗", "te-a")
    e = make_engine(models_dir, tmp_path / "cache")
    assert e._text_encoder_id() != make_engine(models_dir, tmp_path / "c2", dtype=torch.float64)._text_encoder_id()


# -- memory plan ---------------------------------------------------------------------------------


def test_plan_memory_branches():
    assert devices.plan_memory(16 * GB).low_memory
    assert not devices.plan_memory(48 * GB).low_memory
    assert devices.plan_memory(None).low_memory  # unknown: safe side
    assert not devices.plan_memory(8 * GB, forced=False).low_memory
    assert devices.plan_memory(80 * GB, forced=True).low_memory


def test_low_memory_releases_text_encoder_before_the_unet_loads(models_dir, tmp_path):
    e = make_engine(models_dir, tmp_path / "cache", device_memory=16 * GB)
    render_one(e, make_panel(steps=1))
    assert e.events[:5] == ["prefetch text_encoder, unet, vae", "load text_encoder", "release text_encoder", "load unet", "load vae"]
    assert e.text_encoder is None and e.unet is not None


def test_plenty_of_memory_keeps_everything_resident(models_dir, tmp_path):
    e = make_engine(models_dir, tmp_path / "cache", device_memory=80 * GB)
    render_one(e, make_panel(steps=1))
    render_one(e, make_panel(prompt="新的提示词", steps=1))  # a new prompt: encoder still there
    assert "release text_encoder" not in e.events
    assert e.events.count("load text_encoder") == 1 and e.events.count("load unet") == 1
    assert e.text_encoder is not None


# -- LoRA ------------------------------------------------------------------------------------------


def test_lora_merge_equals_the_math_and_changes_the_image(engine, tmp_path):
    panel = make_panel(steps=2)
    before = render_one(engine, panel)
    w0 = engine.unet.get_submodule(LORA_MODULES[0]).weight.detach().clone()
    path = tmp_path / "style.safetensors"
    layers = write_lora(path, engine.unet, LORA_MODULES)
    lora = LoraWeights(path=path, scale=2.0, key="lora-a")
    after = render_one(engine, panel, lora=lora)
    w1 = engine.unet.get_submodule(LORA_MODULES[0]).weight.detach()
    expected = w0 + 2.0 * layers[LORA_MODULES[0]].up @ layers[LORA_MODULES[0]].down
    torch.testing.assert_close(w1, expected)
    assert not np.array_equal(pixels(before), pixels(after))

    # the same LoRA again: no second merge; none: clean weights reloaded, image as before
    render_one(engine, panel, lora=lora)
    torch.testing.assert_close(engine.unet.get_submodule(LORA_MODULES[0]).weight, expected)
    again = render_one(engine, panel)
    assert np.array_equal(pixels(again), pixels(before))


def test_mismatching_lora_fails_before_rendering(engine, tmp_path):
    path = tmp_path / "bad.safetensors"
    write_lora(path, engine.unet or TinyKolorsUNet(), LORA_MODULES, bad_shape=True)
    jobs = [RenderJob(make_panel(steps=1), 1)]
    with pytest.raises(EngineError) as err:
        list(engine.render(jobs, LoraWeights(path=path, scale=1.0, key="bad")))
    assert "does not fit" in str(err.value) and LORA_MODULES[0] in str(err.value)
    assert engine.calls.unet == 0


def test_lora_naming_absent_modules_fails(engine, tmp_path):
    from kolorsc.lora import LoraLayer, write_diffsynth

    path = tmp_path / "other.safetensors"
    write_diffsynth(path, {"blocks.9.transformer_blocks.0.attn1.to_q": LoraLayer(torch.zeros(2, 32), torch.zeros(32, 2))})
    with pytest.raises(EngineError, match=r"blocks\.9\.transformer_blocks\.0\.attn1\.to_q"):
        list(engine.render([RenderJob(make_panel(steps=1), 1)], LoraWeights(path=path, scale=1.0, key="x")))


# -- failures people see ----------------------------------------------------------------------------


def test_missing_model_files_list_them(tmp_path):
    e = make_engine(tmp_path / "empty-models", tmp_path / "cache")
    with pytest.raises(ModelMissingError) as err:
        list(e.render([RenderJob(make_panel(), 1)], None))
    assert "text_encoder/config.json" in str(err.value) and "kolorsc models pull kolors" in str(err.value)
    assert any(m.endswith("unet/diffusion_pytorch_model.safetensors") for m in err.value.missing)
    assert any(m.endswith("text_encoder/config.json") for m in err.value.missing)


def test_truncated_unet_is_a_clear_error(models_dir, tmp_path):
    broken = tmp_path / "models"
    shutil.copytree(models_dir, broken)
    unet = broken / KOLORS_REPO / "unet" / "diffusion_pytorch_model.safetensors"
    unet.write_bytes(unet.read_bytes()[: unet.stat().st_size // 2])
    e = make_engine(broken, tmp_path / "cache")
    with pytest.raises(EngineError) as err:
        list(e.render([RenderJob(make_panel(steps=1), 1)], None))
    assert str(unet) in str(err.value) and "truncated" in str(err.value)


def test_unrecognised_file_names_the_file(tmp_path):
    """The real diffsynth loader: a safetensors file ModelManager does not know -> EngineError."""
    from safetensors.torch import save_file

    from kolorsc.engines.kolors.loading import DiffSynthLoader

    path = tmp_path / "unet" / "diffusion_pytorch_model.safetensors"
    path.parent.mkdir()
    save_file({"some.weight": torch.zeros(3, 3)}, str(path))
    with pytest.raises(EngineError, match="not recognised as the Kolors UNet") as err:
        DiffSynthLoader().load_unet(path, torch.float32, "cpu")
    assert str(path) in str(err.value)


def test_no_cuda_and_no_device_suggests_preview_or_cpu(models_dir, tmp_path):
    from kolorsc.engines.kolors import KolorsEngine

    e = KolorsEngine(models_dir=models_dir, cache_dir=tmp_path, cuda_available=False)
    with pytest.raises(EngineError) as err:
        e.identity()
    assert "--engine preview" in str(err.value) and "--device cpu" in str(err.value)
    assert "minutes" in str(err.value)
    with pytest.raises(EngineError, match="CUDA is not available"):
        _ = KolorsEngine(models_dir=models_dir, device="cuda", cuda_available=False).device
    assert KolorsEngine(models_dir=models_dir, cuda_available=True).device == "cuda"


def test_out_of_memory_names_the_stage(models_dir, tmp_path):
    class OomUNet(torch.nn.Module):
        is_kolors = True

        def forward(self, **_):
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    class OomLoader(StandInLoader):
        def load_unet(self, path, dtype, device):
            return OomUNet()

    e = make_engine(models_dir, tmp_path / "cache", model_loader=OomLoader())
    with pytest.raises(EngineError) as err:
        list(e.render([RenderJob(make_panel(steps=1), 1)], None))
    assert "denoise" in str(err.value) and "size" in str(err.value) and "--low-memory" in str(err.value)


def test_identity_fingerprints_the_model_files(models_dir, tmp_path):
    broken = tmp_path / "models"
    shutil.copytree(models_dir, broken)
    e = make_engine(broken, tmp_path / "cache")
    ident = e.identity()
    assert ident["name"] == "kolors" and ident["base_model"] == "Kwai-Kolors/Kolors"
    assert ident["dtype"] == "float32" and "EnhancedDDIM" in ident["scheduler"]
    assert make_engine(broken, tmp_path / "cache").identity() == ident
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(1)}, str(broken / KOLORS_REPO / "vae" / "diffusion_pytorch_model.safetensors"))
    assert make_engine(broken, tmp_path / "cache").identity()["files"] != ident["files"]


def test_low_memory_can_be_forced_from_the_environment(models_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("KOLORSC_LOW_MEMORY", "1")
    assert make_engine(models_dir, tmp_path, device_memory=80 * GB).plan.low_memory
    monkeypatch.setenv("KOLORSC_LOW_MEMORY", "0")
    assert not make_engine(models_dir, tmp_path, device_memory=8 * GB).plan.low_memory


# -- prefetch --------------------------------------------------------------------------------------


def test_prefetch_reads_every_byte_and_never_fails(tmp_path):
    from kolorsc.engines.kolors.loading import Prefetch

    a, b = tmp_path / "a.bin", tmp_path / "b.bin"
    a.write_bytes(b"x" * 5_000_001)
    b.write_bytes(b"y" * 17)
    p = Prefetch([a, tmp_path / "gone.bin", b], chunk=1 << 20).start()  # a missing file is skipped
    p.wait()
    assert p.bytes_read == 5_000_018 and not p.skipped


def test_prefetch_skips_files_larger_than_the_memory_available(tmp_path, monkeypatch):
    from kolorsc.engines.kolors import loading

    big = tmp_path / "big.bin"
    big.write_bytes(b"z" * 4096)
    monkeypatch.setattr(loading, "_available_memory", lambda: 1000)
    p = loading.Prefetch([big]).start()
    p.wait()
    assert p.bytes_read == 0 and "4096 bytes to read, 1000 available" in p.skipped


def test_render_waits_for_the_prefetch_before_loading_the_unet(models_dir, tmp_path):
    e = make_engine(models_dir, tmp_path / "cache")
    render_one(e, make_panel(steps=1))
    assert e.events[0] == "prefetch text_encoder, unet, vae"
    assert e._prefetch is None  # joined and dropped when the UNet was loaded
    render_one(e, make_panel(prompt="又一个", steps=1))  # low-memory plan: the encoder comes back
    second = e.events[e.events.index("load vae") + 1:]
    assert second == ["prefetch text_encoder, unet, vae", "release unet", "release vae", "load text_encoder",
                      "release text_encoder", "load unet", "load vae"]

    cached = make_engine(models_dir, tmp_path / "cache")  # every embedding cached: no encoder
    render_one(cached, make_panel(steps=1))
    assert cached.events[:3] == ["prefetch unet, vae", "load unet", "load vae"]
