"""Shared self-attention across the panels of a story: StoryDiffusion's Consistent
Self-Attention (Zhou et al., 2024), as a hook on the UNet's self-attention layers.

The panels of a group are denoised in one batch. In the hooked layers (the up blocks by
default, as StoryDiffusion does), an image's queries attend to its own tokens plus a sample
of the tokens of the identity images; the identity images attend to each other's. Keys and
values of sampled tokens are the other image's own keys and values at that layer, so a face
drawn in an identity panel is there to be copied, in the same layer, by every other panel.

    image i, layer L, step t >= from_step:
        K_i = [ k_i ; k_j[S_j] for each identity image j != i ],  V_i likewise
        out_i = softmax(q_i K_i^T / sqrt(d)) V_i

S_j is a random subset of round(rate_i * N) of image j's N tokens, drawn afresh at every step
(as StoryDiffusion does) from a generator seeded by (identity image's panel and seed, step,
N), never from global random state: an image's result depends only on itself and the
identity images, whichever other panels share its batch. The conditional and unconditional
halves of the guidance batch share separately (as in StoryDiffusion).

Not taken from StoryDiffusion's release: it skips sharing at random in 30% (then 10%) of the
layer calls, from Python's global `random` — not part of the method as the paper states it,
and it would make a panel depend on what ran before; kolorsc shares in every hooked layer
from `from_step` on. Its identity "bank" (every step's tokens of the identity images, stored)
is replaced by rendering the identity images again in every batch: compute instead of
memory (the bank is ~110 MB per identity image per step at 1024²).

Memory: the batch holds every image's activations (see bench/RESULTS.md for the measured
per-panel cost); attention runs per group of equal key length, without masks, so PyTorch
can use its memory-efficient kernels.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
from dataclasses import dataclass, field


@dataclass
class ShareLayout:
    """Who is who in a batch of n images (the conditional half; the unconditional half, when
    guided, repeats the same order after it). Images 0..identity-1 are the identity images."""

    identity: int
    rates: list[float]  # per image: the fraction of each identity image's tokens it attends to
    identity_ids: list[tuple[int, int]]  # (panel index, seed) of each identity image: seeds the samples
    guided: bool
    from_step: int
    step: int = field(default=0)  # set by the denoising loop before every UNet call

    @property
    def n(self) -> int:
        return len(self.rates)


def token_sample(n_tokens: int, rate: float, member: tuple[int, int], step: int):
    """Sorted indices of the tokens of identity image `member` seen at `rate` in `step`:
    the first round(rate * n) of a permutation seeded by (member, step, n). Nested across
    rates (a lower rate sees a subset of what a higher one sees); the same in every layer of
    one resolution within a step, as StoryDiffusion's indices are."""
    return _permutation(n_tokens, member, step)[: round(rate * n_tokens)].sort().values


@functools.lru_cache(maxsize=256)
def _permutation(n_tokens: int, member: tuple[int, int], step: int):
    import torch

    seed = int.from_bytes(hashlib.sha256(f"{member[0]}/{member[1]}/{step}/{n_tokens}".encode()).digest()[:8], "little")
    return torch.randperm(n_tokens, generator=torch.Generator("cpu").manual_seed(seed))


def shared_self_attention(attn, hidden_states, layout: ShareLayout):
    """The hooked self-attention of one diffsynth `Attention` module over a batch laid out as
    `layout` says: q, k, v of every image, each image's keys/values extended with its samples
    of the identity images', scaled dot-product attention, output projection."""
    import torch

    n_tokens = hidden_states.shape[1]
    heads, head_dim = attn.num_heads, attn.head_dim
    q, k, v = attn.to_q(hidden_states), attn.to_k(hidden_states), attn.to_v(hidden_states)
    out = torch.empty_like(q)
    halves = (0, layout.n) if layout.guided else (0,)
    for offset in halves:
        groups: dict[tuple, list[int]] = {}
        for i in range(layout.n):
            sources = [j for j in range(layout.identity) if j != i]
            groups.setdefault((len(sources), round(layout.rates[i] * n_tokens)), []).append(i)
        for images in groups.values():
            keys, values = [], []
            for i in images:
                parts = [i] + [j for j in range(layout.identity) if j != i]
                ks, vs = [k[offset + i]], [v[offset + i]]
                for j in parts[1:]:
                    idx = token_sample(n_tokens, layout.rates[i], layout.identity_ids[j], layout.step).to(k.device)
                    ks.append(k[offset + j].index_select(0, idx))
                    vs.append(v[offset + j].index_select(0, idx))
                keys.append(torch.cat(ks))
                values.append(torch.cat(vs))
            rows = [offset + i for i in images]
            count = len(images)

            def split(t, count=count):
                return t.view(count, -1, heads, head_dim).transpose(1, 2)

            attended = torch.nn.functional.scaled_dot_product_attention(
                split(q[rows]), split(torch.stack(keys)), split(torch.stack(values)))
            out[rows] = attended.transpose(1, 2).reshape(len(images), n_tokens, heads * head_dim).to(q.dtype)
    return attn.to_out(out)


@contextlib.contextmanager
def installed(modules, layout: ShareLayout):
    """Hook `modules` (diffsynth Attention, the self-attention layers that share) for one batch:
    from `layout.from_step` on their forward is shared_self_attention; before it, and for any
    call with encoder states, the class's own forward. Removed on exit."""

    def hooked(attn):
        original = type(attn).forward

        def forward(hidden_states, encoder_hidden_states=None, attn_mask=None, ipadapter_kwargs=None, qkv_preprocessor=None):
            if layout.step < layout.from_step or encoder_hidden_states is not None or attn_mask is not None:
                return original(attn, hidden_states, encoder_hidden_states, attn_mask, ipadapter_kwargs, qkv_preprocessor)
            return shared_self_attention(attn, hidden_states, layout)

        return forward

    for m in modules:
        m.forward = hooked(m)
    try:
        yield layout
    finally:
        for m in modules:
            m.__dict__.pop("forward", None)
