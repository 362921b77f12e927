"""Weight files: the one safetensors header reader kolorsc has.

A safetensors file is an 8-byte little-endian header length, a JSON header naming every
tensor's dtype, shape and byte range, then the data. Reading and checking the header is
enough to tell a complete file from a truncated or foreign one, and to name its tensors,
without torch or numpy and without reading hundreds of MB: `kolorsc models verify`,
`bundle verify` and LoRA inspection all use this reader.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

MAX_HEADER = 100 * 1024 * 1024  # safetensors' own limit on the JSON header
DTYPE_SIZES = {
    "F64": 8, "F32": 4, "F16": 2, "BF16": 2, "F8_E4M3": 1, "F8_E5M2": 1,
    "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U64": 8, "U32": 4, "U16": 2, "U8": 1, "BOOL": 1,
}


def read_safetensors_header(stream, total_size: int) -> dict:
    """Parse and check a safetensors header read from `stream` (a file of `total_size` bytes):
    every tensor's bytes lie inside the file and match its dtype and shape.

    Raises ValueError with the reason."""
    head = stream.read(8)
    if len(head) < 8:
        raise ValueError("file shorter than the 8-byte header length")
    (n,) = struct.unpack("<Q", head)
    if n > MAX_HEADER or 8 + n > total_size:
        raise ValueError(f"header length {n} does not fit in the file ({total_size} bytes)")
    try:
        header = json.loads(stream.read(n).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"header is not JSON: {exc}") from None
    if not isinstance(header, dict):
        raise ValueError("header is not a JSON object")
    body = total_size - 8 - n
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype, shape, (start, end) = info["dtype"], info["shape"], info["data_offsets"]
            count = 1
            for dim in shape:
                count *= int(dim)
            size = DTYPE_SIZES[dtype] * count
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"tensor {name!r}: malformed entry {info!r}") from None
        if not (0 <= start <= end <= body) or end - start != size:
            raise ValueError(f"tensor {name!r}: data offsets {start}..{end} do not match {dtype}{shape} in a {body}-byte body")
    return header


def read_safetensors_file(path: Path) -> dict:
    """The checked header of a safetensors file on disk (ValueError when it is not one)."""
    path = Path(path)
    with open(path, "rb") as f:
        return read_safetensors_header(f, path.stat().st_size)
