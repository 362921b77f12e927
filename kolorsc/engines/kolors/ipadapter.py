"""Kolors-IP-Adapter-Plus on diffsynth 1.1.x's SDXL UNet: reference pictures as extra
cross-attention keys and values.

    picture --CLIP ViT-L/14-336 (hidden_states[-2])--> [1, 577, 1024]      cached by the picture's sha256
            --Plus resampler--> 16 tokens [1, 16, 2048]
            --to_k_ip / to_v_ip of each of the 70 cross-attention layers--> (k, v) per layer
    in every cross-attention: out = attn(q, text k, text v) + sum over pictures of scale * attn(q, k_ip, v_ip)

As in diffusers' IPAdapterAttnProcessor2_0 and Kwai's pipeline: the guidance's unconditional
half uses the projection of an all-zero picture (after the processor's normalisation), the
conditional half the reference's. Several pictures on one panel (two characters) each add
their own term with their own scale — what diffusers does with the adapter loaded once per
picture (`load_ip_adapter([...] * 2)`, `set_ip_adapter_scale([s1, s2])`); there are no region
masks, so both pictures act on the whole panel.

diffsynth routes per-layer keys and values through `ipadapter_kwargs_list` (its `lets_dance_xl`
forward; `SDXLUNet.forward` drops them), and its Attention calls
`self.interact_with_ipadapter(hidden_states, q, **kwargs)`: `installed(unet)` sets that method
on the cross-attention modules for the duration of a render, taking one (k, v, scale) per
picture slot, scale a [batch, 1, 1, 1] tensor so each image of a batch has its own pictures.

The image encoder, the resampler and the projections run once per picture per build (and the
encoder not at all when its embedding is cached); per denoising step only the extra attention
terms remain. torch and transformers are imported inside the functions.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import types
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kolorsc.errors import EngineError
from kolorsc.i18n import _

ADAPTER_FILE = "ip_adapter_plus_general.bin"
IMAGE_ENCODER_DIR = "image_encoder"
IMAGE_ENCODING_VERSION = "1"  # hidden_states[-2] of the CLIP processor's crop, fp as the encoder runs
ZEROS = "zeros"  # the unconditional picture


# -- the adapter file ----------------------------------------------------------------------


@dataclass
class Adapter:
    resampler: Any  # kolorsc.engines.kolors.resampler.Resampler
    layers: list  # [((block_id, transformer_id), to_k_ip weight, to_v_ip weight)], checkpoint order


def load_adapter(path: Path, unet, dtype, device: str) -> Adapter:
    """Read ip_adapter_plus_general.bin (weights only) and check it against the UNet: a Plus
    resampler whose output width is the cross-attention width, and one to_k_ip/to_v_ip pair per
    cross-attention layer with that layer's shapes."""
    import torch

    from kolorsc.engines.kolors.resampler import Resampler, ResamplerShape
    from kolorsc.engines.kolors.unet_parts import cross_attention_order

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        proj, ip = state["image_proj"], state["ip_adapter"]
        shape = ResamplerShape.of(proj)
    except (KeyError, ValueError, TypeError) as exc:
        raise EngineError(_("{path} is not an IP-Adapter-Plus file ({problem}): expected image_proj (a Plus "
                            "resampler) and ip_adapter. `kolorsc models pull ip-adapter`").format(
                              path=path, problem=f"{exc.__class__.__name__}: {exc}")) from exc
    except Exception as exc:  # pickle/zip errors of a damaged file
        raise EngineError(_("cannot read {path}: {problem}. Delete it and run `kolorsc models pull ip-adapter`").format(
                          path=path, problem=f"{exc.__class__.__name__}: {exc}")) from exc
    resampler = Resampler(shape)
    resampler.load_state_dict(proj, strict=True)
    order = cross_attention_order(unet)
    pairs = len(ip) // 2
    if pairs != len(order):
        raise EngineError(_("{path} has {n} IP-Adapter layers, the UNet {layers} cross-attention layers: "
                            "not an adapter for this UNet").format(path=path, n=pairs, layers=len(order)))
    layers = []
    for n, (block_id, t) in enumerate(order):
        attn = unet.blocks[block_id].transformer_blocks[t].attn2
        wanted = (attn.to_k.out_features, shape.output_dim)
        k, v = ip.get(f"{2 * n + 1}.to_k_ip.weight"), ip.get(f"{2 * n + 1}.to_v_ip.weight")
        if k is None or v is None or tuple(k.shape) != wanted or tuple(v.shape) != wanted:
            got = None if k is None else tuple(k.shape)
            raise EngineError(_("{path}: layer {n} should hold to_k_ip/to_v_ip of shape {wanted}, has {got}").format(
                path=path, n=2 * n + 1, wanted=wanted, got=got))
        layers.append(((block_id, t), k.to(device=device, dtype=dtype), v.to(device=device, dtype=dtype)))
    return Adapter(resampler.to(device=device, dtype=dtype).eval(), layers)


def project(adapter: Adapter, hidden) -> list:
    """Image-encoder hidden states [1, T, D] -> [(k, v)] per layer, each [1, queries, width]."""
    import torch

    dtype = next(adapter.resampler.parameters()).dtype
    with torch.no_grad():
        tokens = adapter.resampler(hidden.to(device=adapter.layers[0][1].device, dtype=dtype))
        return [(tokens @ wk.T, tokens @ wv.T) for _, wk, wv in adapter.layers]


# -- the image encoder ---------------------------------------------------------------------


@dataclass
class ImageEncoder:
    model: Any  # transformers CLIPVisionModelWithProjection
    processor: Any  # CLIPImageProcessor at the model's image size


def load_image_encoder(folder: Path, dtype, device: str) -> ImageEncoder:
    """The release's image_encoder/ (a CLIPModel config and weights) as its vision half, and
    the processor Kwai's sample builds: CLIPImageProcessor(size=336, crop_size=336), i.e. the
    OpenAI CLIP resize-shorter-side, centre crop and normalisation at the model's image size."""
    from transformers import CLIPImageProcessor, CLIPVisionModelWithProjection

    try:
        model, info = CLIPVisionModelWithProjection.from_pretrained(str(folder), dtype=dtype, output_loading_info=True)
    except (OSError, ValueError, RuntimeError) as exc:
        raise EngineError(_("cannot load the IP-Adapter image encoder from {folder}: {problem}. "
                            "`kolorsc models pull ip-adapter`").format(
                              folder=folder, problem=f"{exc.__class__.__name__}: {exc}")) from exc
    missing = [k for k in info.get("missing_keys", []) if "position_ids" not in k]
    if missing:  # transformers would run them with random values
        raise EngineError(_("{folder} lacks image encoder weights ({names}...): "
                            "not the CLIP ViT-L/14-336 of Kolors-IP-Adapter-Plus").format(
                              folder=folder, names=", ".join(missing[:3])))
    size = model.config.image_size
    return ImageEncoder(model.to(device).eval(), CLIPImageProcessor(size=size, crop_size=size))


def encoder_identity(folder: Path, dtype) -> str:
    """Identity of the image encoder for the embedding cache: its config, weights size, dtype."""
    h = hashlib.sha256()
    for name in ("config.json", "pytorch_model.bin"):
        path = folder / name
        h.update(f"{name}\0{path.stat().st_size}\0".encode())
        if name.endswith(".json"):
            h.update(path.read_bytes())
    h.update(str(dtype).encode())
    return h.hexdigest()[:16]


def embedding_key(picture_sha256: str, encoder_id: str) -> str:
    """Cache key of a picture's image-encoder hidden states (ZEROS: the unconditional picture)."""
    blob = json.dumps({"picture": picture_sha256, "encoder": encoder_id, "v": IMAGE_ENCODING_VERSION}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def encode_picture(encoder: ImageEncoder, data: bytes | None):
    """hidden_states[-2] of the picture (bytes of a PNG/JPEG/WebP), or of the all-zero input
    when `data` is None. Returns a CPU tensor [1, tokens, width]."""
    import io

    import torch
    from PIL import Image

    device = next(encoder.model.parameters()).device
    dtype = next(encoder.model.parameters()).dtype
    if data is None:
        size = encoder.model.config.image_size
        pixels = torch.zeros(1, 3, size, size)
    else:
        with Image.open(io.BytesIO(data)) as im:
            pixels = encoder.processor(images=im.convert("RGB"), return_tensors="pt").pixel_values
    with torch.no_grad():
        out = encoder.model(pixels.to(device=device, dtype=dtype), output_hidden_states=True)
    return out.hidden_states[-2].cpu()


# -- conditioning a batch ------------------------------------------------------------------


@dataclass(frozen=True)
class Slot:
    """One picture on one image of the batch: its per-layer (k, v) and scale."""

    kv: list  # [(k, v)] per layer, [1, queries, width]
    scale: float


def ipadapter_kwargs_list(adapter_layers: Sequence[tuple[int, int]], cond: Sequence[Sequence[Slot]],
                          uncond_kv: list, guided: bool, dtype) -> dict:
    """diffsynth's {block_id: {transformer_id: {"ip_k", "ip_v", "scale"}}} for a batch whose
    conditional images carry `cond[i]` (pictures of image i) and, when `guided`, the same
    number of unconditional images after them, which get the zero picture's k/v at the same
    scales. Picture slots are tuples: slot s holds image i's s-th picture, or a zero-scale
    stand-in when image i has fewer."""
    import torch

    n = len(cond)
    slots = max((len(c) for c in cond), default=0)
    out: dict = {}
    for layer, (block_id, t) in enumerate(adapter_layers):
        ks, vs, scales = [], [], []
        for s in range(slots):
            k_rows, v_rows, s_rows = [], [], []
            for half in (("cond", "uncond") if guided else ("cond",)):
                for i in range(n):
                    slot = cond[i][s] if s < len(cond[i]) else None
                    kv = uncond_kv if (half == "uncond" or slot is None) else slot.kv
                    k_rows.append(kv[layer][0])
                    v_rows.append(kv[layer][1])
                    s_rows.append(0.0 if slot is None else slot.scale)
            ks.append(torch.cat(k_rows).to(dtype=dtype))
            vs.append(torch.cat(v_rows).to(dtype=dtype))
            scales.append(torch.tensor(s_rows, dtype=dtype, device=ks[-1].device).view(-1, 1, 1, 1))
        out.setdefault(block_id, {})[t] = {"ip_k": tuple(ks), "ip_v": tuple(vs), "scale": tuple(scales)}
    return out


def _interact(self, hidden_states, q, ip_k, ip_v, scale):
    """diffsynth Attention.interact_with_ipadapter for several pictures: one attention per
    picture over its own tokens, added with its scale (per image of the batch)."""
    import torch

    batch = q.shape[0]
    for k, v, s in zip(ip_k, ip_v, scale):
        k = k.view(batch, -1, self.num_heads, self.head_dim).transpose(1, 2)
        v = v.view(batch, -1, self.num_heads, self.head_dim).transpose(1, 2)
        hidden_states = hidden_states + s * torch.nn.functional.scaled_dot_product_attention(q, k, v)
    return hidden_states


@contextlib.contextmanager
def installed(unet, adapter_layers: Sequence[tuple[int, int]]):
    """Give the UNet's cross-attention layers the several-picture `interact_with_ipadapter`
    while rendering; the class's own method is back afterwards."""
    modules = [unet.blocks[b].transformer_blocks[t].attn2 for b, t in adapter_layers]
    for m in modules:
        m.interact_with_ipadapter = types.MethodType(_interact, m)
    try:
        yield
    finally:
        for m in modules:
            m.__dict__.pop("interact_with_ipadapter", None)


def unet_forward(unet, sample, timestep, encoder_hidden_states, add_time_id, add_text_embeds, ipadapter_kwargs_list):
    """The UNet pass with per-layer IP-Adapter kwargs: diffsynth's lets_dance_xl, all images in
    one batch (its `unet_batch_size` would otherwise split the batch)."""
    from diffsynth.pipelines.dancer import lets_dance_xl

    return lets_dance_xl(
        unet, sample=sample, timestep=timestep, encoder_hidden_states=encoder_hidden_states,
        add_time_id=add_time_id, add_text_embeds=add_text_embeds, ipadapter_kwargs_list=ipadapter_kwargs_list,
        unet_batch_size=sample.shape[0], device=str(sample.device),
    )
