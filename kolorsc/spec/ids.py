"""One id, one story: two stories with the same `id` would write the same build/<id>/ folder
and bundle, the second silently replacing the first's work.

    same_id_problems(files) -> {file: [Diagnostic]}   for `kolorsc check`

A story's collection, for this check, is the story files checked together plus the story
files in each one's own folder: the pre-commit hook passes only the files a commit touches,
and a copied story (the usual way to start a new one) sits beside its original. Every story
of a clash gets a diagnostic at its own `id:` line naming the other files at theirs. The
build refuses the same clash among the stories it is given, and a story whose build/<id>/
folder holds another story's outputs (kolorsc.build.outputs.claim_problem).

Ids are read with the YAML reader alone (no schema, no style, no templates): a few
milliseconds a file, and a file too broken to have an id is simply left out here (its own
check reports it).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from kolorsc.errors import Diagnostic
from kolorsc.i18n import _
from kolorsc.spec.model import Loc
from kolorsc.spec.yamlsource import SourceError, read_source


def story_id(path: Path, name: str | None = None) -> tuple[str, Loc] | None:
    """The `id` of a story file and where it is written; None when the file has none."""
    try:
        src = read_source(Path(path), name if name is not None else str(path))
    except SourceError:
        return None
    if not isinstance(src.data, dict) or not isinstance(src.data.get("id"), str):
        return None
    line, col = src.pos(("id",))
    return src.data["id"], Loc(src.name, line, col)


def same_id_diagnostic(story: str, at: Loc, others: Sequence[Loc]) -> Diagnostic:
    """The diagnostic of one story of a clash, at its `id:` line, naming the others."""
    where = ", ".join(str(o) for o in others)
    return Diagnostic(at.file, at.line, at.col, "id",
                      _("another story has the id \"{id}\" too: {where}").format(id=story, where=where),
                      _("the id names the output folder build/{id}/ and the bundle: give each story its own id").format(
                          id=story))


def same_id_problems(files: Sequence[Path], is_style=lambda p: False) -> dict[Path, list[Diagnostic]]:
    """Diagnostics for every checked story file whose id another story of its collection has."""
    from kolorsc.spec.check import iter_story_files

    checked = [Path(f) for f in files if not is_style(f)]
    keys = {f.absolute() for f in checked}
    neighbours = []
    for folder in sorted({f.absolute().parent for f in checked}):
        for p in iter_story_files([folder]):
            if p.parent == folder and p.absolute() not in keys and not is_style(p):
                keys.add(p.absolute())
                neighbours.append(p)
    by_id: dict[str, list[tuple[Path, Loc]]] = {}
    for f in checked + neighbours:
        found = story_id(f, str(f) if f in checked else _shown(f))
        if found is not None:
            by_id.setdefault(found[0], []).append((f, found[1]))
    out: dict[Path, list[Diagnostic]] = {}
    for sid, holders in by_id.items():
        if len(holders) < 2:
            continue
        for f, loc in holders:
            if f in checked:
                others = [o for g, o in holders if g is not f]
                out.setdefault(f, []).append(same_id_diagnostic(sid, loc, others))
    return out


def _shown(path: Path) -> str:
    from kolorsc.spec.loader import display_name

    return display_name(path)
