"""Tiny real models for the consistency tests (no weights can be downloaded).

What is real and what stands in
-------------------------------
- Image encoder: REAL. transformers' CLIPModel at tiny sizes (vision: 28 px, patch 14, width
  32, 2 layers), saved as the release's `image_encoder/` holds OpenAI's CLIP ViT-L/14-336: a
  CLIPModel `config.json` (model_type clip, text and vision configs) and `pytorch_model.bin`.
  kolorsc loads its vision half with CLIPVisionModelWithProjection, as Kwai's sample does.
- Adapter file: REAL FORMAT. `ip_adapter_plus_general.bin` is a torch zip holding
  {"image_proj": Plus resampler, "ip_adapter": {"<2n+1>.to_k_ip.weight", "<2n+1>.to_v_ip.weight"}}.
  The key names below are written out by hand from the IP-Adapter-Plus checkpoint format
  (not taken from kolorsc's Resampler), at tiny sizes: resampler input 32 (the tiny CLIP's
  width), width 64 (one head of 64), 2 layers, 4 queries, output 32 (the tiny UNet's
  cross-attention width).
- UNet: STAND-IN, like _kolors_fixtures.TinyKolorsUNet (forward IS diffsynth's
  SDXLUNet.forward, blocks are diffsynth's own) but with the real UNet's skip structure:
  a down attention block, a PushBlock, a mid attention block, a PopBlock and an up attention
  block of two layers, so "down / mid / up" and the adapter's layer order are real questions.
"""

from __future__ import annotations

import io
from pathlib import Path

import torch
from _kolors_fixtures import (
    TEXT_DIM,
    StandInLoader,
    TinyKolorsUNet,
    write_kolors_layout,
)

IP_REPO = "Kwai-Kolors/Kolors-IP-Adapter-Plus"
CH = 32  # the tiny UNet's width = its cross-attention width


class TinyStoryUNet(torch.nn.Module):
    """SDXLUNet(is_kolors=True)'s attributes and forward, tiny, with down/mid/up attention."""

    forward = TinyKolorsUNet.forward

    def __init__(self):
        from diffsynth.models.sd_unet import (
            AttentionBlock,
            PopBlock,
            PushBlock,
            ResnetBlock,
            Timesteps,
        )

        super().__init__()
        temb, groups = 64, 8
        self.time_proj = Timesteps(CH)
        self.time_embedding = torch.nn.Sequential(torch.nn.Linear(CH, temb), torch.nn.SiLU(), torch.nn.Linear(temb, temb))
        self.add_time_proj = Timesteps(8)
        self.add_time_embedding = torch.nn.Sequential(
            torch.nn.Linear(TEXT_DIM + 6 * 8, temb), torch.nn.SiLU(), torch.nn.Linear(temb, temb))
        self.conv_in = torch.nn.Conv2d(4, CH, kernel_size=3, padding=1)
        self.text_intermediate_proj = torch.nn.Linear(TEXT_DIM, CH)
        self.blocks = torch.nn.ModuleList([
            ResnetBlock(CH, CH, temb, groups=groups),
            AttentionBlock(2, 16, CH, 1, CH, norm_num_groups=groups),  # 1: down
            PushBlock(),
            ResnetBlock(CH, CH, temb, groups=groups),
            AttentionBlock(2, 16, CH, 1, CH, norm_num_groups=groups),  # 4: mid
            PopBlock(),
            ResnetBlock(2 * CH, CH, temb, groups=groups),
            AttentionBlock(2, 16, CH, 2, CH, norm_num_groups=groups),  # 7: up, two layers
        ])
        self.conv_norm_out = torch.nn.GroupNorm(num_channels=CH, num_groups=groups, eps=1e-5)
        self.conv_act = torch.nn.SiLU()
        self.conv_out = torch.nn.Conv2d(CH, 4, kernel_size=3, padding=1)
        self.is_kolors = True


# IP-Adapter order of the cross-attention layers: down, up, mid -> (block, transformer)
CROSS_ORDER = [(1, 0), (7, 0), (7, 1), (4, 0)]


class StoryLoader(StandInLoader):
    """StandInLoader with TinyStoryUNet as the UNet."""

    def load_unet(self, path, dtype, device):
        from safetensors.torch import load_file

        self.check_complete(path.parent, [path.name])
        unet = TinyStoryUNet()
        unet.load_state_dict(load_file(str(path)))
        self.loaded.append("unet")
        return unet.to(device=device, dtype=dtype).eval()


def write_story_layout(models_dir: Path, seed: int = 0) -> Path:
    """Kolors layout (tiny text encoder, VAE) with the TinyStoryUNet's weights as the UNet,
    and the IP-Adapter layout beside it."""
    from safetensors.torch import save_file

    folder = write_kolors_layout(models_dir, seed)
    torch.manual_seed(seed + 7)
    unet = TinyStoryUNet()
    with torch.no_grad():  # diffsynth's attention output layers start near zero: make them matter
        for p in unet.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    save_file(unet.state_dict(), str(folder / "unet" / "diffusion_pytorch_model.safetensors"))
    write_ip_adapter(models_dir, seed)
    return folder


def tiny_clip_config() -> dict:
    return {
        "model_type": "clip",
        "projection_dim": 16,
        "text_config": {"vocab_size": 99, "hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1,
                        "num_attention_heads": 2, "max_position_embeddings": 16},
        "vision_config": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
                          "image_size": 28, "patch_size": 14, "projection_dim": 16},
    }


def adapter_state(seed: int = 0, embedding_dim: int = 32, dim: int = 64, depth: int = 2, queries: int = 4,
                  output_dim: int = CH, ff_mult: int = 2, layer_widths=(CH, CH, CH, CH)) -> dict:
    """The checkpoint's two dictionaries, key names written out from the IP-Adapter-Plus format."""
    g = torch.Generator().manual_seed(seed)
    inner = 64  # one head of 64

    def rnd(*shape, scale=0.2):
        return torch.randn(*shape, generator=g) * scale

    proj = {"latents": rnd(1, queries, dim, scale=dim ** -0.5), "proj_in.weight": rnd(dim, embedding_dim),
            "proj_in.bias": rnd(dim), "proj_out.weight": rnd(output_dim, dim), "proj_out.bias": rnd(output_dim),
            "norm_out.weight": 1 + rnd(output_dim), "norm_out.bias": rnd(output_dim)}
    for i in range(depth):
        proj.update({
            f"layers.{i}.0.norm1.weight": 1 + rnd(dim), f"layers.{i}.0.norm1.bias": rnd(dim),
            f"layers.{i}.0.norm2.weight": 1 + rnd(dim), f"layers.{i}.0.norm2.bias": rnd(dim),
            f"layers.{i}.0.to_q.weight": rnd(inner, dim), f"layers.{i}.0.to_kv.weight": rnd(2 * inner, dim),
            f"layers.{i}.0.to_out.weight": rnd(dim, inner),
            f"layers.{i}.1.0.weight": 1 + rnd(dim), f"layers.{i}.1.0.bias": rnd(dim),
            f"layers.{i}.1.1.weight": rnd(dim * ff_mult, dim), f"layers.{i}.1.3.weight": rnd(dim, dim * ff_mult),
        })
    ip = {}
    for n, width in enumerate(layer_widths):
        ip[f"{2 * n + 1}.to_k_ip.weight"] = rnd(width, output_dim, scale=0.5)
        ip[f"{2 * n + 1}.to_v_ip.weight"] = rnd(width, output_dim, scale=0.5)
    return {"image_proj": proj, "ip_adapter": ip}


def write_ip_adapter(models_dir: Path, seed: int = 0, state: dict | None = None) -> Path:
    from transformers import CLIPConfig, CLIPModel

    folder = models_dir / IP_REPO
    (folder / "image_encoder").mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed + 11)
    CLIPModel(CLIPConfig(**tiny_clip_config())).save_pretrained(str(folder / "image_encoder"), safe_serialization=False)
    torch.save(state or adapter_state(seed), folder / "ip_adapter_plus_general.bin")
    return folder


def picture(colour=(200, 30, 30), size=48, fmt="PNG", pattern: int = 0) -> bytes:
    """A small picture with some structure (a square of `colour` on a gradient)."""
    from PIL import Image, ImageDraw

    im = Image.new("RGB", (size, size), (20 + pattern * 40, 60, 90))
    draw = ImageDraw.Draw(im)
    for x in range(0, size, 6):
        draw.line((x, 0, size - x, size), fill=(x * 4 % 255, 100, 200 - pattern * 30))
    draw.rectangle((size // 4, size // 4, 3 * size // 4, 3 * size // 4), fill=colour)
    out = io.BytesIO()
    im.save(out, format=fmt)
    return out.getvalue()


def make_story_engine(models_dir: Path, cache_dir: Path, **kw):
    """The kolors engine on the tiny models; everything stays resident unless low_memory=True
    (reloading the models between the many small renders of a test costs more than it shows)."""
    from kolorsc.engines.kolors import KolorsEngine

    kw.setdefault("low_memory", False)
    return KolorsEngine(models_dir=models_dir, cache_dir=cache_dir, device="cpu", model_loader=kw.pop("model_loader", None)
                        or StoryLoader(), **kw)
