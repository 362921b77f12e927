"""Panel PNGs with their generation parameters in text chunks.

Keys a person or a tool can read: `prompt`, `negative`, `seed`, ... ; `parameters` in the
AUTOMATIC1111 layout that image browsers and civitai parse; `kolorsc` with the whole record
as JSON. Non-Latin-1 text (Chinese prompts) goes into iTXt chunks (UTF-8), the rest into
tEXt. No timestamps and no tIME chunk, so the bytes depend only on the inputs.

The pixels are not re-encoded: a PNG is a list of chunks, and the text chunks are put after
the header with the image data (IDAT) copied as it is (pypng reads and writes the chunks,
checking their CRCs). Re-encoding a 1024² panel at zlib level 6 took ~0.25 s and gave the
same IDAT bytes for the PNGs engines store (Pillow, RGB, level 6). Only a PNG with other
chunks (palette, transparency, colour profile) or another pixel format is re-encoded.
"""

from __future__ import annotations

import io
import json

from kolorsc.emit.common import engine_label, lora_filename, panel_record
from kolorsc.results import PanelResult, StoryResult


def a1111_parameters(pr: PanelResult, result: StoryResult) -> str:
    """The `parameters` text as AUTOMATIC1111 writes it: prompt, negative, then settings."""
    p = pr.panel
    settings = [
        f"Steps: {p.steps}",
        f"CFG scale: {p.cfg}",
        f"Seed: {pr.seed}",
        f"Size: {p.width}x{p.height}",
        f"Model: {result.story.style.base_model}",
    ]
    if result.lora is not None:
        settings.append(f'Lora hashes: "{lora_filename(result)}: {result.lora.key[:12]}"')
        settings.append(f"Lora scale: {result.lora.scale}")
    settings.append(f"Engine: {engine_label(result)}")
    if result.preview:
        settings.append("Preview: true")
    return f"{p.prompt}\nNegative prompt: {p.negative}\n" + ", ".join(settings)


def panel_chunks(pr: PanelResult, result: StoryResult) -> list[tuple[str, str]]:
    """(key, text) pairs in a fixed order."""
    p = pr.panel
    record = panel_record(pr, result)
    record["engine"] = result.engine
    record["preview"] = result.preview
    record["story"] = result.story.id
    record["lora"] = None
    chunks = [
        ("prompt", p.prompt),
        ("negative", p.negative),
        ("seed", str(pr.seed)),
        ("steps", str(p.steps)),
        ("cfg", str(p.cfg)),
        ("size", f"{p.width}x{p.height}"),
        ("engine", json.dumps(result.engine, ensure_ascii=False, sort_keys=True)),
    ]
    if result.lora is not None:
        lora = {"name": lora_filename(result), "scale": result.lora.scale, "key": result.lora.key}
        record["lora"] = lora
        chunks.append(("lora", json.dumps(lora, ensure_ascii=False, sort_keys=True)))
    if result.preview:
        chunks.append(("kolorsc:preview", "true"))
    chunks.append(("parameters", a1111_parameters(pr, result)))
    chunks.append(("kolorsc", json.dumps(record, ensure_ascii=False, sort_keys=True)))
    return chunks


# Chunks that only carry metadata: dropped (only ours go out) without touching the pixels.
_METADATA_CHUNKS = {b"tEXt", b"zTXt", b"iTXt", b"tIME"}
_PASSED = {b"IHDR", b"IDAT", b"IEND"}


def panel_png(image_png: bytes, panel_result: PanelResult, result: StoryResult) -> bytes:
    """`image_png` with the panel's parameters in text chunks (and no other metadata).
    Deterministic bytes; the pixels are copied, not re-encoded, whenever possible."""
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    for key, text in panel_chunks(panel_result, result):
        # add_text makes tEXt when the text is Latin-1, else an uncompressed iTXt (UTF-8).
        info.add_text(key, text)
    text_chunks = [(cid, data) for cid, data, _after_idat in info.chunks]
    copied = _with_chunks(image_png, text_chunks)
    return copied if copied is not None else _reencoded(image_png, info)


def _with_chunks(image_png: bytes, text_chunks: list[tuple[bytes, bytes]]) -> bytes | None:
    """The PNG with `text_chunks` right after its header, its IDAT copied; None when the PNG
    is not plain 8-bit RGB/RGBA, non-interlaced, without other ancillary chunks."""
    import png

    try:
        chunks = list(png.Reader(bytes=image_png).chunks())
    except png.Error:  # unreadable here: Pillow re-encodes it or says what is wrong
        return None
    ihdr = chunks[0][1] if chunks and chunks[0][0] == b"IHDR" else b""
    plain = len(ihdr) == 13 and ihdr[8] == 8 and ihdr[9] in (2, 6) and ihdr[12] == 0
    if not plain or any(cid not in _PASSED | _METADATA_CHUNKS for cid, _ in chunks):
        return None
    kept = [c for c in chunks if c[0] in _PASSED]
    out = io.BytesIO()
    png.write_chunks(out, [kept[0], *text_chunks, *kept[1:]])
    return out.getvalue()


def _reencoded(image_png: bytes, info) -> bytes:
    """Decode and encode again as RGB(A) with `info`'s chunks: for PNGs with a palette,
    transparency, a colour profile or 16-bit samples."""
    from PIL import Image

    with Image.open(io.BytesIO(image_png)) as im:
        im.load()
        alpha = im.mode in ("RGBA", "LA") or "transparency" in im.info
        image = im.convert("RGBA" if alpha else "RGB")
    out = io.BytesIO()
    image.save(out, format="PNG", pnginfo=info, compress_level=6)
    return out.getvalue()


def read_png_text(data: bytes) -> dict[str, str]:
    """The text chunks of a PNG (tEXt, zTXt, iTXt) as a dict: for tests and `bundle verify`."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        im.load()
        return {k: str(v) for k, v in getattr(im, "text", {}).items()}
