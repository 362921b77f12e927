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


def test_background_follows_the_seed_and_text_follows_the_prompt():
    a, b = draw(seed=3), draw(seed=4)
    centre = (256, 300)
    assert a.getpixel(centre) != b.getpixel(centre) or a.getpixel((500, 300)) != b.getpixel((500, 300))
    other_prompt = draw(dataclasses.replace(PANEL, prompt="王子骑马而来"))
    assert encode_png(other_prompt) != encode_png(draw())


def test_the_caption_is_not_drawn():
    """The caption is not a render input (editing it re-renders nothing), so a draft that drew
    it would show a stale caption; the storyboard and PDF print it under the panel instead."""
    assert encode_png(draw(dataclasses.replace(PANEL, caption="王子骑马而来"))) == encode_png(draw())


def test_one_preview_band_at_the_top():
    image = draw().convert("RGB")
    w, h = image.size
    mark = (200, 30, 40)
    assert image.getpixel((w - 2, 2)) == mark  # the band's background at the right edge
    rows = [y for y in range(h) if image.getpixel((w - 2, y)) == mark]
    assert rows == list(range(rows[0], rows[0] + len(rows))) and rows[0] == 0  # one band, at the top
    assert image.getpixel((w - 2, h - 2)) != mark


def test_cjk_emoji_and_extension_b_prompts_draw_glyphs_not_boxes():
    """Different prompts must give different ink: boxes would all look alike."""
    def prompt_region(text):
        img = draw(dataclasses.replace(PANEL, prompt=text)).convert("L")
        return img.crop((0, 60, 512, 100))  # the first prompt line

    a, b, c = prompt_region("女主正在上课"), prompt_region("王子骑马而来"), prompt_region("小狐狸🦊在𠮷野家")
    tofu = prompt_region("小狐狸\U000f0000在\U000f0001野家")
    assert len({x.tobytes() for x in (a, b, c, tofu)}) == 4
    assert Image.eval(a, lambda v: 255 if v < 80 else 0).getbbox() is not None  # dark ink drawn


def test_identity_names_the_fonts_and_the_code():
    from kolorsc import fonts
    from kolorsc.codeid import code_identity

    identity = PreviewEngine().identity()
    assert identity["fonts"] == fonts.identity() and identity["code"] == code_identity("kolorsc.engines.preview")
