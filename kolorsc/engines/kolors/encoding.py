"""Prompt encoding with Kolors' ChatGLM3, exactly as diffsynth's KolorsPrompter does it, plus a
content-addressed embedding cache.

Each distinct string is encoded once per story (prompts and negatives deduplicated), one
string per text-encoder call: batching strings would make an embedding depend, in its last
bits, on which other strings shared the batch, and then the same panel could differ between
two builds. The cache key is the text plus the text encoder's identity (its files' fingerprint
and dtype), so a second build, or a second story with the same negative, skips the 6B model
entirely.

Collapsed padding. KolorsPrompter pads every prompt on the left to 256 tokens, and the UNet
attends over all 256 positions, so the padding's hidden states matter. A typical panel prompt
is 30-60 tokens: ~85% of the text encoder's work would be spent on padding. But in ChatGLM
every pad position has the same token, the same position id (0) and the same attention row
(a pad query sees every key, see `ChatGLMModel.get_masks`), so all pad positions carry the
same hidden state at every layer, and no real token ever attends to one. We therefore run
one pad plus the real tokens, give that one pad key a bias of log(number of pads) in the pad
query's attention row (exp(s + log P) = P * exp(s): the weight P identical keys would have),
and repeat its hidden state P times. The result is the padded encoding up to float rounding
(tested against the padded pass on the real ChatGLM class), at the cost of the real tokens.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kolorsc.codeid import code_identity
from kolorsc.hashing import digest

MAX_LENGTH = 256  # KolorsPrompter pads/truncates to 256 tokens
CLIP_SKIP = 2  # KolorsPrompter uses hidden_states[-2] for the sequence (clip_skip_2=2)


@dataclass
class Embedding:
    sequence: Any  # Tensor [1, 256, hidden]: UNet cross-attention input
    pooled: Any  # Tensor [1, hidden]: UNet add_text_embeds


def encoding_identity() -> str:
    """This module's code identity (kolorsc.codeid): a change to how prompts are encoded
    re-encodes instead of serving embeddings made the old way."""
    return code_identity("kolorsc.engines.kolors.encoding")


def embedding_key(text: str, encoder_id: str) -> str:
    return digest({"text": text, "encoder": encoder_id, "max_length": MAX_LENGTH, "clip_skip": CLIP_SKIP,
                   "code": encoding_identity()})


class EmbeddingCache:
    """Embeddings as safetensors files under `<dir>/<k[:2]>/<k>.safetensors`, written atomically.
    dir=None keeps them in memory only (for this engine's life). Prompt embeddings go through
    get/put; other named tensors (the IP-Adapter's image embeddings) through get_tensors/put_tensors."""

    def __init__(self, directory: Path | None):
        self.directory = Path(directory) if directory else None
        self.memory: dict[str, dict[str, Any]] = {}

    def _path(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}.safetensors"

    def get(self, key: str) -> Embedding | None:
        data = self.get_tensors(key, ("sequence", "pooled"))
        return None if data is None else Embedding(data["sequence"], data["pooled"])

    def put(self, key: str, emb: Embedding) -> None:
        self.put_tensors(key, {"sequence": emb.sequence, "pooled": emb.pooled})

    def get_tensors(self, key: str, names: tuple[str, ...]) -> dict[str, Any] | None:
        if key in self.memory:
            return self.memory[key]
        if self.directory is None or not self._path(key).is_file():
            return None
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            data = load_file(str(self._path(key)))
            data = {name: data[name] for name in names}
        except (SafetensorError, KeyError, OSError):  # a damaged entry is a miss, never a crash
            self._path(key).unlink(missing_ok=True)
            return None
        with contextlib.suppress(OSError):  # mark it used: `kolorsc cache gc` removes what builds stopped reading
            os.utime(self._path(key))
        self.memory[key] = data
        return data

    def put_tensors(self, key: str, tensors: dict[str, Any]) -> None:
        self.memory[key] = tensors
        if self.directory is None:
            return
        from safetensors.torch import save_file

        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=key[:8], suffix=".tmp", dir=path.parent)
        os.close(fd)
        try:
            save_file({name: t.detach().cpu().contiguous() for name, t in tensors.items()}, tmp)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)


_TOKENIZER = None


def tokenizer():
    """The ChatGLM tokenizer that ships inside diffsynth (works offline)."""
    global _TOKENIZER
    if _TOKENIZER is None:
        import os as _os

        import diffsynth
        from diffsynth.prompters.kolors_prompter import ChatGLMTokenizer

        path = _os.path.join(_os.path.dirname(diffsynth.__file__), "tokenizer_configs", "kolors", "tokenizer")
        _TOKENIZER = ChatGLMTokenizer.from_pretrained(path)
    return _TOKENIZER


def encode_text(text_encoder, text: str, device: str) -> Embedding:
    """One string through ChatGLM3 as diffsynth's KolorsPrompter.encode_prompt does (256 tokens,
    left-padded, hidden_states[-2] and the last position of the last layer), with the padding
    collapsed into one position (module docstring)."""
    import torch

    inputs = tokenizer()(text, padding="max_length", max_length=MAX_LENGTH, truncation=True, return_tensors="pt")
    pads = int((inputs["attention_mask"][0] == 0).sum())
    kept = slice(max(pads - 1, 0), None)  # one pad (if any) and every real token
    kwargs = {"input_ids": inputs["input_ids"][:, kept].to(device), "position_ids": inputs["position_ids"][:, kept].to(device)}
    if pads:
        dtype = next(text_encoder.parameters()).dtype
        kwargs["full_attention_mask"] = _CollapsedPadMask(pad_bias(inputs["input_ids"].shape[1] - pads, pads, dtype, device))
    with torch.no_grad():
        out = text_encoder(**kwargs, output_hidden_states=True, use_cache=False)  # one pass, nothing to generate
    # ChatGLM's hidden states are [seq, batch, hidden]
    sequence = _expand_pads(out.hidden_states[-CLIP_SKIP], pads).permute(1, 0, 2).clone()
    pooled = out.hidden_states[-1][-1, :, :].clone()  # the last position is always a real token
    return Embedding(sequence, pooled)


def pad_bias(real: int, pads: int, dtype, device: str = "cpu"):
    """Additive attention bias [1, 1, 1 + real, 1 + real] for one pad followed by `real` tokens:
    row 0 (the pad query) sees everything, with log(pads) on the pad key; real queries are
    causal over the real tokens and never see the pad (ChatGLMModel.get_masks, collapsed)."""
    import math

    import torch

    n = 1 + real
    bias = torch.full((n, n), float("-inf"), dtype=dtype, device=device)
    bias[1:, 1:] = torch.triu(bias[1:, 1:], diagonal=1)  # 0 on and below the diagonal
    bias[0, :] = 0.0
    bias[0, 0] = math.log(pads)
    return bias.view(1, 1, n, n)


class _CollapsedPadMask:
    """ChatGLM's CoreAttention turns its boolean "masked" tensor into SDPA's "keep" mask with `~`;
    handing it this object makes that step return the additive bias instead (SDPA takes
    either). Every other layer passes the mask through untouched."""

    def __init__(self, bias):
        self.bias = bias

    def __invert__(self):
        return self.bias


def _expand_pads(hidden, pads: int):
    """[1 + real, b, h] -> [pads + real, b, h]: the one pad's state repeated at every pad position."""
    import torch

    if pads <= 1:
        return hidden
    return torch.cat([hidden[:1].expand(pads, -1, -1), hidden[1:]], dim=0)
