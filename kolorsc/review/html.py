"""`kolorsc diff --html DIR`: the diff as a side-by-side page a reviewer opens from a pull
request's artifacts.

DIR/index.html holds every story that differs; for each changed panel, its field changes
(prompt fragments as <del>/<ins>) and, for every render either side has in the cache, the
revision's image beside the working tree's. The images are copied into DIR/img/<key>.png so
the folder stands alone (an artifact has no cache beside it). Static, no scripts, phone-first
(kolorsc.emit.htmlpage); same report and cache, same bytes.
"""

from __future__ import annotations

from pathlib import Path

from kolorsc.atomic import atomic_write_bytes
from kolorsc.emit.htmlpage import esc, img, page
from kolorsc.prompts import separator_for
from kolorsc.review.compare import DELETE, INSERT, Change
from kolorsc.review.diff import ADDED, INVALID, REMOVED, UNCHANGED, DiffReport, PanelDiff, StoryDiff
from kolorsc.review.keys import RenderKey
from kolorsc.review.present import MARKERS, join_ops, render_line, shown, story_header, summary

IMG_DIR = "img"


def write_html(report: DiffReport, out_dir: Path) -> Path:
    """Write out_dir/index.html and the images it shows; returns the page's path."""
    out_dir = Path(out_dir)
    images: dict[str, Path] = {}  # key -> cached PNG, filled while the page is made
    body = [
        f"<header>\n<h1>kolorsc diff</h1>\n<p>{esc(summary(report))}</p>\n</header>\n",
        *(_story(s, images) for s in report.stories if s.status != UNCHANGED),
    ]
    if not any(s.status != UNCHANGED for s in report.stories):
        body.append("<p>No story changed.</p>\n")
    for key, src in sorted(images.items()):
        dst = out_dir / IMG_DIR / f"{key}.png"
        if not dst.is_file() or dst.stat().st_size != src.stat().st_size:
            dst.parent.mkdir(parents=True, exist_ok=True)
            with open(src, "rb") as f:
                data = f.read()
            atomic_write_bytes(dst, data)
    target = out_dir / "index.html"
    atomic_write_bytes(target, page(f"kolorsc diff {report.rev}", "".join(body)))
    return target


def _story(s: StoryDiff, images: dict[str, Path]) -> str:
    out = [f'<section class="card" id="{esc(s.id)}">\n<h2>{esc(story_header(s))}</h2>\n']
    if s.diagnostics:
        out.append("<pre>" + esc("\n".join(s.diagnostics)) + "</pre>\n")
    if s.changes:
        out.append("<ul>" + "".join(f"<li>{_change(c)}</li>" for c in s.changes) + "</ul>\n")
    if s.status != INVALID:
        panels = s.panels if s.status in (ADDED, REMOVED) else s.changed_panels
        out.append('<div class="grid">\n' + "".join(_panel(p, images) for p in panels) + "</div>\n")
    out += [f'<p class="muted">note: {esc(n)}</p>\n' for n in s.notes]
    out.append("</section>\n")
    return "".join(out)


def _change(c: Change) -> str:
    if not c.ops:
        return f"{esc(c.field)}: <del>{esc(shown(c.old))}</del> → <ins>{esc(shown(c.new))}</ins>"
    marked = [(op, f"<del>{esc(f)}</del>" if op == DELETE else f"<ins>{esc(f)}</ins>" if op == INSERT else esc(f))
              for op, f in c.ops]
    return f"{esc(c.field)}: {join_ops(marked, esc(separator_for(''.join(f for _, f in c.ops))))}"


def _panel(p: PanelDiff, images: dict[str, Path]) -> str:
    out = [f'<article class="card" id="panel-{p.index:02d}">\n',
           f"<h3>panel {p.index:02d} {esc(p.caption)}</h3>\n"]
    if p.reasons:
        out.append(f'<p class="muted">{esc(", ".join(p.reasons))}</p>\n')
    if p.changes:
        out.append("<ul>" + "".join(f"<li>{_change(c)}</li>" for c in p.changes) + "</ul>\n")
    for r in p.renders:
        out.append(f"<p>{esc(render_line(r))}</p>\n")
        if _image(r.old) or _image(r.new):
            out.append(f'<div class="pair">{_figure("before", r.old, images)}{_figure("after", r.new, images)}</div>\n')
    out.append("</article>\n")
    return "".join(out)


def _image(k: RenderKey | None) -> Path | None:
    return k.image if k is not None and k.image is not None and k.image.is_file() else None


def _figure(label: str, k: RenderKey | None, images: dict[str, Path]) -> str:
    path = _image(k)
    if path is None:
        text = "no render" if k is None else "not in the cache"
        return f'<figure style="margin:0"><div class="missing">{esc(label)}: {esc(text)}</div></figure>'
    images[k.key] = path
    caption = f"{label} · seed {k.seed} · {k.key[:12]}"  # only cached renders get here: key known
    return (f'<figure style="margin:0">{img(f"{IMG_DIR}/{k.key}.png", caption)}'
            f'<figcaption class="muted">{esc(caption)}</figcaption></figure>')


__all__ = ["MARKERS", "write_html"]
