"""LoRA file formats: kohya names for every Kolors attention projection, round trips, fit checks."""

from __future__ import annotations

from _extras import require_models

require_models()

import pytest
import torch

from kolorsc.errors import EngineError
from kolorsc.lora import (
    LoraLayer,
    check_fits,
    diffsynth_module,
    kohya_key,
    ldm_module_names,
    read_lora,
    unet_module_shapes,
    write_diffsynth,
    write_kohya,
)

PROJECTIONS = ("to_q", "to_k", "to_v", "to_out")


@pytest.fixture(scope="module")
def kolors_unet_meta():
    """The real full-size Kolors UNet, on the meta device: every name and shape, no memory."""
    from diffsynth.models.sdxl_unet import SDXLUNet

    with torch.device("meta"):
        return SDXLUNet(is_kolors=True)


def test_every_kolors_attention_projection_maps_both_ways(kolors_unet_meta) -> None:
    names = [n for n, m in kolors_unet_meta.named_modules() if n.rsplit(".", 1)[-1] in PROJECTIONS]
    assert len(names) == 70 * 2 * 4  # SDXL: 70 transformer blocks, self + cross attention
    keys = {kohya_key(n) for n in names}
    assert len(keys) == len(names)  # no two layers share a key
    assert all(diffsynth_module(kohya_key(n)) == n for n in names)
    # The LDM state-dict names ComfyUI builds its lora_unet_* map from, for the same layers.
    ldm = {"lora_unet_" + ldm_module_names()[n].replace(".", "_") for n in names}
    assert keys == ldm
    assert all(k.startswith(("lora_unet_input_blocks_", "lora_unet_middle_block_", "lora_unet_output_blocks_")) for k in keys)


def test_known_names() -> None:
    assert kohya_key("blocks.7.transformer_blocks.0.attn1.to_q") == "lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q"
    assert kohya_key("blocks.21.transformer_blocks.9.attn2.to_out") == "lora_unet_middle_block_1_transformer_blocks_9_attn2_to_out_0"
    assert diffsynth_module("lora_unet_output_blocks_0_1_transformer_blocks_0_attn2_to_k") == "blocks.25.transformer_blocks.0.attn2.to_k"
    with pytest.raises(EngineError):
        diffsynth_module("lora_unet_no_such_layer")


def _layers(rank=4, alpha=2.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {
        "blocks.7.transformer_blocks.0.attn1.to_q": LoraLayer(torch.randn(rank, 640, generator=g), torch.randn(640, rank, generator=g), alpha),
        "blocks.21.transformer_blocks.3.attn2.to_k": LoraLayer(torch.randn(rank, 2048, generator=g), torch.randn(1280, rank, generator=g), alpha),
    }


def test_kohya_round_trip_keeps_tensors_alpha_and_metadata(tmp_path) -> None:
    layers = _layers()
    path = write_kohya(tmp_path / "style.safetensors", layers, {"ss_network_dim": "4", "spec": {"rank": 4}})
    back = read_lora(path)
    assert back.format == "kohya" and back.rank == 4
    assert back.metadata["ss_network_dim"] == "4" and back.metadata["spec"] == '{"rank": 4}'
    assert set(back.layers) == set(layers)
    for name, layer in layers.items():
        assert torch.equal(back.layers[name].down, layer.down)
        assert torch.equal(back.layers[name].up, layer.up)
        assert back.layers[name].alpha == 2.0
        assert torch.allclose(back.layers[name].delta(1.0, use_alpha=True), layer.up @ layer.down * 0.5)
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        keys = set(f.keys())
        assert "lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q.lora_down.weight" in keys
        assert "lora_unet_middle_block_1_transformer_blocks_3_attn2_to_k.alpha" in keys


def test_reads_a_safetensors_lora_stored_without_its_suffix(tmp_path) -> None:
    """The build cache keeps a LoRA under its hash, with no file suffix."""
    layers = _layers()
    path = write_kohya(tmp_path / "style.safetensors", layers, {})
    bare = tmp_path / "objects" / "ab12cd"
    bare.parent.mkdir()
    path.rename(bare)
    back = read_lora(bare)
    assert back.format == "kohya"
    for name, layer in layers.items():
        assert torch.equal(back.layers[name].down, layer.down)


def test_reads_diffsynth_checkpoints(tmp_path) -> None:
    layers = _layers(alpha=None)
    # the stock trainer's .ckpt: a plain dict of peft-named tensors
    ckpt = tmp_path / "epoch=0-step=500.ckpt"
    torch.save({f"{m}.lora_{ab}.default.weight": t for m, l in layers.items() for ab, t in (("A", l.down), ("B", l.up))}, ckpt)
    back = read_lora(ckpt)
    assert back.format == "diffsynth" and set(back.layers) == set(layers)
    assert all(torch.equal(back.layers[m].up, layers[m].up) for m in layers)
    # kolorsc's own diffsynth export carries the alpha in its header
    safe = write_diffsynth(tmp_path / "d.safetensors", layers, {"lora_alpha": "4.0"})
    assert all(layer.alpha == 4.0 for layer in read_lora(safe).layers.values())


def test_refuses_pickles_with_code(tmp_path) -> None:
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "evil.ckpt"
    torch.save({"x": Evil()}, path)
    with pytest.raises(EngineError, match="weights-only"):
        read_lora(path)


def test_check_fits_names_every_mismatch(kolors_unet_meta) -> None:
    shapes = unet_module_shapes(kolors_unet_meta)
    assert check_fits(_layers(), shapes) == []
    bad = _layers()
    bad["blocks.7.transformer_blocks.0.attn1.to_q"] = LoraLayer(torch.zeros(4, 320), torch.zeros(640, 4))
    bad["blocks.99.to_q"] = LoraLayer(torch.zeros(4, 8), torch.zeros(8, 4))
    problems = check_fits(bad, shapes)
    assert len(problems) == 2
    assert "input size 320 != layer's 640" in problems[1] or "input size 320 != layer's 640" in problems[0]
    assert any("blocks.99.to_q: no such layer" in p for p in problems)


def test_cli_exports_a_diffsynth_checkpoint_and_inspects_it(tmp_path) -> None:
    from click.testing import CliRunner

    from kolorsc.cli import main

    layers = _layers(alpha=None)
    ckpt = tmp_path / "epoch=0-step=500.ckpt"
    torch.save({f"{m}.lora_{ab}.default.weight": t for m, l in layers.items() for ab, t in (("A", l.down), ("B", l.up))}, ckpt)
    out = tmp_path / "style.safetensors"
    run = CliRunner().invoke(main, ["lora", "export", str(ckpt), str(out), "--alpha", "4"])
    assert run.exit_code == 0, run.output
    back = read_lora(out)
    assert back.format == "kohya" and {l.alpha for l in back.layers.values()} == {4.0}
    assert back.metadata["ss_network_dim"] == "4" and back.metadata["ss_network_alpha"] == "4.0"
    run = CliRunner().invoke(main, ["lora", "inspect", str(out)])
    assert run.exit_code == 0 and "kohya, 2 layer(s), rank 4, alpha 4" in run.output and "fits the Kolors UNet" in run.output

    bad = tmp_path / "bad.safetensors"
    write_kohya(bad, {"blocks.7.transformer_blocks.0.attn1.to_q": LoraLayer(torch.zeros(4, 320), torch.zeros(640, 4), 4.0)})
    run = CliRunner().invoke(main, ["lora", "inspect", str(bad)])
    assert run.exit_code == 1 and "input size 320 != layer's 640" in run.output
