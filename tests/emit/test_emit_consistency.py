"""Per-character consistency in scores.json and the one line the storyboard and PDF show."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import replace

import pytest
from _emit_fixtures import make_result

from kolorsc.emit import scores_json
from kolorsc.emit.common import consistency_line
from kolorsc.errors import BuildError
from kolorsc.results import CharacterScore

needs_poppler = pytest.mark.skipif(
    shutil.which("pdftotext") is None and not os.environ.get("CI"), reason="poppler-utils not installed"
)


def with_characters(tmp_path):
    result = make_result(tmp_path, aesthetic=[6.5] * 8)
    chars = (CharacterScore("girl", (1, 2, 3), 0.9123, 0.8, 0.8501), CharacterScore("cat", (4,), None, None, None))
    chosen = replace(result.panels[0].chosen, consistency=0.77)
    panels = (replace(result.panels[0], chosen=chosen, candidates=(chosen, *result.panels[0].candidates[1:])), *result.panels[1:])
    return replace(result, panels=panels, scores=replace(result.scores, characters=chars))


def test_scores_json_has_characters_and_candidate_consistency(tmp_path):
    data = json.loads(scores_json(with_characters(tmp_path)))
    assert data["characters"] == [
        {"character": "girl", "panels": [1, 2, 3], "mean": 0.9123, "min": 0.8, "reference": 0.8501},
        {"character": "cat", "panels": [4], "mean": None, "min": None, "reference": None},
    ]
    assert data["panels"][0]["consistency"] == 0.77 and data["panels"][0]["candidates"][0]["consistency"] == 0.77
    assert data["panels"][1]["consistency"] is None
    plain = json.loads(scores_json(make_result(tmp_path, aesthetic=[6.5] * 8)))
    assert plain["characters"] == []


def test_consistency_line(tmp_path):
    assert consistency_line(with_characters(tmp_path)) == "consistency: girl 0.912 (reference 0.850) · cat (1 panel)"
    assert consistency_line(make_result(tmp_path, aesthetic=[6.5] * 8)) is None


# -- the cast (character sheets) and the consistency line on the storyboard and the PDF ---------


def with_sheets(tmp_path, colours=((30, 160, 60), (40, 60, 200))):
    """`with_characters` plus two character sheets (solid squares) and their PNG bytes."""
    import io

    from PIL import Image

    from kolorsc.results import CharacterSheet

    result = with_characters(tmp_path)
    pngs = []
    for colour in colours:
        out = io.BytesIO()
        Image.new("RGB", (64, 64), colour).save(out, format="PNG")
        pngs.append(out.getvalue())
    sheets = tuple(CharacterSheet(key, name, 1, None, str(i) * 64) for i, (key, name) in
                   enumerate((("girl", "少女"), ("cat", "小猫"))))
    return replace(result, sheets=sheets), pngs


def test_storyboard_shows_the_cast_and_the_consistency_line(tmp_path):
    import io

    from _emit_fixtures import images
    from PIL import Image

    from kolorsc.emit import storyboard_png
    from kolorsc.emit.storyboard import Layout, board_layout

    result, sheets = with_sheets(tmp_path)
    board = Image.open(io.BytesIO(storyboard_png(result, images(), sheets))).convert("RGB")
    geo, L = board_layout(result), Layout()
    assert geo.cast_h > 0 and geo.consistency == ("consistency: girl 0.912 (reference 0.850) · cat (1 panel)",)
    for i, colour in enumerate(((30, 160, 60), (40, 60, 200))):  # each sheet in its square of the cast row
        x = L.margin + i * (geo.cast_size + L.gap) + geo.cast_size // 2
        assert board.getpixel((x, geo.cast_top + geo.cast_size // 2)) == colour
    # the panels move down by the cast row, the footer gets one more line
    plain = replace(result, sheets=(), scores=replace(result.scores, characters=()))
    bare = board_layout(plain)
    assert geo.grid_top == bare.grid_top + geo.cast_h and geo.height == bare.height + geo.cast_h + int(L.footer_size * 1.5)
    lh = int(L.footer_size * 1.5)  # the line under the gate line (team line, gate line, then this one)
    line = (0, geo.footer_top + 2 * lh, geo.width, geo.footer_top + 3 * lh)
    assert min(board.crop(line).convert("L").getdata()) < 80
    without = Image.open(io.BytesIO(storyboard_png(plain, images()))).convert("L")
    assert min(without.crop((0, bare.footer_top + 2 * lh, bare.width, bare.footer_top + 3 * lh)).getdata()) == 255
    with pytest.raises(BuildError):
        storyboard_png(result, images(), sheets[:1])


@needs_poppler
def test_pdf_cover_shows_the_cast_and_the_consistency_line(tmp_path):
    import subprocess

    from _emit_fixtures import images

    from kolorsc.emit import storyboard_pdf

    result, sheets = with_sheets(tmp_path)
    pdf = storyboard_pdf(result, images(), sheets)
    cover = subprocess.run(["pdftotext", "-l", "1", "-", "-"], input=pdf, capture_output=True, check=True).stdout.decode()
    assert "consistency: girl 0.912 (reference 0.850)" in cover and "少女" in cover and "小猫" in cover
    under = cover.index("consistency:") > cover.index("mean aesthetic")  # under the gate line
    assert under
    plain = storyboard_pdf(replace(result, sheets=(), scores=replace(result.scores, characters=())), images())
    text = subprocess.run(["pdftotext", "-l", "1", "-", "-"], input=plain, capture_output=True, check=True).stdout.decode()
    assert "consistency:" not in text and "少女" not in text
    with pytest.raises(BuildError):
        storyboard_pdf(result, images(), [])
