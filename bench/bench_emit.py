"""Benchmark of the emit stage on realistic panels: eight 1024x1024 photographic-like PNGs.

Run by hand: python bench/bench_emit.py  (prints seconds and output sizes; not a test)
"""

from __future__ import annotations

import io
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from _emit_fixtures import make_result  # noqa: E402

from kolorsc.emit import bundle_zip, panel_png, scores_json, storyboard_pdf, storyboard_png  # noqa: E402


def photo_like(i: int) -> bytes:
    """Smooth gradients plus noise: compresses like a rendered image, unlike flat test colours."""
    from PIL import Image, ImageFilter

    noise = Image.effect_noise((1024, 1024), 40 + i).convert("RGB")
    grad = Image.linear_gradient("L").resize((1024, 1024)).convert("RGB")
    image = Image.blend(grad, noise, 0.35).filter(ImageFilter.GaussianBlur(1))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def timed(label: str, fn):
    start = time.perf_counter()
    value = fn()
    size = f", {len(value) / 1e6:.2f} MB" if isinstance(value, bytes) else ""
    print(f"{label:<28} {time.perf_counter() - start:6.2f} s{size}")
    return value


def main() -> None:
    raw = [photo_like(i) for i in range(8)]
    with tempfile.TemporaryDirectory() as tmp:
        result = make_result(Path(tmp), aesthetic=[6.4] * 8)
        timed("font load (first pil_font)", lambda: __import__("kolorsc.fonts").fonts.pil_font(20))
        pngs = timed("panel_png x8", lambda: [panel_png(r, pr, result) for r, pr in zip(raw, result.panels)])
        print(f"{'':<28} panels {sum(map(len, pngs)) / 1e6:.2f} MB total")
        timed("storyboard_png", lambda: storyboard_png(result, pngs))
        timed("storyboard_pdf", lambda: storyboard_pdf(result, pngs))
        timed("scores_json", lambda: scores_json(result))
        timed("bundle_zip", lambda: bundle_zip(result, pngs, result.lora.path))


if __name__ == "__main__":
    main()
