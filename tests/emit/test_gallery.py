"""The HTML gallery: per-story pages and the collection index, checked in a real browser
(Debian's headless Chromium over the DevTools protocol) on a phone-sized and a desktop
viewport: no console error, every image decodes, every link resolves, nothing wider than
the screen, and screenshots that show a drawn page."""

from __future__ import annotations

import os

import pytest

from kolorsc import api
from kolorsc.emit.gallery import (
    INDEX,
    STORY_PAGE,
    THUMB,
    failed_entry,
    gallery_entry,
    index_html,
    story_page_html,
    write_gallery,
)

from _browser_fixtures import Browser, png_ok, require_chromium
from _build_fixtures import CountingEngine, make_project
from _emit_fixtures import make_result

EXAMPLES = ("classroom-dream", "hero-dragon", "idol-diary")


@pytest.fixture(scope="module")
def collection(tmp_path_factory):
    """A preview build of the three examples plus a broken story: the build writes the story
    pages and the index itself. (out folder, the entries the index shows)."""
    base = tmp_path_factory.mktemp("gallery")
    project = make_project(base / "project", EXAMPLES)
    (project / "stories" / "broken.yaml").write_text("kolorsc: 1\nid: broken\n", "utf-8")
    summary = api.build([project / "stories"], engine=CountingEngine(), cache_dir=base / "cache")
    out = project / "build"
    entries = []
    for outcome in summary.outcomes:
        if outcome.report is not None and outcome.report.result is not None:
            result = outcome.report.result
            assert (out / result.story.id / STORY_PAGE).read_bytes() == story_page_html(result, collection=True)
            entries.append(gallery_entry(result, result.story.id, outcome.status))
        else:
            sid = outcome.story_id or outcome.path.stem
            entries.append(failed_entry(sid, None, sid, outcome.status, outcome.error))
    before = (out / INDEX).read_bytes()
    write_gallery(out, entries)  # what the build wrote is what these entries give
    assert (out / INDEX).read_bytes() == before
    return out, entries


def test_index_and_story_pages_in_a_browser(collection, tmp_path):
    require_chromium()
    out, _ = collection
    index = out / INDEX
    with Browser(tmp_path) as browser:
        phone = browser.open(index, width=390, screenshot=tmp_path / "index-phone.png")
        desktop = browser.open(index, width=1280, height=900, mobile=False, screenshot=tmp_path / "index-desktop.png")
        pages = [browser.open(out / sid / STORY_PAGE, width=390, screenshot=tmp_path / f"{sid}-phone.png")
                 for sid in EXAMPLES]
    for report in (phone, desktop, *pages):
        assert report.problems() == [], report.url
    assert len(phone.images) == 3  # a storyboard thumbnail per built story
    linked = {os.path.relpath(href[len("file://"):], out) for href in phone.links}
    for sid in EXAMPLES:
        assert {f"{sid}/{STORY_PAGE}", f"{sid}/storyboard.png", f"{sid}/storyboard.pdf", f"{sid}/scores.json",
                f"{sid}/kolorsc-%E5%8F%AF%E5%9B%BEKolors%E8%AE%AD%E7%BB%83-{sid}.zip"} <= linked or \
            {f"{sid}/{STORY_PAGE}", f"{sid}/storyboard.png"} <= linked
    assert not any(link.startswith("broken/") for link in linked)  # the failed story links nothing
    for page in pages:
        assert len(page.images) == 9  # the storyboard and eight panels
        assert any(href.endswith(f"/{INDEX}") and "/build/index.html" in href for href in page.links)
    assert png_ok(tmp_path / "index-phone.png", 390) and png_ok(tmp_path / "index-desktop.png", 1280)
    assert all(png_ok(tmp_path / f"{sid}-phone.png", 390) for sid in EXAMPLES)


def test_index_content(collection):
    out, _ = collection
    html = (out / INDEX).read_text("utf-8")
    assert "3 preview" in html and "1 invalid" in html and "4 stories" in html
    assert "broken" in html and "INVALID" in html
    assert html.count(f'/{THUMB}"') == 3
    assert "<script" not in html and "http://" not in html and "https://" not in html
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in html


def test_links_only_to_files_that_exist(collection, tmp_path):
    out, entries = collection
    entry = next(e for e in entries if e.id == "hero-dragon")
    (out / "hero-dragon" / "storyboard.pdf").rename(tmp_path / "moved.pdf")
    try:
        write_gallery(out, entries)
        html = (out / INDEX).read_text("utf-8")
        assert 'href="hero-dragon/storyboard.pdf"' not in html and 'href="idol-diary/storyboard.pdf"' in html
    finally:
        (tmp_path / "moved.pdf").rename(out / "hero-dragon" / "storyboard.pdf")
        write_gallery(out, entries)
    assert entry.pdf == "storyboard.pdf"  # the entries themselves are not changed


def test_deterministic_and_written_only_when_changed(collection):
    out, entries = collection
    index = out / INDEX
    before, mtime = index.read_bytes(), index.stat().st_mtime_ns
    write_gallery(out, entries)
    assert index.read_bytes() == before and index.stat().st_mtime_ns == mtime
    thumb = out / "classroom-dream" / THUMB
    thumb_bytes = thumb.read_bytes()
    os.utime(out / "classroom-dream" / "storyboard.png", ns=(thumb.stat().st_mtime_ns + 10**9,) * 2)
    write_gallery(out, entries)  # the storyboard is newer: the thumbnail is made again, same bytes
    assert thumb.stat().st_mtime_ns > mtime and thumb.read_bytes() == thumb_bytes
    assert index_html(entries) == index_html(entries)


def test_story_page_shows_prompts_seeds_and_scores(tmp_path):
    result = make_result(tmp_path, aesthetic=[6.5, 6.1, 6.0, 5.9, 6.3, 6.2, 6.4, 6.6])
    html = story_page_html(result).decode("utf-8")
    assert "PASS" in html and "PASS</span> mean aesthetic 6.250 ≥ 6</p>" in html
    assert html.count('<article class="card"') == 8
    assert 'src="panels/01.png"' in html and 'href="storyboard.pdf"' in html
    assert "水彩画风格，黑色长发的女孩，清晨，女孩在窗边醒来" in html  # the compiled prompt
    assert "<dt>seed</dt><dd>7</dd>" in html and "<dt>aesthetic</dt><dd>6.500</dd>" in html
    assert "<summary>candidates</summary>" in html and "✓ 7" in html  # best of 2, chosen marked
    bundle = "%E6%98%9F%E6%B2%B3%E9%98%9F-%E5%8F%AF%E5%9B%BEKolors%E8%AE%AD%E7%BB%83-rainy-day.zip"
    assert f'href="{bundle}"' in html
    assert "../index.html" not in html and "../index.html" in story_page_html(result, collection=True).decode()
    preview = story_page_html(make_result(tmp_path, preview=True)).decode("utf-8")
    assert "PREVIEW" in preview and "not computed" in preview
