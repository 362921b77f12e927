"""One story's outputs in one call: the same bytes as each emitter alone, each panel decoded
once, panel PNGs made without re-encoding their pixels."""

from __future__ import annotations

import io

import png
import pytest
from _emit_fixtures import images, make_png, make_result
from PIL import Image

from kolorsc.emit import (
    bundle_zip,
    emit_story,
    output_ids,
    panel_png,
    prepare_panels,
    prepared,
    read_png_text,
    scores_json,
    storyboard_pdf,
    storyboard_png,
)
from kolorsc.errors import BuildError


@pytest.fixture
def decodes(monkeypatch):
    """Count panel decodes (starting from an empty memo)."""
    calls = []
    real = prepared.decode_rgb
    monkeypatch.setattr(prepared, "_memo", type(prepared._memo)())
    monkeypatch.setattr(prepared, "decode_rgb", lambda data: calls.append(1) or real(data))
    return calls


def test_emit_story_gives_each_emitters_bytes(tmp_path):
    result = make_result(tmp_path, aesthetic=[6.3] * 8)
    raw = images()
    out = emit_story(result, raw, result.lora.path)
    assert sorted(out) == sorted(output_ids(result))
    pngs = [panel_png(r, pr, result) for r, pr in zip(raw, result.panels)]
    assert [out[f"panel/{i:02d}"] for i in range(1, 9)] == pngs
    assert out["storyboard"] == storyboard_png(result, raw)
    assert out["pdf"] == storyboard_pdf(result, raw)
    assert out["scores"] == scores_json(result)
    assert out["bundle"] == bundle_zip(result, pngs, result.lora.path)


def test_emit_story_makes_only_what_is_wanted(tmp_path):
    result = make_result(tmp_path)
    out = emit_story(result, images(), result.lora.path, want={"pdf", "panel/03"})
    assert sorted(out) == ["panel/03", "pdf"]
    with pytest.raises(BuildError, match="no such output: panel/09"):
        emit_story(result, images(), None, want={"panel/09"})
    with pytest.raises(BuildError, match="7 images for 8 panels"):
        emit_story(result, images()[:7], None)


def test_a_story_decodes_each_panel_once(tmp_path, decodes):
    result = make_result(tmp_path)
    emit_story(result, images(), result.lora.path)
    assert len(decodes) == 8  # storyboard and PDF share them; panel PNGs need no decode
    panels = prepare_panels([make_png(i, (97, 61)) for i in range(1, 9)])
    storyboard_png(result, panels)
    storyboard_pdf(result, panels)
    assert len(decodes) == 16  # a prepared value is decoded once, whoever uses it


def test_separate_calls_share_decodes_through_the_memo(tmp_path, decodes):
    result = make_result(tmp_path)
    storyboard_png(result, images())
    storyboard_pdf(result, images())  # the same bytes: found by their sha256
    assert len(decodes) == 8
    for i in range(prepared.MEMO_PANELS + 1):  # the memo stays bounded
        prepared.prepare_panel(make_png(i, (20 + i, 20)))
    assert len(prepared._memo) == prepared.MEMO_PANELS


def test_derived_images_are_made_once_and_never_enlarged():
    panel = prepared.prepare_panel(make_png(2, (300, 200)))
    assert panel.fitted((150, 150)) is panel.fitted((150, 150))
    assert panel.fitted((150, 150)).size == (150, 100)
    assert panel.jpeg() is panel.jpeg()
    assert Image.open(io.BytesIO(panel.jpeg())).size == (300, 200)  # smaller than PDF_IMAGE_PX: kept


def test_a_thumbnail_does_not_depend_on_what_was_made_before():
    """Small thumbnails are resampled from the PDF-size image; the result must be the same
    whether the PDF's image was made first or not."""
    png = make_png(3, (1024, 640))
    first = prepared.PreparedPanel(png, prepared.decode_rgb(png))
    thumb = first.fitted((300, 300)).tobytes()
    second = prepared.PreparedPanel(png, prepared.decode_rgb(png))
    second.jpeg()
    assert second.fitted((300, 300)).tobytes() == thumb
    assert first.fitted((300, 300)).size == (300, 188)


def _chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    return list(png.Reader(bytes=data).chunks())


def test_panel_png_copies_the_image_data(tmp_path):
    result = make_result(tmp_path)
    raw = make_png(4, (300, 200))
    out = panel_png(raw, result.panels[3], result)
    idat = lambda data: [d for t, d in _chunks(data) if t == b"IDAT"]  # noqa: E731
    assert idat(out) == idat(raw)  # not re-encoded
    names = [t for t, _ in _chunks(out)]
    assert names[0] == b"IHDR" and names[-1] == b"IEND" and b"iTXt" in names and b"tEXt" in names
    assert read_png_text(out)["seed"] == str(result.panels[3].seed)


@pytest.mark.parametrize("mode", ["P", "I;16", "LA"])
def test_other_pngs_are_re_encoded_with_the_same_pixels(tmp_path, mode):
    result = make_result(tmp_path)
    source = Image.open(io.BytesIO(make_png(5, (64, 48))))
    if mode == "P":
        source = source.convert("P")
    elif mode == "I;16":
        source = source.convert("I;16")
    else:
        source = source.convert("LA")
    raw = io.BytesIO()
    source.save(raw, format="PNG")
    out = Image.open(io.BytesIO(panel_png(raw.getvalue(), result.panels[0], result)))
    want = "RGBA" if mode == "LA" else "RGB"
    assert out.mode == want
    assert out.tobytes() == source.convert(want).tobytes()
    assert out.text["seed"] == str(result.panels[0].seed)
