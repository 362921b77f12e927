"""Best of N, the gate, coherence and the folder rules: plain data, no model."""

from __future__ import annotations

import math

import pytest
from PIL import Image

from kolorsc.errors import UsageError
from kolorsc.results import Scores
from kolorsc.scoring import (
    TIE_MARGIN,
    CandidateScore,
    ImageScore,
    candidate_coherence,
    coherence,
    gate,
    select_best,
    summarize,
)
from kolorsc.scoring.folder import read_prompts, scan_folder

# unit vectors: "others" look like X; A is X, B is halfway, C is orthogonal
X = [1.0, 0.0, 0.0]
HALF = [math.sqrt(0.5), math.sqrt(0.5), 0.0]
Y = [0.0, 1.0, 0.0]
OTHERS = [X, [0.9, 0.1, 0.0]]


def test_highest_aesthetic_wins_when_no_tie():
    cands = [
        CandidateScore(seed=1, aesthetic=6.10, embedding=X),
        CandidateScore(seed=2, aesthetic=6.40, embedding=Y),  # least coherent, but clearly best
        CandidateScore(seed=3, aesthetic=6.30, embedding=X),
    ]
    assert select_best(cands, OTHERS) == 1


def test_ties_within_the_margin_go_to_coherence():
    cands = [
        CandidateScore(seed=1, aesthetic=6.40, embedding=Y),
        CandidateScore(seed=2, aesthetic=6.40 - TIE_MARGIN, embedding=X),  # tie at the edge: inclusive
        CandidateScore(seed=3, aesthetic=6.38, embedding=HALF),
    ]
    assert select_best(cands, OTHERS) == 1
    # just outside the margin it is no longer a tie
    cands[1] = CandidateScore(seed=2, aesthetic=6.40 - TIE_MARGIN - 0.001, embedding=X)
    assert select_best(cands, OTHERS) == 2


def test_tie_without_others_goes_to_aesthetic_then_order():
    cands = [
        CandidateScore(seed=1, aesthetic=6.30, embedding=X),
        CandidateScore(seed=2, aesthetic=6.32, embedding=Y),
        CandidateScore(seed=3, aesthetic=6.32, embedding=HALF),
    ]
    assert select_best(cands, None) == 1
    assert select_best(cands, []) == 1


def test_equal_coherence_falls_back_to_aesthetic():
    cands = [CandidateScore(1, 6.30, X), CandidateScore(2, 6.33, X)]
    assert select_best(cands, OTHERS) == 1


def test_without_scores_the_first_candidate_is_kept():
    cands = [CandidateScore(7, None, None), CandidateScore(8, None, None)]
    assert select_best(cands, OTHERS) == 0
    # a candidate with a score beats unscored ones
    assert select_best([CandidateScore(7, None), CandidateScore(8, 3.0)], None) == 1
    with pytest.raises(ValueError):
        select_best([], None)


def test_candidate_coherence_is_the_mean_similarity_to_the_others():
    c = CandidateScore(1, 6.0, HALF)
    expected = (math.sqrt(0.5) + (0.9 * math.sqrt(0.5) + 0.1 * math.sqrt(0.5)) / math.hypot(0.9, 0.1)) / 2
    assert candidate_coherence(c, OTHERS) == pytest.approx(expected)
    assert candidate_coherence(CandidateScore(1, 6.0), OTHERS) is None
    assert candidate_coherence(c, None) is None


@pytest.mark.parametrize(
    "mean, threshold, expected",
    [(5.999, 6.0, "FAIL"), (6.0, 6.0, "PASS"), (6.5, 6.0, "PASS"), (6.4, 6.5, "FAIL"), (None, 6.0, "UNKNOWN")],
)
def test_gate_flips_at_the_threshold(mean, threshold, expected):
    assert gate(mean, threshold) == expected
    assert Scores(aesthetic_mean=mean, threshold=threshold).gate == expected


def test_coherence_mean_min_and_outlier():
    emb = [X, [0.95, 0.05, 0.0], [0.9, 0.1, 0.0], Y]
    c = coherence(emb)
    assert c.outlier_panel == 4
    assert len(c.matrix) == 4 and all(c.matrix[i][i] == 1.0 for i in range(4))
    assert c.min == pytest.approx(0.0)  # X vs Y
    off = [c.matrix[i][j] for i in range(4) for j in range(4) if i < j]
    assert c.mean == pytest.approx(sum(off) / 6)
    assert c.matrix[0][1] == c.matrix[1][0]


def test_coherence_of_identical_panels_is_one_and_of_one_panel_is_none():
    c = coherence([HALF] * 3)
    assert c.mean == pytest.approx(1.0) and c.min == pytest.approx(1.0)
    single = coherence([X])
    assert (single.mean, single.min, single.outlier_panel) == (None, None, None)


def test_coherence_accepts_numpy_and_torch():
    np = pytest.importorskip("numpy")
    emb = [X, HALF, Y]
    assert coherence(np.asarray(emb)) == coherence(emb)
    torch = pytest.importorskip("torch")
    assert coherence(torch.tensor(emb, dtype=torch.float64)) == coherence(emb)


def test_summarize_and_scores_record():
    imgs = [ImageScore(5.5, tuple(X), 0.2), ImageScore(6.5, tuple(HALF), 0.4), ImageScore(6.2, tuple(Y), 0.3)]
    rep = summarize(imgs, scorer={"aesthetic": {"model": "m"}})
    assert rep.aesthetic_mean == sum([5.5, 6.5, 6.2]) / 3
    assert rep.alignment_mean == pytest.approx(0.3)
    scores = rep.to_scores(threshold=6.0)
    assert scores.gate == "PASS" and scores.outlier_panel == rep.coherence.outlier_panel
    assert ImageScore.from_json(imgs[1].to_json()) == imgs[1]
    # one panel without alignment: no alignment mean is invented
    assert summarize(imgs[:2] + [ImageScore(6.0, tuple(Y), None)]).alignment_mean is None
    assert summarize([]).aesthetic_mean is None


def _png(path, color=(10, 20, 30)):
    Image.new("RGB", (8, 8), color).save(path)


def test_scan_folder_finds_images_and_warns_about_other_files(tmp_path):
    for i in range(8):
        _png(tmp_path / f"{i + 1:02d}.png")
    (tmp_path / "sub").mkdir()  # subfolders are ignored, as the official script does
    _png(tmp_path / "sub" / "x.png")
    scan = scan_folder(tmp_path)
    assert [p.name for p in scan.images] == [f"{i + 1:02d}.png" for i in range(8)]
    assert scan.warnings == ()
    (tmp_path / "README.txt").write_text("notes")
    _png(tmp_path / "09.png")
    scan = scan_folder(tmp_path)
    assert [p.name for p in scan.not_images] == ["README.txt"]
    assert len(scan.images) == 9
    text = "\n".join(scan.warnings)
    assert "README.txt" in text and "9 images" in text


def test_scan_folder_rejects_a_missing_folder(tmp_path):
    with pytest.raises(UsageError):
        scan_folder(tmp_path / "nope")


def test_read_prompts_lines_and_json(tmp_path):
    imgs = (tmp_path / "a.png", tmp_path / "b.png")
    lines = tmp_path / "p.txt"
    lines.write_text("女孩\n\n王子\n", encoding="utf-8")
    assert read_prompts(lines, imgs) == ["女孩", "王子"]
    mapping = tmp_path / "p.json"
    mapping.write_text('{"b.png": "王子", "a.png": "女孩"}', encoding="utf-8")
    assert read_prompts(mapping, imgs) == ["女孩", "王子"]
    lines.write_text("only one\n", encoding="utf-8")
    with pytest.raises(UsageError, match="1 prompts for 2 images"):
        read_prompts(lines, imgs)
    mapping.write_text('{"a.png": "女孩"}', encoding="utf-8")
    with pytest.raises(UsageError, match="b.png"):
        read_prompts(mapping, imgs)
