"""safetensors files checked from their header alone, without torch or numpy: the one
safetensors header reader kolorsc has (models verify, bundle verify, LoRA files).

The format is an 8-byte little-endian header length, a JSON header (tensor name ->
dtype, shape, data_offsets) and the tensor bytes. Checking that header before handing a
file to `safetensors.safe_open` turns a file that only looks like safetensors into a
sentence instead of a Rust panic or a traceback, and `bundle verify` reads a LoRA inside a
zip without loading it. Hand-written because it is a few lines and the library has no
"check without loading" call.
"""

from __future__ import annotations

import json
import struct
from typing import BinaryIO

MAX_HEADER = 100 * 1024 * 1024  # safetensors' own limit on the JSON header
DTYPE_SIZES = {
    "F64": 8, "F32": 4, "F16": 2, "BF16": 2, "F8_E4M3": 1, "F8_E5M2": 1,
    "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U64": 8, "U32": 4, "U16": 2, "U8": 1, "BOOL": 1,
}


def looks_like_safetensors(head: bytes, total_size: int) -> bool:
    """By content, not by name (the build cache stores files under their hash, no suffix):
    an 8-byte header length that fits in the file, then a JSON object."""
    return len(head) >= 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < total_size


def read_header(stream: BinaryIO, total_size: int, max_header: int = MAX_HEADER) -> dict:
    """Parse and check the header read from `stream` (a file of `total_size` bytes): every
    tensor's bytes lie inside the file and match its dtype and shape. Reads at most
    8 + max_header bytes. Raises ValueError with the reason."""
    head = stream.read(8)
    if len(head) < 8:
        raise ValueError("file shorter than the 8-byte header length")
    (n,) = struct.unpack("<Q", head)
    if n > max_header or 8 + n > total_size:
        raise ValueError(f"header length {n} does not fit in the file ({total_size} bytes)"
                         if 8 + n > total_size else f"header of {n} bytes is over the limit of {max_header}")
    try:
        header = json.loads(stream.read(n).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ValueError(f"header is not JSON: {exc}") from None
    if not isinstance(header, dict):
        raise ValueError("header is not a JSON object")
    body = total_size - 8 - n
    for name, info in header.items():
        if name == "__metadata__":
            if not isinstance(info, dict) or not all(isinstance(v, str) for v in info.values()):
                raise ValueError("__metadata__ is not a mapping of text")
            continue
        try:
            dtype, shape, (start, end) = info["dtype"], info["shape"], info["data_offsets"]
            count = 1
            for dim in shape:
                if not isinstance(dim, int) or dim < 0:
                    raise ValueError
                count *= dim
            size = DTYPE_SIZES[dtype] * count
            if not isinstance(start, int) or not isinstance(end, int):
                raise ValueError
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"tensor {name!r}: malformed entry {str(info)[:200]}") from None
        if not (0 <= start <= end <= body) or end - start != size:
            raise ValueError(f"tensor {name!r}: data offsets {start}..{end} do not match {dtype}{shape} in a {body}-byte body")
    return header


def read_file_header(path) -> dict:
    """The checked header of a safetensors file on disk (ValueError when it is not one)."""
    import os

    with open(path, "rb") as f:
        return read_header(f, os.fstat(f.fileno()).st_size)
