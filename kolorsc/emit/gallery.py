"""The HTML gallery of a build: one page per story and an index for the collection.

    story_page_html(result, collection=False) -> bytes   build/<id>/index.html: storyboard,
                                                          panels with prompts, seeds, scores,
                                                          links to the PDF, bundle, scores.json
    storyboard_thumbnail(png) -> bytes                    a small JPEG for the index
    index_html(entries, thumbs) -> bytes                  build/index.html
    write_gallery(out_root, entries) -> Path              what the build calls after a collection:
                                                          thumbnails made when stale, links only
                                                          to files that exist, index written
                                                          atomically and only when it changed

`GalleryEntry` is plain data the build core fills from each story's outcome (`gallery_entry`
for a built story, `failed_entry` for one that failed or is invalid). Pages follow
htmlpage.py: static, offline, phone-first, deterministic bytes. Only `write_gallery` touches
the disk (it reads what the build wrote and writes the index and thumbnails beside it).
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from kolorsc.atomic import atomic_write_bytes
from kolorsc.emit.common import NOT_COMPUTED, engine_label, fmt_score, image_name
from kolorsc.emit.htmlpage import esc, href, img, link_list, page, png_size
from kolorsc.results import Candidate, PanelResult, StoryResult

STORY_PAGE = "index.html"  # inside build/<id>/
INDEX = "index.html"  # inside the build folder
STORYBOARD, PDF, SCORES = "storyboard.png", "storyboard.pdf", "scores.json"
THUMB = "storyboard-thumb.jpg"
THUMB_WIDTH = 640  # px: sharp on a phone, ~50-100 KB
PREVIEW_NOTE = "PREVIEW — drafts, not a submission 预览稿，不可提交"


@dataclass(frozen=True)
class GalleryEntry:
    """One story of the collection index. File names are relative to `folder`, which is
    relative to the build folder; a file that does not exist is not linked."""

    id: str
    title: str
    folder: str
    status: str = "built"  # built, up-to-date, failed, invalid
    gate: str | None = None  # PASS, FAIL, UNKNOWN; None without a result
    mean: float | None = None  # mean aesthetic score of the chosen panels
    threshold: float | None = None
    preview: bool = False
    storyboard: str | None = STORYBOARD
    pdf: str | None = PDF
    bundle: str | None = None
    page: str | None = STORY_PAGE
    scores: str | None = SCORES
    error: str | None = None


def gallery_entry(result: StoryResult, folder: str, status: str = "built") -> GalleryEntry:
    s = result.scores
    return GalleryEntry(
        id=result.story.id, title=result.story.title, folder=folder, status=status, gate=s.gate,
        mean=s.aesthetic_mean, threshold=s.threshold, preview=result.preview,
        bundle=f"{result.story.bundle_name}.zip",
    )


def failed_entry(story_id: str, title: str | None, folder: str, status: str, error: str | None) -> GalleryEntry:
    """A story that did not build: shown with its error; older outputs are not linked."""
    return GalleryEntry(id=story_id, title=title or story_id, folder=folder, status=status, error=error,
                        storyboard=None, pdf=None, page=None, scores=None)


# -- the story page ------------------------------------------------------------------------


def _gate_badge(gate: str | None, preview: bool) -> str:
    if preview:
        return '<span class="badge preview">PREVIEW</span>'
    return f'<span class="badge {esc(gate)}">{esc(gate)}</span>' if gate else ""


def _candidates_table(pr: PanelResult) -> str:
    if len(pr.candidates) <= 1:
        return ""
    rows = "".join(
        f"<tr><td>{'✓ ' if c.seed == pr.chosen.seed else ''}{c.seed}</td><td>{esc(fmt_score(c.aesthetic))}</td>"
        f"<td>{esc(fmt_score(c.coherence))}</td><td>{esc(fmt_score(c.alignment))}</td></tr>"
        for c in pr.candidates
    )
    return ("<details><summary>candidates</summary><table><tr><th>seed</th><th>aesthetic</th>"
            f"<th>coherence</th><th>alignment</th></tr>{rows}</table></details>")


def _scores_dl(c: Candidate) -> str:
    items = [("aesthetic", c.aesthetic), ("coherence", c.coherence), ("alignment", c.alignment)]
    return "".join(f"<dt>{name}</dt><dd>{esc(fmt_score(v))}</dd>" for name, v in items if v is not None)


def _panel_card(pr: PanelResult) -> str:
    p = pr.panel
    name = image_name(p.index)
    size = f"{p.width}×{p.height}" + (f", refine ×{p.refine.scale:g}" if p.refine else "")
    return (
        f'<article class="card" id="panel-{p.index:02d}">\n'
        f'<a href="{href("panels", name)}">{img(href("panels", name), f"{p.index:02d} {p.caption}", p.width, p.height)}</a>\n'
        f"<h3>{p.index:02d} {esc(p.caption)}</h3>\n"
        f"<dl><dt>seed</dt><dd>{pr.chosen.seed}</dd><dt>steps · cfg</dt><dd>{p.steps} · {p.cfg:g}</dd>"
        f"<dt>size</dt><dd>{esc(size)}</dd>{_scores_dl(pr.chosen)}</dl>\n"
        f'<p class="prompt">{esc(p.prompt)}</p>\n'
        f"<details><summary>negative</summary><p>{esc(p.negative)}</p></details>\n"
        f"{_candidates_table(pr)}</article>\n"
    )


def story_page_html(result: StoryResult, collection: bool = False) -> bytes:
    """build/<id>/index.html. `collection`: link back to ../index.html (write it then)."""
    story, s = result.story, result.scores
    links = [("storyboard PNG", STORYBOARD), ("PDF", PDF), ("bundle", href(f"{story.bundle_name}.zip")),
             ("scores.json", SCORES)]
    if collection:
        links.insert(0, ("← collection", f"../{INDEX}"))
    score = _score_text(gallery_entry(result, story.id))
    if s.aesthetic_mean is None and s.note:
        score = f"mean aesthetic {s.note}"  # e.g. "not computed: run `kolorsc models pull aesthetic`"
    extra = []
    if s.coherence_mean is not None:
        extra.append(f"coherence {s.coherence_mean:.3f} (min {fmt_score(s.coherence_min)})")
    if s.alignment_mean is not None:
        extra.append(f"alignment {s.alignment_mean:.3f}")
    body = [
        f"<header>\n<h1>{esc(story.title)}</h1>\n",
        (f'<p class="muted">{esc(story.id)} · team {esc(story.team)} · style {esc(story.style.name)} · '
         f"engine {esc(engine_label(result))}</p>\n"),
        f"<p>{_gate_badge(s.gate, result.preview)} {esc(score)}</p>\n",
        f'<p class="muted">{esc(" · ".join(extra))}</p>\n' if extra else "",
        f'<p class="banner">{esc(PREVIEW_NOTE)}</p>\n' if result.preview else "",
        f"<p>{esc(story.description)}</p>\n" if story.description else "",
        link_list(links),
        "</header>\n<section>\n<h2>storyboard</h2>\n",
        f'<a href="{STORYBOARD}">{img(STORYBOARD, f"{story.title} storyboard", lazy=False)}</a>\n</section>\n',
        '<section>\n<h2>panels</h2>\n<div class="grid panels">\n',
        "".join(_panel_card(pr) for pr in result.panels),
        "</div>\n</section>\n",
    ]
    return page(f"{story.title} — kolorsc", "".join(body))


# -- the collection index ------------------------------------------------------------------


def storyboard_thumbnail(png: bytes, width: int = THUMB_WIDTH) -> bytes:
    """A JPEG of the storyboard `width` px wide (never enlarged): same input, same bytes."""
    from PIL import Image

    with Image.open(io.BytesIO(png)) as im:
        im.load()
        image = im.convert("RGB")
    if image.width > width:
        # reduce by whole factors first, then LANCZOS (Pillow's reducing_gap): ~30% faster,
        # no visible difference at this size
        image.thumbnail((width, image.height), Image.Resampling.LANCZOS, reducing_gap=3.0)
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=82, optimize=False, progressive=False)
    return out.getvalue()


def _score_text(e: GalleryEntry) -> str:
    if e.gate is None:
        return ""
    if e.mean is None:
        return f"mean aesthetic {NOT_COMPUTED}"
    op = "≥" if e.gate == "PASS" else "<"
    return f"mean aesthetic {e.mean:.3f} {op} {e.threshold:g}" if e.threshold is not None else f"mean aesthetic {e.mean:.3f}"


def _entry_card(e: GalleryEntry, thumb: tuple[str, int, int] | None) -> str:
    base = e.folder.strip("/")
    target = href(base, e.page) if e.page else (href(base, e.storyboard) if e.storyboard else None)
    title = f'<a href="{esc(target)}">{esc(e.title)}</a>' if target else esc(e.title)
    picture = ""
    if thumb is not None:
        name, w, h = thumb
        picture = img(href(base, name), f"{e.title} storyboard", w, h)
        picture = f'<a href="{esc(target)}">{picture}</a>\n' if target else picture + "\n"
    if e.status in ("failed", "invalid"):
        status = f'<p><span class="badge {esc(e.status)}">{esc(e.status.upper())}</span> {esc(e.error or "")}</p>\n'
    else:
        status = f"<p>{_gate_badge(e.gate, e.preview)} {esc(_score_text(e))}</p>\n"
    links = [(text, href(base, name)) for text, name in
             (("page", e.page), ("storyboard", e.storyboard), ("PDF", e.pdf), ("bundle", e.bundle), ("scores", e.scores))
             if name]
    return (f'<article class="card" id="{esc(e.id)}">\n{picture}<h2>{title}</h2>\n'
            f'<p class="muted">{esc(e.id)}</p>\n{status}{link_list(links)}</article>\n')


def _summary(entries: Sequence[GalleryEntry]) -> str:
    counts: dict[str, int] = {}
    for e in entries:
        key = e.status if e.status in ("failed", "invalid") else ("preview" if e.preview else (e.gate or "UNKNOWN"))
        counts[key] = counts.get(key, 0) + 1
    order = ("PASS", "FAIL", "UNKNOWN", "preview", "failed", "invalid")
    parts = [f"{counts[k]} {k}" for k in order if counts.get(k)]
    n = len(entries)
    return f"{n} stor{'y' if n == 1 else 'ies'}" + (f": {', '.join(parts)}" if parts else "")


def index_html(entries: Sequence[GalleryEntry], thumbs: dict[str, tuple[str, int, int]] | None = None,
               title: str = "kolorsc gallery") -> bytes:
    """build/index.html: a card per story in the order given. `thumbs`: entry id ->
    (file name in its folder, width, height) of the picture shown."""
    thumbs = thumbs or {}
    body = [f"<header>\n<h1>{esc(title)}</h1>\n<p class=\"muted\">{esc(_summary(entries))}</p>\n</header>\n",
            '<div class="grid">\n', "".join(_entry_card(e, thumbs.get(e.id)) for e in entries), "</div>\n"]
    return page(title, "".join(body))


def gallery_html(out_root: Path, entries: Sequence[GalleryEntry], title: str = "kolorsc gallery") -> bytes:
    """The bytes of out_root/index.html for `entries` (the build's stories, in collection
    order): links point only at files that exist; each storyboard is shown by its
    thumbnail, made beside it when missing or stale."""
    out_root = Path(out_root)
    present, thumbs = [], {}
    for e in entries:
        folder = out_root / e.folder
        e = _existing(e, folder)
        present.append(e)
        if e.storyboard:
            thumbs[e.id] = _thumbnail(folder / e.storyboard, folder / THUMB)
    return index_html(present, thumbs, title)


def write_gallery(out_root: Path, entries: Sequence[GalleryEntry], title: str = "kolorsc gallery") -> Path:
    """Write out_root/index.html (`gallery_html`), atomically, and not at all when its bytes
    are unchanged. (A build writes it through kolorsc.build.outputs, which follows no link.)"""
    data = gallery_html(out_root, entries, title)
    target = Path(out_root) / INDEX
    try:
        if target.read_bytes() == data:
            return target
    except FileNotFoundError:
        pass
    atomic_write_bytes(target, data)
    return target


def _existing(e: GalleryEntry, folder: Path) -> GalleryEntry:
    from dataclasses import replace

    names = ("storyboard", "pdf", "bundle", "page", "scores")
    return replace(e, **{n: getattr(e, n) if getattr(e, n) and (folder / getattr(e, n)).is_file() else None
                         for n in names})


def _thumbnail(storyboard: Path, thumb: Path) -> tuple[str, int, int]:
    """(name, width, height) of the storyboard's thumbnail, made when missing or stale."""
    try:
        fresh = os.stat(thumb).st_mtime_ns >= os.stat(storyboard).st_mtime_ns
    except FileNotFoundError:
        fresh = False
    from PIL import Image

    try:
        if fresh:
            with Image.open(thumb) as im:  # reads the header only
                return thumb.name, im.width, im.height
        data = storyboard.read_bytes()
        jpeg = storyboard_thumbnail(data)
    except OSError:  # an unreadable storyboard (PIL's errors are OSErrors): show it as it is
        return storyboard.name, 0, 0
    atomic_write_bytes(thumb, jpeg)
    w, h = png_size(data) or (THUMB_WIDTH, THUMB_WIDTH)
    width = min(w, THUMB_WIDTH)
    return thumb.name, width, max(1, round(h * width / w))
