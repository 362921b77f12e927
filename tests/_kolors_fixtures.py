"""Tiny Kolors models for CPU tests (no weights can be downloaded; full size is bench/).

What is real and what is substituted
------------------------------------
- Text encoder: REAL. diffsynth's own `ChatGLMConfig` / `ChatGLMModel` with tiny sizes
  (2 layers, hidden 32), saved in the Kolors release layout (`text_encoder/config.json` with
  `architectures: ["ChatGLMModel"]`, seven `pytorch_model-0000N-of-00007.bin` shards with
  `transformer.`-prefixed keys, `pytorch_model.bin.index.json`) and loaded through kolorsc's
  `DiffSynthLoader` -> diffsynth `ModelManager` -> `ChatGLMModel.from_pretrained`, exactly the
  path the real 6B model takes. The tokenizer is the real Kolors tokenizer shipped in diffsynth.
- UNet: STAND-IN. diffsynth's `SDXLUNet` has fixed full size (2.6 B parameters, 10 GB fp32),
  far beyond a CI test. `TinyKolorsUNet` is a torch module with the same attribute names as
  `SDXLUNet(is_kolors=True)` (time_proj, time_embedding, add_time_proj, add_time_embedding,
  conv_in, text_intermediate_proj, blocks, conv_norm_out, conv_act, conv_out, is_kolors) built
  from diffsynth's own blocks (`ResnetBlock`, `AttentionBlock`, whose attention layers are
  named `blocks.N.transformer_blocks.0.attn1.to_q` like the real UNet), and its `forward` IS
  `SDXLUNet.forward` (the same function object): same call signature
  `forward(sample, timestep, encoder_hidden_states, add_time_id, add_text_embeds, ...)`, the
  same time/text conditioning code. Only the widths differ (text width 32 instead of 4096,
  so `add_time_embedding` takes 32 + 6*8 inputs instead of 4096 + 6*256 = 5632).
- VAE: STAND-IN. `SDXLVAEEncoder/Decoder` are fixed full size too. `TinyVaeDecoder` /
  `TinyVaeEncoder` have the attribute names of diffsynth's SD VAE classes and their `forward`
  IS `SDVAEDecoder.forward` / `SDVAEEncoder.forward` (scaling factor 0.13025, 8x up/down
  sampling), with a few channels and plain up/down-samplers as blocks.
- The stand-ins enter through the engine's `model_loader` injection point
  (`StandInLoader.load_unet` / `load_vae`); encoding, the scheduler, batched guidance, the LoRA
  merge, img2img refine and decoding are the engine's real code. Nothing in diffsynth is patched.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

TEXT_DIM = 32  # the tiny ChatGLM's hidden size, which the tiny UNet's conditioning must match
KOLORS_REPO = "Kwai-Kolors/Kolors"


def tiny_chatglm_config(num_layers: int = 2) -> dict:
    return {
        "model_type": "chatglm",
        "architectures": ["ChatGLMModel"],
        "add_bias_linear": False,
        "add_qkv_bias": True,
        "apply_query_key_layer_scaling": True,
        "apply_residual_connection_post_layernorm": False,
        "attention_dropout": 0.0,
        "attention_softmax_in_fp32": True,
        "bias_dropout_fusion": True,
        "ffn_hidden_size": 64,
        "fp32_residual_connection": False,
        "hidden_dropout": 0.0,
        "hidden_size": TEXT_DIM,
        "kv_channels": 16,
        "layernorm_epsilon": 1e-05,
        "multi_query_attention": True,
        "multi_query_group_num": 1,
        "num_attention_heads": 2,
        "num_layers": num_layers,
        "original_rope": True,
        "padded_vocab_size": 65024,  # the real tokenizer's ids reach ~65k
        "post_layer_norm": True,
        "rmsnorm": True,
        "seq_length": 512,
        "use_cache": True,
        "torch_dtype": "float32",
        "eos_token_id": 2,
        "pad_token_id": 0,
    }


def write_text_encoder(folder: Path, seed: int = 0) -> None:
    """A tiny random ChatGLM in the Kolors release layout (seven shards + index + config)."""
    from diffsynth.models.kolors_text_encoder import ChatGLMConfig, ChatGLMModel

    torch.manual_seed(seed)
    config = tiny_chatglm_config()
    model = ChatGLMModel(ChatGLMConfig(**config), empty_init=False)
    state = {f"transformer.{k}": v.detach().clone() for k, v in model.state_dict().items()}
    for key, value in state.items():  # diffsynth's RMSNorm starts from torch.empty: give norms real values
        if "layernorm" in key:
            state[key] = torch.ones_like(value)
    keys = list(state)
    folder.mkdir(parents=True, exist_ok=True)
    weight_map = {}
    for i in range(7):
        name = f"pytorch_model-{i + 1:05d}-of-00007.bin"
        part = {k: state[k] for k in keys[i::7]}
        torch.save(part, folder / name)
        weight_map.update({k: name for k in part})
    (folder / "config.json").write_text(json.dumps(config))
    total = sum(v.numel() * v.element_size() for v in state.values())
    (folder / "pytorch_model.bin.index.json").write_text(json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}))


def write_kolors_layout(models_dir: Path, seed: int = 0) -> Path:
    """The Kolors folder: a real tiny text encoder plus UNet/VAE safetensors files.

    The UNet/VAE files hold the stand-ins' weights (so a LoRA check and the verify/truncation
    checks have real files to read); the stand-in loader reads them back into the stand-ins."""
    from safetensors.torch import save_file

    folder = models_dir / KOLORS_REPO
    write_text_encoder(folder / "text_encoder", seed)
    torch.manual_seed(seed + 1)
    (folder / "unet").mkdir(parents=True, exist_ok=True)
    save_file(TinyKolorsUNet().state_dict(), str(folder / "unet" / "diffusion_pytorch_model.safetensors"))
    (folder / "vae").mkdir(parents=True, exist_ok=True)
    vae = {f"encoder.{k}": v for k, v in TinyVaeEncoder().state_dict().items()}
    vae.update({f"decoder.{k}": v for k, v in TinyVaeDecoder().state_dict().items()})
    save_file(vae, str(folder / "vae" / "diffusion_pytorch_model.safetensors"))
    return folder


class TinyKolorsUNet(torch.nn.Module):
    """SDXLUNet(is_kolors=True)'s attributes at tiny widths; forward is diffsynth's own."""

    from diffsynth.models.sdxl_unet import SDXLUNet as _Real

    forward = _Real.forward

    def __init__(self):
        from diffsynth.models.sd_unet import AttentionBlock, ResnetBlock, Timesteps

        super().__init__()
        ch, temb, groups = 32, 64, 8
        self.time_proj = Timesteps(ch)
        self.time_embedding = torch.nn.Sequential(torch.nn.Linear(ch, temb), torch.nn.SiLU(), torch.nn.Linear(temb, temb))
        self.add_time_proj = Timesteps(8)
        self.add_time_embedding = torch.nn.Sequential(
            torch.nn.Linear(TEXT_DIM + 6 * 8, temb), torch.nn.SiLU(), torch.nn.Linear(temb, temb)
        )
        self.conv_in = torch.nn.Conv2d(4, ch, kernel_size=3, padding=1)
        self.text_intermediate_proj = torch.nn.Linear(TEXT_DIM, ch)
        self.blocks = torch.nn.ModuleList(
            [
                ResnetBlock(ch, ch, temb, groups=groups),
                AttentionBlock(2, 16, ch, 1, ch, norm_num_groups=groups),
            ]
        )
        self.conv_norm_out = torch.nn.GroupNorm(num_channels=ch, num_groups=groups, eps=1e-5)
        self.conv_act = torch.nn.SiLU()
        self.conv_out = torch.nn.Conv2d(ch, 4, kernel_size=3, padding=1)
        self.is_kolors = True


class TinyVaeDecoder(torch.nn.Module):
    from diffsynth.models.sd_vae_decoder import SDVAEDecoder as _Real

    forward = _Real.forward

    def __init__(self):
        from diffsynth.models.sd_unet import UpSampler

        super().__init__()
        ch = 8
        self.scaling_factor = 0.13025
        self.post_quant_conv = torch.nn.Conv2d(4, 4, kernel_size=1)
        self.conv_in = torch.nn.Conv2d(4, ch, kernel_size=3, padding=1)
        self.blocks = torch.nn.ModuleList([UpSampler(ch), UpSampler(ch), UpSampler(ch)])
        self.conv_norm_out = torch.nn.GroupNorm(num_channels=ch, num_groups=4, eps=1e-6)
        self.conv_act = torch.nn.SiLU()
        self.conv_out = torch.nn.Conv2d(ch, 3, kernel_size=3, padding=1)


class TinyVaeEncoder(torch.nn.Module):
    from diffsynth.models.sd_vae_encoder import SDVAEEncoder as _Real

    forward = _Real.forward

    def __init__(self):
        from diffsynth.models.sd_unet import DownSampler

        super().__init__()
        ch = 8
        self.scaling_factor = 0.13025
        self.quant_conv = torch.nn.Conv2d(8, 8, kernel_size=1)
        self.conv_in = torch.nn.Conv2d(3, ch, kernel_size=3, padding=1)
        self.blocks = torch.nn.ModuleList([DownSampler(ch), DownSampler(ch), DownSampler(ch)])
        self.conv_norm_out = torch.nn.GroupNorm(num_channels=ch, num_groups=4, eps=1e-6)
        self.conv_act = torch.nn.SiLU()
        self.conv_out = torch.nn.Conv2d(ch, 8, kernel_size=3, padding=1)


class StandInLoader:
    """The engine's model_loader for tests: the real loader for the text encoder, stand-ins
    (with the weights stored in the layout's files) for the UNet and VAE. Records what it
    loaded and counts text-encoder forward calls with a hook."""

    def __init__(self):
        from kolorsc.engines.kolors.loading import DiffSynthLoader, check_complete

        self.real = DiffSynthLoader()
        self.check_complete = check_complete
        self.loaded: list[str] = []
        self.text_encoder_calls = 0

    def load_text_encoder(self, folder, dtype, device):
        model = self.real.load_text_encoder(folder, dtype, device)
        model.register_forward_hook(lambda *_: self._count())
        self.loaded.append("text_encoder")
        return model

    def _count(self):
        self.text_encoder_calls += 1

    def load_unet(self, path, dtype, device):
        from safetensors.torch import load_file

        self.check_complete(path.parent, [path.name])
        unet = TinyKolorsUNet()
        unet.load_state_dict(load_file(str(path)))
        self.loaded.append("unet")
        return unet.to(device=device, dtype=dtype).eval()

    def load_vae(self, path, dtype, device):
        from safetensors.torch import load_file

        from kolorsc.engines.kolors.loading import Vae

        self.check_complete(path.parent, [path.name])
        state = load_file(str(path))
        enc, dec = TinyVaeEncoder(), TinyVaeDecoder()
        enc.load_state_dict({k[len("encoder."):]: v for k, v in state.items() if k.startswith("encoder.")})
        dec.load_state_dict({k[len("decoder."):]: v for k, v in state.items() if k.startswith("decoder.")})
        self.loaded.append("vae")
        return Vae(enc.to(device=device, dtype=dtype).eval(), dec.to(device=device, dtype=dtype).eval())


def make_engine(models_dir: Path, cache_dir: Path, **kw):
    from kolorsc.engines.kolors import KolorsEngine

    loader = kw.pop("model_loader", None) or StandInLoader()
    return KolorsEngine(models_dir=models_dir, cache_dir=cache_dir, device="cpu", model_loader=loader, **kw)


def make_panel(index=1, prompt="一只猫坐在窗台上", negative="模糊", seed=1, steps=3, cfg=4.0, size=64, refine=None, candidates=1):
    from kolorsc.prompts import Panel

    return Panel(
        index=index, caption=f"scene {index}", prompt=prompt, negative=negative, seed=seed, steps=steps, cfg=cfg,
        width=size, height=size, candidates=candidates, refine=refine,
    )


def write_lora(path: Path, unet: torch.nn.Module, modules=("blocks.1.transformer_blocks.0.attn1.to_q",), rank=4, seed=0,
               bad_shape=False):
    """A diffsynth-format LoRA (peft names) written with kolorsc.lora's writer."""
    from kolorsc.lora import LoraLayer, write_diffsynth

    g = torch.Generator().manual_seed(seed)
    layers = {}
    for name in modules:
        w = unet.get_submodule(name).weight
        out_f, in_f = w.shape[0], w.shape[1] + (3 if bad_shape else 0)
        layers[name] = LoraLayer(down=torch.randn(rank, in_f, generator=g) * 0.5, up=torch.randn(out_f, rank, generator=g) * 0.5, alpha=4.0)
    write_diffsynth(path, layers)
    return layers


def env_models_dir(tmp_path: Path) -> Path:
    return Path(os.fspath(tmp_path)) / "models"
