"""The preview engine: deterministic drafts of the panel's shape, marked as previews."""

from __future__ import annotations

import dataclasses

from PIL import Image

from kolorsc.engines import get_engine
from kolorsc.engines.base import RenderJob
from kolorsc.engines.preview import PREVIEW_LONG_SIDE, PreviewEngine, draft_size
from kolorsc.prompts import Panel
from kolorsc.build.stages.render import encode_png

PANEL = Panel(3, "女主正在上课", "古风，水墨画，一个黑色长发少女，红色长裙，坐在教室里，盯着黑板，深思",
              "丑陋，变形，嘈杂，模糊", seed=3, steps=50, cfg=4.0, width=1024, height=768)


def draw(panel=PANEL, seed=3, engine=None):
    engine = engine or PreviewEngine()
    [(job, image)] = list(engine.render([RenderJob(panel, seed)], None))
    return image


def test_registry_gives_the_preview_engine():
    engine = get_engine("preview")
    assert engine.preview and engine.identity()["name"] == "preview"


def test_draft_keeps_the_aspect_ratio_at_512_on_the_long_side():
    assert draw().size == (512, 384)
    tall = dataclasses.replace(PANEL, width=768, height=1344)
    assert draw(tall).size == draft_size(768, 1344, PREVIEW_LONG_SIDE) == (293, 512)


def test_same_job_gives_identical_png_bytes():
    assert encode_png(draw()) == encode_png(draw(engine=PreviewEngine()))


def test_background_follows_the_seed_and_text_follows_the_panel():
    a, b = draw(seed=3), draw(seed=4)
    centre = (256, 300)
    assert a.getpixel(centre) != b.getpixel(centre) or a.getpixel((500, 300)) != b.getpixel((500, 300))
    other_caption = draw(dataclasses.replace(PANEL, caption="王子骑马而来"))
    assert encode_png(other_caption) != encode_png(draw())


def test_preview_mark_bands_top_and_bottom():
    image = draw().convert("RGB")
    w, h = image.size
    # the red band carries white text; its background is pure mark red at the right edge
    assert image.getpixel((w - 2, 2)) == (200, 30, 40)
    assert image.getpixel((w - 2, h - 2)) == (200, 30, 40)


def test_cjk_caption_draws_glyphs_not_empty_boxes():
    """Different Chinese captions must give different ink: tofu boxes would all look alike."""
    def caption_region(text):
        img = draw(dataclasses.replace(PANEL, caption=text)).convert("L")
        return img.crop((0, 60, 512, 110))

    a, b = caption_region("女主正在上课"), caption_region("王子骑马而来")
    assert list(a.getdata()) != list(b.getdata())
    assert Image.eval(a, lambda v: 255 if v < 80 else 0).getbbox() is not None  # dark ink drawn
