"""`kolorsc diff --html`: the side-by-side page in a real browser (headless Chromium): it loads
with no console error, every image (old and new panel) decodes, every link resolves, it fits
a phone's width, and the folder stands alone (images copied out of the cache)."""

from __future__ import annotations

import shutil

import pytest

from kolorsc.review.diff import diff
from kolorsc.review.html import write_html

from _browser_fixtures import Browser, png_ok, require_chromium
from _build_fixtures import CountingEngine
from _review_fixtures import build, copy_collection, edit, make_collection


@pytest.fixture
def changed(tmp_path):
    """A collection with one scene changed and rendered, and one story added (a copy)."""
    make_collection(tmp_path / "base")
    repo, cache = copy_collection(tmp_path / "base", tmp_path)
    story = repo / "stories" / "classroom-dream.yaml"
    edit(story, "站在路边", "站在河边")
    build(repo, cache, "classroom-dream")
    text = (repo / "stories" / "hero-dragon.yaml").read_text("utf-8").replace("id: hero-dragon", "id: hero-2")
    (repo / "stories" / "hero-2.yaml").write_text(text, "utf-8")
    return repo, cache


def test_side_by_side_page_in_a_browser(changed, tmp_path):
    require_chromium()
    repo, cache = changed
    report = diff(cwd=repo, cache_dir=cache, engine=CountingEngine())
    out = tmp_path / "review"
    page = write_html(report, out)
    html = page.read_text("utf-8")
    assert "<del>站在路边</del><ins>站在河边</ins>" in html
    assert "http://" not in html and "https://" not in html and "<script" not in html
    shutil.rmtree(cache)  # the page must not need the cache any more (an artifact has none)
    with Browser(tmp_path) as browser:
        phone = browser.open(page, width=390, screenshot=tmp_path / "diff-phone.png")
        desktop = browser.open(page, width=1280, height=900, mobile=False, screenshot=tmp_path / "diff-desktop.png")
    for r in (phone, desktop):
        assert r.problems() == []
        # panel 03 before | after, and the added story's 8 panels: it is hero-dragon under
        # another id, and the id is not a render input, so its renders are in the cache
        assert len(r.images) == 10
    assert png_ok(tmp_path / "diff-phone.png", 390) and png_ok(tmp_path / "diff-desktop.png", 1280)


def test_page_bytes_are_deterministic(changed, tmp_path):
    repo, cache = changed
    report = diff(cwd=repo, cache_dir=cache, engine=CountingEngine())
    a = write_html(report, tmp_path / "a").read_bytes()
    b = write_html(diff(cwd=repo, cache_dir=cache, engine=CountingEngine()), tmp_path / "b").read_bytes()
    assert a == b
    assert sorted(p.name for p in (tmp_path / "a" / "img").iterdir()) == sorted(p.name for p in (tmp_path / "b" / "img").iterdir())
