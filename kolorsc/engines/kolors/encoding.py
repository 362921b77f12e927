"""Prompt encoding with Kolors' ChatGLM3, exactly as diffsynth's KolorsPrompter does it, plus a
content-addressed embedding cache.

Each distinct string is encoded once per story (prompts and negatives deduplicated), one
string per text-encoder call: batching strings would make an embedding depend, in its last
bits, on which other strings shared the batch, and then the same panel could differ between
two builds. The cache key is the text plus the text encoder's identity (its files' fingerprint
and dtype), so a second build, or a second story with the same negative, skips the 6B model
entirely.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MAX_LENGTH = 256  # KolorsPrompter pads/truncates to 256 tokens
CLIP_SKIP = 2  # KolorsPrompter uses hidden_states[-2] for the sequence (clip_skip_2=2)
ENCODING_VERSION = "1"


@dataclass
class Embedding:
    sequence: Any  # Tensor [1, 256, hidden]: UNet cross-attention input
    pooled: Any  # Tensor [1, hidden]: UNet add_text_embeds


def embedding_key(text: str, encoder_id: str) -> str:
    blob = json.dumps(
        {"text": text, "encoder": encoder_id, "max_length": MAX_LENGTH, "clip_skip": CLIP_SKIP, "v": ENCODING_VERSION},
        sort_keys=True,
        ensure_ascii=False,
    )
    return hashlib.sha256(blob.encode()).hexdigest()


class EmbeddingCache:
    """Embeddings as safetensors files under `<dir>/<k[:2]>/<k>.safetensors`, written atomically.
    dir=None keeps them in memory only (for this engine's life)."""

    def __init__(self, directory: Path | None):
        self.directory = Path(directory) if directory else None
        self.memory: dict[str, Embedding] = {}

    def _path(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}.safetensors"

    def get(self, key: str) -> Embedding | None:
        if key in self.memory:
            return self.memory[key]
        if self.directory is None or not self._path(key).is_file():
            return None
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            data = load_file(str(self._path(key)))
            emb = Embedding(data["sequence"], data["pooled"])
        except (SafetensorError, KeyError, OSError):  # a damaged entry is a miss, never a crash
            self._path(key).unlink(missing_ok=True)
            return None
        self.memory[key] = emb
        return emb

    def put(self, key: str, emb: Embedding) -> None:
        self.memory[key] = emb
        if self.directory is None:
            return
        from safetensors.torch import save_file

        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=key[:8], suffix=".tmp", dir=path.parent)
        os.close(fd)
        try:
            tensors = {"sequence": emb.sequence.detach().cpu().contiguous(), "pooled": emb.pooled.detach().cpu().contiguous()}
            save_file(tensors, tmp)
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
    """One string through ChatGLM3 the way diffsynth's KolorsPrompter.encode_prompt does."""
    import torch

    inputs = tokenizer()(text, padding="max_length", max_length=MAX_LENGTH, truncation=True, return_tensors="pt").to(device)
    with torch.no_grad():
        out = text_encoder(
            input_ids=inputs["input_ids"],
            attention_mask=inputs["attention_mask"],
            position_ids=inputs["position_ids"],
            output_hidden_states=True,
            use_cache=False,  # no key/value cache: one forward pass, nothing to generate
        )
    # ChatGLM's hidden states are [seq, batch, hidden]
    sequence = out.hidden_states[-CLIP_SKIP].permute(1, 0, 2).clone()
    pooled = out.hidden_states[-1][-1, :, :].clone()
    return Embedding(sequence, pooled)
