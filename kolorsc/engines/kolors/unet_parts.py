"""Where the attention layers of diffsynth's SDXL/Kolors UNet are, and in which half.

diffsynth keeps the UNet as one flat list of blocks: the encoder half pushes skip
connections (PushBlock), the decoder half pops them (PopBlock). An AttentionBlock before the
last push is a down block, between the last push and the first pop the mid block, after the
first pop an up block. The full Kolors UNet has attention blocks 7, 10 (down, 2 layers each),
15, 18 (down, 10), 21 (mid, 10), 25, 28, 31 (up, 10), 35, 38, 41 (up, 2): 70 layers.
"""

from __future__ import annotations

from dataclasses import dataclass

from kolorsc.errors import EngineError
from kolorsc.i18n import _

PARTS = ("down", "mid", "up")


@dataclass(frozen=True)
class AttentionBlockInfo:
    block_id: int  # index in unet.blocks (diffsynth's ipadapter_kwargs_list key)
    part: str  # "down", "mid" or "up"
    layers: int  # transformer blocks inside (ipadapter_kwargs_list[block_id] keys 0..layers-1)


def attention_blocks(unet) -> list[AttentionBlockInfo]:
    """Every AttentionBlock of the UNet with its half, in block order."""
    from diffsynth.models.sd_unet import AttentionBlock, PopBlock, PushBlock

    kinds = [type(b) for b in unet.blocks]
    pushes = [i for i, k in enumerate(kinds) if issubclass(k, PushBlock)]
    pops = [i for i, k in enumerate(kinds) if issubclass(k, PopBlock)]
    if not pushes or not pops:
        raise EngineError(_("this UNet has no skip connections (PushBlock/PopBlock): cannot tell its down, mid and up "
                            "blocks"))
    last_push, first_pop = pushes[-1], pops[0]
    out = []
    for i, block in enumerate(unet.blocks):
        if isinstance(block, AttentionBlock):
            part = "down" if i < last_push else ("mid" if i < first_pop else "up")
            out.append(AttentionBlockInfo(i, part, len(block.transformer_blocks)))
    return out


def cross_attention_order(unet) -> list[tuple[int, int]]:
    """(block_id, transformer_id) of every cross-attention layer in the order IP-Adapter
    checkpoints number them: diffusers' attention processors are listed down blocks, up
    blocks, then the mid block (its `mid_block` module is registered after `up_blocks`), and
    checkpoint key 2n+1 is the n-th cross-attention (even numbers were the self-attentions).
    diffsynth's own SDXLIpAdapter.set_full_adapter uses the same order."""
    blocks = attention_blocks(unet)
    ordered = [b for part in ("down", "up", "mid") for b in blocks if b.part == part]
    return [(b.block_id, t) for b in ordered for t in range(b.layers)]


def self_attention_layers(unet, layers: str) -> list:
    """The attn1 modules that share attention: layers "up", "up+mid" or "all"."""
    parts = {"up": ("up",), "up+mid": ("up", "mid"), "all": PARTS}[layers]
    out = []
    for info in attention_blocks(unet):
        if info.part in parts:
            out += [tb.attn1 for tb in unet.blocks[info.block_id].transformer_blocks]
    return out
