"""The one place kolorsc hashes things: bytes, files, and canonical JSON.

A key is a promise that an output is a function of its inputs, so every module that makes
a key or checks a file must hash the same way: sha256, and for structured data the
canonical JSON that DVC uses (sorted keys, no whitespace, UTF-8, non-ASCII kept).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

_CHUNK = 1 << 20


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def canonical_json(value) -> bytes:
    """Sorted keys, no whitespace: equal data gives equal bytes whatever the dict order.
    `default=str` lets paths and other plain values through as their text."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str).encode("utf-8")


def digest(value) -> str:
    """sha256 of the canonical JSON of `value`."""
    return sha256_bytes(canonical_json(value))


def short_digest(value, n: int = 12) -> str:
    return digest(value)[:n]


_BLOCK = 64 << 10
_BLOCKS = 16


def file_fingerprint(path: str | Path) -> str:
    """A cheap identity of a large file (model weights, fonts): its size and the sha256 of
    16 evenly spaced 64 KiB blocks, first and last included; small files are hashed whole.

    Any replacement by different weights changes it (a fine-tune changes every block; a
    safetensors header, which names shapes, sits in the first block), while reading 1 MiB
    of a 10 GB UNet costs milliseconds where a full hash costs a minute. Not a bit-level
    integrity check: `kolorsc models verify` does that."""
    path = Path(path)
    size = path.stat().st_size
    h = hashlib.sha256(f"{size}\0".encode())
    with open(path, "rb") as f:
        if size <= _BLOCK * _BLOCKS:
            h.update(f.read())
        else:
            step = (size - _BLOCK) // (_BLOCKS - 1)
            for i in range(_BLOCKS):
                f.seek(i * step)
                h.update(f.read(_BLOCK))
    return h.hexdigest()[:16]
