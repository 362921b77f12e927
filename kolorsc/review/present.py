"""The diff report as text (what `kolorsc diff` prints; cli.py prints it).

    ~ classroom-dream  stories/classroom-dream.yaml  (preview engine)
      panel 03 进入梦乡: prompt changed
        prompt: 古风，水墨画，…，[-站在路边-]{+站在河边+}，远处有朦胧的山影，上半身
        seed-3: new render, not in the cache

Markers: `~` modified, `+` added, `-` removed, `>` renamed, `!` invalid, `=` nothing that
matters changed. Text changes use git's word-diff notation on prompt fragments.
"""

from __future__ import annotations

from kolorsc.i18n import N_, _, ngettext
from kolorsc.prompts import separator_for
from kolorsc.review.compare import DELETE, INSERT, Change
from kolorsc.review.diff import (
    ADDED,
    DROPPED,
    INVALID,
    MODIFIED,
    NEW,
    REMOVED,
    RENAMED,
    REUSED,
    SAME,
    UNCHANGED,
    DiffReport,
    RenderChange,
    StoryDiff,
)

MARKERS = {MODIFIED: "~", ADDED: "+", REMOVED: "-", RENAMED: ">", INVALID: "!", UNCHANGED: "="}
# how a story's status is shown (the JSON report keeps the English keys)
STATUS_WORDS = {MODIFIED: N_("modified"), ADDED: N_("added"), REMOVED: N_("removed"), RENAMED: N_("renamed"),
                INVALID: N_("invalid"), UNCHANGED: N_("unchanged")}


def join_ops(marked: list[tuple[str, str]], sep: str) -> str:
    """Join marked fragments with the prompt's separator, except between a deletion and the
    insertion that replaces it (`[-b-]{+c+}` reads as one replacement)."""
    out = ""
    for i, (op, text) in enumerate(marked):
        if i:
            out += "" if (marked[i - 1][0] == DELETE and op == INSERT) else sep
        out += text
    return out


def word_diff(ops) -> str:
    """`a，[-b-]{+c+}，d`: fragments joined the way the prompt joins them."""
    marked = [(op, f"[-{f}-]" if op == DELETE else f"{{+{f}+}}" if op == INSERT else f) for op, f in ops]
    return join_ops(marked, separator_for("".join(f for _, f in ops)))


def shown(value) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def change_line(c: Change) -> str:
    if c.ops:
        return f"{c.field}: {word_diff(c.ops)}"
    return f"{c.field}: {shown(c.old)} -> {shown(c.new)}"


def render_line(r: RenderChange) -> str:
    short = (r.new or r.old).key[:12] or _("key unknown until built")
    if r.status == NEW:
        where = _("in the cache") if r.in_cache else _("not in the cache")
        text = _("new render ({reasons}), {where}").format(reasons="; ".join(r.reasons), where=where)
    elif r.status == REUSED:
        text = _("same render as another panel at the revision")
    elif r.status == DROPPED:
        text = _("no longer rendered ({reasons})").format(reasons="; ".join(r.reasons))
    else:
        text = _("unchanged")
    return f"seed-{r.seed}: {text}  [{short}]"


def story_header(s: StoryDiff) -> str:
    path = s.new_path or s.old_path
    if s.status == RENAMED:
        path = f"{s.old_path} -> {s.new_path}"
    tail = _(STATUS_WORDS.get(s.status, s.status))
    if s.status != INVALID:
        new = s.new_renders
        cached = sum(1 for r in new if r.in_cache)
        tail += ngettext(", {n} new render", ", {n} new renders", len(new)).format(n=len(new))
        tail += _(" ({n} in the cache)").format(n=cached) if new else ""
        tail += _(", {engine} engine").format(engine=s.engine)
    return f"{MARKERS[s.status]} {s.id}  {path}  ({tail})"


def story_lines(s: StoryDiff) -> list[str]:
    lines = [story_header(s)]
    lines += [f"    {d}" for d in s.diagnostics]
    lines += [f"  {change_line(c)}" for c in s.changes]
    if s.status in (ADDED, REMOVED):
        lines += ["  " + _("{n} panels").format(n=len(s.panels))]
    else:
        for p in s.changed_panels:
            lines.append("  " + _("panel {n} {caption}: {reasons}").format(
                n=f"{p.index:02d}", caption=p.caption, reasons=", ".join(p.reasons) or _("changed")))
            lines += [f"      {change_line(c)}" for c in p.changes]
            lines += [f"      {render_line(r)}" for r in p.renders if r.status != SAME]
    lines += ["  " + _("note: {note}").format(note=n) for n in s.notes]
    return lines


def summary(report: DiffReport) -> str:
    counts = [f"{report.count(k)} {_(STATUS_WORDS[k])}" for k in (MODIFIED, ADDED, REMOVED, RENAMED, INVALID)
              if report.count(k)]
    same = report.unchanged + report.count(UNCHANGED)
    counts.append(f"{same} {_(STATUS_WORDS[UNCHANGED])}")
    new = report.new_renders
    cached = sum(1 for r in new if r.in_cache)
    renders = ngettext("{n} new render ({cached} in the cache)", "{n} new renders ({cached} in the cache)",
                       len(new)).format(n=len(new), cached=cached)
    return _("{rev} ({commit}) -> working tree: {counts}; {renders}").format(
        rev=report.rev, commit=report.commit[:12], counts=", ".join(counts), renders=renders)


def as_text(report: DiffReport) -> str:
    lines = []
    for s in report.stories:
        if s.status != UNCHANGED:
            lines += story_lines(s)
    lines.append(summary(report))
    return "\n".join(lines)
