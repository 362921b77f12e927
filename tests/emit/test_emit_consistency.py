"""Per-character consistency in scores.json and the one line the storyboard and PDF show."""

from __future__ import annotations

import json
from dataclasses import replace

from _emit_fixtures import make_result

from kolorsc.emit import scores_json
from kolorsc.emit.common import consistency_line
from kolorsc.results import CharacterScore


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
