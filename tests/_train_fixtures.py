"""Tiny stand-ins for the Kolors models, shared by the training and LoRA tests.

What is substituted, and why (diffsynth's SDXLUNet and VAE have fixed full sizes: 2.6 B and
34 M parameters, too slow for CI on 2 CPU cores):

- UNet: `TinyKolorsUNet` *subclasses* diffsynth's `SDXLUNet` and keeps its `forward`, its
  49-block layout and every module name (`blocks.7.transformer_blocks.0.attn1.to_q`, ...),
  built from diffsynth's own blocks (ResnetBlock, AttentionBlock, Push/Pop, Down/UpSampler)
  with 32/64 channels instead of 320/640/1280 and one transformer layer per attention
  block instead of 2 or 10. peft therefore injects LoRA into the same to_q/to_k/to_v/to_out
  modules it would in Kolors, and the kohya names come out of the same mapping table.
- Text encoder: diffsynth's real `ChatGLMModel` from a tiny `ChatGLMConfig` (2 layers,
  hidden 32), driven through the real `KolorsPrompter` and the real Kolors tokenizer.
- VAE encoder: `TinyVAEEncoder`, an 8x-downsampling conv with diffsynth's call signature
  `(image, tiled=..., ...) -> latents [B, 4, H/8, W/8]`; the trainer only needs that contract.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

TEXT_DIM = 32


def tiny_unet(seed: int = 0):
    from diffsynth.models.sd_unet import (
        AttentionBlock,
        DownSampler,
        PopBlock,
        PushBlock,
        ResnetBlock,
        Timesteps,
        UpSampler,
    )
    from diffsynth.models.sdxl_unet import SDXLUNet

    class TinyKolorsUNet(SDXLUNet):
        def __init__(self, c1=32, c2=32, c3=64, temb=64, cross=32, time_id=8):
            torch.nn.Module.__init__(self)
            self.time_proj = Timesteps(c1)
            self.time_embedding = torch.nn.Sequential(torch.nn.Linear(c1, temb), torch.nn.SiLU(), torch.nn.Linear(temb, temb))
            self.add_time_proj = Timesteps(time_id)
            self.add_time_embedding = torch.nn.Sequential(
                torch.nn.Linear(TEXT_DIM + 6 * time_id, temb), torch.nn.SiLU(), torch.nn.Linear(temb, temb)
            )
            self.conv_in = torch.nn.Conv2d(4, c1, kernel_size=3, padding=1)
            self.text_intermediate_proj = torch.nn.Linear(TEXT_DIM, cross)

            def attn(c):
                return AttentionBlock(2, c // 2, c, 1, cross)

            R, P, Q = ResnetBlock, PushBlock, PopBlock
            self.blocks = torch.nn.ModuleList([
                R(c1, c1, temb), P(), R(c1, c1, temb), P(), DownSampler(c1), P(),
                R(c1, c2, temb), attn(c2), P(), R(c2, c2, temb), attn(c2), P(), DownSampler(c2), P(),
                R(c2, c3, temb), attn(c3), P(), R(c3, c3, temb), attn(c3), P(),
                R(c3, c3, temb), attn(c3), R(c3, c3, temb),
                Q(), R(2 * c3, c3, temb), attn(c3), Q(), R(2 * c3, c3, temb), attn(c3),
                Q(), R(c3 + c2, c3, temb), attn(c3), UpSampler(c3),
                Q(), R(c3 + c2, c2, temb), attn(c2), Q(), R(2 * c2, c2, temb), attn(c2),
                Q(), R(c2 + c1, c2, temb), attn(c2), UpSampler(c2),
                Q(), R(c2 + c1, c1, temb), Q(), R(2 * c1, c1, temb), Q(), R(2 * c1, c1, temb),
            ])
            self.conv_norm_out = torch.nn.GroupNorm(num_channels=c1, num_groups=32, eps=1e-5)
            self.conv_act = torch.nn.SiLU()
            self.conv_out = torch.nn.Conv2d(c1, 4, kernel_size=3, padding=1)
            self.is_kolors = True

    torch.manual_seed(seed)
    return TinyKolorsUNet()


def tiny_text_encoder(seed: int = 0):
    from diffsynth.models.kolors_text_encoder import ChatGLMConfig, ChatGLMModel

    config = ChatGLMConfig(
        num_layers=2, hidden_size=TEXT_DIM, ffn_hidden_size=64, kv_channels=8, num_attention_heads=4,
        multi_query_attention=True, multi_query_group_num=2, seq_length=256, padded_vocab_size=65024,
        add_qkv_bias=True, original_rope=True, use_cache=False,
    )
    torch.manual_seed(seed)
    model = ChatGLMModel(config, empty_init=False).eval()  # the default leaves weights uninitialised
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "layernorm" in name:  # diffsynth's RMSNorm weights start as torch.empty even then
                p.fill_(1.0)
    return model


class TinyVAEEncoder(torch.nn.Module):
    """diffsynth's VAE-encoder contract: image in [-1, 1], [B,3,H,W] -> latents [B,4,H/8,W/8]."""

    scaling_factor = 0.13025

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, kernel_size=8, stride=8)

    def forward(self, sample, tiled=False, tile_size=64, tile_stride=32, **kwargs):
        return self.conv(sample) * self.scaling_factor


@dataclass
class TinyLoader:
    """A `model_loader` for kolorsc.train returning the stand-ins as loader functions, like the
    real loader does; `loaded` lists the models actually built, in order."""

    seed: int = 0
    loaded: list = None

    def __call__(self, models_dir, device, dtype):
        from kolorsc.train import KolorsModels

        self.loaded = []

        def load(name, make):
            def loader():
                self.loaded.append(name)
                torch.manual_seed(self.seed)
                return make()

            return loader

        return KolorsModels(
            unet=load("unet", lambda: tiny_unet(self.seed)),
            text_encoder=load("text_encoder", lambda: tiny_text_encoder(self.seed)),
            vae_encoder=load("vae_encoder", TinyVAEEncoder),
            identity={"base_model": "tiny-stand-in", "seed": self.seed},
        )


def make_dataset(folder, n: int = 3, size: int = 64):
    """A prepared dataset (kolorsc.data layout) of `n` noise images with captions; reused if present."""
    from pathlib import Path

    import numpy as np
    from PIL import Image

    from kolorsc.data import prepare_dataset
    from kolorsc.spec.model import Dataset

    folder = Path(folder)
    if (folder / "prepared" / "train" / "metadata.csv").is_file():
        return folder / "prepared"
    src = folder / "src"
    src.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        rng = np.random.default_rng(i)
        Image.fromarray(rng.integers(0, 255, (size, size + 16 * i, 3), dtype=np.uint8)).save(src / f"{i}.png")
    captions = ["水墨 山水", "水墨 竹林", "水墨 山水"]  # two distinct captions for three images
    for i in range(n):
        (src / f"{i}.txt").write_text(captions[i % 3], encoding="utf-8")
    prepare_dataset(Dataset(source="local", path=src, caption="sidecar"), folder, folder / "prepared")
    return folder / "prepared"


def make_style(**training):
    from kolorsc.spec.model import Lora, Style, Training

    settings = {"rank": 4, "alpha": 2.0, "steps_per_epoch": 4, "epochs": 1, "precision": "32", "resolution": 64,
                    "accelerator": "cpu", "devices": 1, "learning_rate": 1e-2, "seed": 7}
    settings.update(training)
    return Style(id="ink", name="Ink", trigger="水墨画", negative="", lora=Lora(scale=2.0, training=Training(**settings)))
