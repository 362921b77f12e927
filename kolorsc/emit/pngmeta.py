"""Panel PNGs with their generation parameters in text chunks.

Keys a person or a tool can read: `prompt`, `negative`, `seed`, ... ; `parameters` in the
AUTOMATIC1111 layout that image browsers and civitai parse; `kolorsc` with the whole record
as JSON. Non-Latin-1 text (Chinese prompts) goes into iTXt chunks (UTF-8), the rest into
tEXt. No timestamps and no tIME chunk, so the bytes depend only on the inputs.
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


def panel_png(image_png: bytes, panel_result: PanelResult, result: StoryResult) -> bytes:
    """Re-encode `image_png` with the panel's parameters in text chunks. Deterministic bytes."""
    from PIL import Image, PngImagePlugin

    with Image.open(io.BytesIO(image_png)) as im:
        im.load()
        alpha = im.mode in ("RGBA", "LA") or "transparency" in im.info
        # Drop whatever chunks the engine wrote: only ours, in our order, go out.
        image = im.convert("RGBA" if alpha else "RGB")
    info = PngImagePlugin.PngInfo()
    for key, text in panel_chunks(panel_result, result):
        # add_text writes tEXt when the text is Latin-1, else an uncompressed iTXt (UTF-8).
        info.add_text(key, text)
    out = io.BytesIO()
    image.save(out, format="PNG", pnginfo=info, compress_level=6)
    return out.getvalue()


def read_png_text(data: bytes) -> dict[str, str]:
    """The text chunks of a PNG (tEXt, zTXt, iTXt) as a dict: for tests and `bundle verify`."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        im.load()
        return {k: str(v) for k, v in getattr(im, "text", {}).items()}
