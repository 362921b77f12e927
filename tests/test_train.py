"""LoRA training through kolorsc.train on tiny stand-ins of the Kolors models.

The stand-ins (see _train_fixtures.py for exactly what is substituted and why): a UNet that
subclasses diffsynth's SDXLUNet with its forward, block layout and module names at 32/64
channels; diffsynth's real ChatGLMModel at hidden size 32 with the real Kolors tokenizer and
encoding; an 8x-downsampling conv in place of the SDXL VAE encoder. Everything else (encoding
cache, peft injection, Lightning loop, checkpoints, export) is the production code.
"""

from __future__ import annotations

from _extras import require_models

require_models('lightning')

import json
import math
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from _train_fixtures import TinyLoader, make_dataset, make_style, tiny_unet

from kolorsc.errors import ModelMissingError, TrainingError
from kolorsc.engines.kolors.lora_merge import merge
from kolorsc.lora import check_fits, read_lora, unet_module_shapes
from kolorsc.train import plan_run, steps_done, train_lora

HERE = Path(__file__).resolve().parent


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """The stand-ins are tiny: one thread is fastest, and on a busy CI machine OpenMP threads
    spinning against other processes made each step ~50x slower (measured)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class Capture:
    """A Lightning callback that records the losses and keeps the trained module."""

    def __new__(cls, stop_at: int | None = None):
        from lightning.pytorch.callbacks import Callback

        class _Capture(Callback):
            def __init__(self):
                self.losses, self.first_step, self.module = [], None, None

            def on_train_batch_start(self, trainer, module, batch, batch_idx):
                if self.first_step is None:
                    self.first_step = trainer.global_step

            def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
                self.losses.append(float(outputs["loss"]))
                if stop_at is not None and trainer.global_step == stop_at:
                    raise RuntimeError("power cut")  # before this step's checkpoint is written

            def on_train_end(self, trainer, module):
                self.module = module

        return _Capture()


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("data"))


def _lora_params(module) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in module.unet.named_parameters() if p.requires_grad}


def test_trains_exports_and_loads_back_the_same_deltas(dataset, tmp_path) -> None:
    style, loader, cap = make_style(), TinyLoader(), Capture()
    result = train_lora(style, dataset, tmp_path / "out", models_dir=tmp_path, device="cpu",
                        model_loader=loader, callbacks=[cap], cache_dir=tmp_path / "enc")

    # 1. It trained: finite losses, every LoRA up-matrix moved away from its zero init.
    assert result.steps == 4 and len(cap.losses) == 4 and all(math.isfinite(x) for x in cap.losses)
    peft_layers = {n: m for n, m in cap.module.unet.named_modules() if hasattr(m, "lora_A") and "default" in m.lora_A}
    assert len(peft_layers) == 88  # 22 attention blocks x (attn1, attn2) x (to_q, to_k, to_v, to_out)
    assert all(m.lora_B["default"].weight.abs().sum() > 0 for m in peft_layers.values())

    # 2. Encoders ran once per distinct image / caption; the UNet once per step; the UNet was
    #    loaded only after both encoders (they are freed before it is built).
    calls = json.loads(result.metadata["kolorsc.model_calls"])
    assert calls == {"text_encoder": 2, "vae_encoder": 3, "unet": 4}
    assert loader.loaded == ["vae_encoder", "text_encoder", "unet"]

    # 3. Export -> read back -> the same weight deltas peft applies, in both file formats.
    kohya, diffsynth = read_lora(result.path), read_lora(result.diffsynth_path)
    assert set(kohya.layers) == set(diffsynth.layers) == set(peft_layers)
    for name, module in peft_layers.items():
        expected = module.get_delta_weight("default")
        assert torch.allclose(kohya.layers[name].delta(use_alpha=True), expected, atol=1e-6)
        # diffsynth's load_lora ignores alpha: the engine passes alpha/rank as its scale
        assert torch.allclose(diffsynth.layers[name].delta(scale=2.0 / 4), expected, atol=1e-6)
    base, merged = tiny_unet(0), tiny_unet(0)
    assert check_fits(kohya.layers, unet_module_shapes(merged)) == []
    merge(merged, kohya.layers, 1.0, use_alpha=True)
    trained = dict(cap.module.unet.named_modules())
    for name, module in peft_layers.items():
        w0 = dict(base.named_modules())[name].weight
        w1 = dict(merged.named_modules())[name].weight
        assert torch.allclose(w1 - w0, trained[name].get_delta_weight("default"), atol=1e-6)

    # 4. Metadata: strings, kohya's ss_* names, the spec as JSON.
    meta = kohya.metadata
    assert meta["ss_network_dim"] == "4" and meta["ss_network_alpha"] == "2.0"
    assert '"rank": 4' in meta["kolorsc.training"] and meta["kolorsc.base_model"] == "Kwai-Kolors/Kolors"
    assert len(meta["kolorsc.dataset_hash"]) == 64

    # 5. A second training over the same images encodes nothing (latents/embeddings cached).
    second = TinyLoader()
    again = train_lora(make_style(steps_per_epoch=1), dataset, tmp_path / "out2", models_dir=tmp_path,
                       device="cpu", model_loader=second, cache_dir=tmp_path / "enc")
    assert json.loads(again.metadata["kolorsc.model_calls"]) == {"text_encoder": 0, "vae_encoder": 0, "unet": 1}
    assert second.loaded == ["unet"]  # the encoders were not even loaded


def test_resume_continues_from_the_saved_step_and_matches_an_uninterrupted_run(dataset, tmp_path) -> None:
    style = make_style(steps_per_epoch=5)
    kw = {"models_dir": tmp_path, "device": "cpu", "checkpoint_every": 1, "cache_dir": tmp_path / "enc"}
    with pytest.raises(RuntimeError, match="power cut"):
        train_lora(style, dataset, tmp_path / "cut", model_loader=TinyLoader(), callbacks=[Capture(stop_at=3)], **kw)
    assert steps_done(tmp_path / "cut") == 2
    assert not (tmp_path / "cut" / "lora.safetensors").exists()  # nothing half-done is exported

    resumed = Capture()
    result = train_lora(style, dataset, tmp_path / "cut", model_loader=TinyLoader(), callbacks=[resumed], **kw)
    assert resumed.first_step == 2 and len(resumed.losses) == 3 and result.steps == 5

    straight = Capture()
    train_lora(style, dataset, tmp_path / "straight", model_loader=TinyLoader(), callbacks=[straight], **kw)
    a, b = _lora_params(resumed.module), _lora_params(straight.module)
    worst = max(float((a[k] - b[k]).abs().max()) for k in a)
    assert worst <= 1e-6, f"resumed LoRA differs from the uninterrupted one by {worst}"
    assert resumed.losses == pytest.approx(straight.losses[2:], rel=1e-5)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.ddp
def test_two_process_ddp_on_cpu_ends_with_the_same_lora(tmp_path) -> None:
    from safetensors.torch import load_file

    env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port()), "PYTHONPATH": str(HERE.parent),
           "OMP_NUM_THREADS": "1", "KOLORSC_CACHE": str(tmp_path / "cache")}
    run = subprocess.run([sys.executable, str(HERE / "_train_ddp_script.py"), str(tmp_path)],
                         check=False, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    r0, r1 = load_file(str(tmp_path / "rank0.safetensors")), load_file(str(tmp_path / "rank1.safetensors"))
    assert set(r0) == set(r1) and len(r0) == 88 * 2
    assert all(torch.equal(r0[k], r1[k]) for k in r0)
    assert any(r0[k].abs().sum() > 0 for k in r0 if ".lora_B." in k)  # trained, not the zero init
    exported = read_lora(tmp_path / "lora" / "lora.safetensors")
    assert exported.metadata["ss_steps"] == "3"


def test_cpu_runs_half_precision_specs_in_32_bit_with_a_note() -> None:
    setup = plan_run(make_style(precision="16-mixed").lora.training, "cpu")
    assert setup.precision == "32" and setup.accelerator == "cpu" and "needs a GPU" in setup.notes[0]
    assert plan_run(make_style(precision="bf16-mixed").lora.training, "cpu").precision == "bf16-mixed"


def test_target_modules_that_match_nothing_fail_clearly(dataset, tmp_path) -> None:
    with pytest.raises(TrainingError, match="no UNet module matches"):
        train_lora(make_style(target_modules=("to_nothing",)), dataset, tmp_path / "o", models_dir=tmp_path,
                   device="cpu", model_loader=TinyLoader())


def test_default_loader_names_missing_models(dataset, tmp_path) -> None:
    with pytest.raises(ModelMissingError, match="kolorsc models pull kolors"):
        train_lora(make_style(), dataset, tmp_path / "o", models_dir=tmp_path / "models", device="cpu")
