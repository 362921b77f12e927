"""The IP-Adapter-Plus image projection ("Resampler", a Perceiver): 16 learned queries read the
image encoder's penultimate hidden states and become 16 tokens of the UNet's cross-attention
width. Written here because diffsynth 1.1.x knows only h94's plain SDXL projection
(`IpAdapterImageProjModel`) and diffusers is not a kolorsc dependency.

Module and parameter names are those of the original IP-Adapter checkpoint format, which is
what Kwai's `ip_adapter_plus_general.bin` stores under "image_proj", so its state dict loads
with strict=True and no renaming:

    latents [1, queries, dim]                 proj_in (embedding_dim -> dim)
    layers.N.0.norm1 / norm2 (LayerNorm dim)  layers.N.0.to_q (dim -> inner), to_kv (dim -> 2 inner), to_out (inner -> dim)
    layers.N.1.0 (LayerNorm), .1 (dim -> mult dim), .3 (mult dim -> dim)   (.2 is the GELU)
    proj_out (dim -> output_dim)              norm_out (LayerNorm output_dim)

Kolors-IP-Adapter-Plus: embedding_dim 1024 (CLIP ViT-L), dim 2048, 12 heads of 64, 4 layers,
16 queries, output 2048. Sizes are read from the checkpoint (`ResamplerShape.of`), so tests
build the same class at tiny sizes. The attention is standard scaled dot-product attention
(IP-Adapter scales q and k by d^-1/4 each: the same product).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

HEAD_DIM = 64  # IP-Adapter's dim_head; the checkpoint does not store it (diffusers assumes 64 too)


@dataclass(frozen=True)
class ResamplerShape:
    embedding_dim: int
    dim: int
    heads: int
    depth: int
    queries: int
    output_dim: int
    ff_mult: int

    @classmethod
    def of(cls, state: dict) -> ResamplerShape:
        """Sizes from an "image_proj" state dict; KeyError/ValueError when it is not a Plus resampler."""
        latents = state["latents"]
        inner = state["layers.0.0.to_q.weight"].shape[0]
        if inner % HEAD_DIM:
            raise ValueError(f"attention width {inner} is not a multiple of {HEAD_DIM}")
        depth = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("layers."))
        return cls(
            embedding_dim=state["proj_in.weight"].shape[1],
            dim=latents.shape[2],
            heads=inner // HEAD_DIM,
            depth=depth,
            queries=latents.shape[1],
            output_dim=state["proj_out.weight"].shape[0],
            ff_mult=state["layers.0.1.1.weight"].shape[0] // latents.shape[2],
        )


class PerceiverAttention(torch.nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        inner = heads * HEAD_DIM
        self.heads = heads
        self.norm1 = torch.nn.LayerNorm(dim)
        self.norm2 = torch.nn.LayerNorm(dim)
        self.to_q = torch.nn.Linear(dim, inner, bias=False)
        self.to_kv = torch.nn.Linear(dim, 2 * inner, bias=False)
        self.to_out = torch.nn.Linear(inner, dim, bias=False)

    def forward(self, x, latents):
        x, latents = self.norm1(x), self.norm2(latents)
        q = self.to_q(latents)
        k, v = self.to_kv(torch.cat([x, latents], dim=-2)).chunk(2, dim=-1)
        b = latents.shape[0]

        def heads(t):
            return t.view(b, -1, self.heads, HEAD_DIM).transpose(1, 2)

        out = torch.nn.functional.scaled_dot_product_attention(heads(q), heads(k), heads(v))
        return self.to_out(out.transpose(1, 2).reshape(b, -1, self.heads * HEAD_DIM))


def feed_forward(dim: int, mult: int) -> torch.nn.Sequential:
    return torch.nn.Sequential(
        torch.nn.LayerNorm(dim),
        torch.nn.Linear(dim, dim * mult, bias=False),
        torch.nn.GELU(),
        torch.nn.Linear(dim * mult, dim, bias=False),
    )


class Resampler(torch.nn.Module):
    def __init__(self, shape: ResamplerShape):
        super().__init__()
        self.shape = shape
        self.latents = torch.nn.Parameter(torch.zeros(1, shape.queries, shape.dim))
        self.proj_in = torch.nn.Linear(shape.embedding_dim, shape.dim)
        self.layers = torch.nn.ModuleList(
            torch.nn.ModuleList([PerceiverAttention(shape.dim, shape.heads), feed_forward(shape.dim, shape.ff_mult)])
            for _ in range(shape.depth)
        )
        self.proj_out = torch.nn.Linear(shape.dim, shape.output_dim)
        self.norm_out = torch.nn.LayerNorm(shape.output_dim)

    def forward(self, hidden_states):
        """[b, image tokens, embedding_dim] -> [b, queries, output_dim]."""
        latents = self.latents.repeat(hidden_states.shape[0], 1, 1)
        x = self.proj_in(hidden_states)
        for attn, ff in self.layers:
            latents = attn(x, latents) + latents
            latents = ff(latents) + latents
        return self.norm_out(self.proj_out(latents))
