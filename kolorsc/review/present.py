"""The diff report as text (what `kolorsc diff` prints; cli.py prints it).

    ~ classroom-dream  stories/classroom-dream.yaml  (preview engine)
      panel 03 进入梦乡: prompt changed
        prompt: 古风，水墨画，…，[-站在路边-]{+站在河边+}，远处有朦胧的山影，上半身
        seed-3: new render, not in the cache

Markers: `~` modified, `+` added, `-` removed, `>` renamed, `!` invalid, `=` nothing that
matters changed. Text changes use git's word-diff notation on prompt fragments.
"""

from __future__ import annotations

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
    short = (r.new or r.old).key[:12] or "key unknown until built"
    if r.status == NEW:
        where = "in the cache" if r.in_cache else "not in the cache"
        return f"seed-{r.seed}: new render ({'; '.join(r.reasons)}), {where}  [{short}]"
    if r.status == REUSED:
        return f"seed-{r.seed}: same render as another panel at the revision  [{short}]"
    if r.status == DROPPED:
        return f"seed-{r.seed}: no longer rendered ({'; '.join(r.reasons)})  [{short}]"
    return f"seed-{r.seed}: unchanged  [{short}]"


def story_header(s: StoryDiff) -> str:
    path = s.new_path or s.old_path
    if s.status == RENAMED:
        path = f"{s.old_path} -> {s.new_path}"
    tail = f"{s.status}"
    if s.status != INVALID:
        new = s.new_renders
        cached = sum(1 for r in new if r.in_cache)
        tail += f", {len(new)} new render{'s' if len(new) != 1 else ''}"
        tail += f" ({cached} in the cache)" if new else ""
        tail += f", {s.engine} engine"
    return f"{MARKERS[s.status]} {s.id}  {path}  ({tail})"


def story_lines(s: StoryDiff) -> list[str]:
    lines = [story_header(s)]
    lines += [f"    {d}" for d in s.diagnostics]
    lines += [f"  {change_line(c)}" for c in s.changes]
    if s.status in (ADDED, REMOVED):
        lines += [f"  {len(s.panels)} panels"]
    else:
        for p in s.changed_panels:
            lines.append(f"  panel {p.index:02d} {p.caption}: {', '.join(p.reasons) or 'changed'}")
            lines += [f"      {change_line(c)}" for c in p.changes]
            lines += [f"      {render_line(r)}" for r in p.renders if r.status != SAME]
    lines += [f"  note: {n}" for n in s.notes]
    return lines


def summary(report: DiffReport) -> str:
    counts = [f"{report.count(k)} {k}" for k in (MODIFIED, ADDED, REMOVED, RENAMED, INVALID) if report.count(k)]
    same = report.unchanged + report.count(UNCHANGED)
    counts.append(f"{same} unchanged")
    new = report.new_renders
    cached = sum(1 for r in new if r.in_cache)
    return (f"{report.rev} ({report.commit[:12]}) -> working tree: {', '.join(counts)}; "
            f"{len(new)} new render{'s' if len(new) != 1 else ''} ({cached} in the cache)")


def as_text(report: DiffReport) -> str:
    lines = []
    for s in report.stories:
        if s.status != UNCHANGED:
            lines += story_lines(s)
    lines.append(summary(report))
    return "\n".join(lines)
