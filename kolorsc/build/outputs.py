"""build/<id>/: the story's output files, put in place from the cache after a build.

Each file is replaced atomically and only when its bytes differ (a no-op build touches
nothing, so file times stay meaningful); our own files that this build no longer makes (a
bundle under an old team name, panels beyond the story's count) are removed. Nothing else
in the folder is touched.

One folder, one story: `.kolorsc-story` in the folder names the story file whose outputs it
holds (relative to the project root). A build refuses to write another story's outputs
there while that story still exists with the same id (`claim_problem`); a renamed story, or
one whose id changed, leaves the folder free.
"""

from __future__ import annotations

import json
from pathlib import Path

from kolorsc.atomic import atomic_copy_file, atomic_write_bytes
from kolorsc.build.stages.base import Blob
from kolorsc.build.status import Plan
from kolorsc.errors import Diagnostic
from kolorsc.hashing import sha256_file
from kolorsc.i18n import _
from kolorsc.spec.model import Story

OWNER_FILE = ".kolorsc-story"


def output_dir(story: Story, out: Path | None) -> Path:
    return (Path(out) if out else Path(story.root) / "build") / story.id


def write_outputs(plan: Plan, outputs: dict, out_dir: Path) -> list[str]:
    """Put each output file in place; returns the files (re)written, relative to out_dir."""
    written = []
    for planned in plan.nodes:
        node = planned.node
        blob: Blob | None = outputs.get(node.id)
        if node.output is None or blob is None:
            continue
        dst = out_dir / node.output
        if dst.is_file() and sha256_file(dst) == blob.sha256:
            continue
        if blob.data is not None:
            atomic_write_bytes(dst, blob.data)
        else:
            atomic_copy_file(blob.path, dst)
        written.append(node.output)
    _remove_stale(plan, out_dir)
    _claim(plan.story, out_dir)
    return written


def _owner_text(story: Story) -> str:
    return json.dumps({"story": _relative(story.path, story.root)}, ensure_ascii=False) + "\n"


def _relative(path: Path, root: Path) -> str:
    try:
        return Path(path).resolve().relative_to(Path(root).resolve()).as_posix()
    except ValueError:
        return Path(path).as_posix()


def _claim(story: Story, out_dir: Path) -> None:
    marker = out_dir / OWNER_FILE
    text = _owner_text(story)
    try:
        if marker.read_text("utf-8") == text:
            return
    except (OSError, UnicodeDecodeError):
        pass
    atomic_write_bytes(marker, text.encode("utf-8"))


def owner(out_dir: Path, root: Path) -> Path | None:
    """The story file whose outputs `out_dir` holds, as its last build recorded; None if unknown."""
    try:
        rel = json.loads((Path(out_dir) / OWNER_FILE).read_text("utf-8"))["story"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return Path(root) / rel if isinstance(rel, str) else None


def claim_problem(story: Story, out_dir: Path, id_at) -> Diagnostic | None:
    """A diagnostic (at the story's `id:` line, `id_at` a Loc) when `out_dir` holds the outputs
    of another story file that still exists with the same id."""
    from kolorsc.spec.ids import story_id
    from kolorsc.spec.loader import display_name

    other = owner(out_dir, story.root)
    if other is None or not other.is_file() or other.resolve() == Path(story.path).resolve():
        return None
    found = story_id(other, display_name(other))
    if found is None or found[0] != story.id:
        return None
    return Diagnostic(id_at.file, id_at.line, id_at.col, "id",
                      _("{folder}/ holds the outputs of {other}, which has the id \"{id}\" too").format(
                          folder=display_name(out_dir), other=found[1], id=story.id),
                      _("the id names the output folder and the bundle: give each story its own id"))


def _remove_stale(plan: Plan, out_dir: Path) -> None:
    current = {n.output for n in plan.nodes if n.output}
    stale = list(out_dir.glob(f"*-可图Kolors训练-{plan.story.id}.zip"))
    stale += list((out_dir / "panels").glob("[0-9][0-9].png"))
    for p in stale:
        if p.relative_to(out_dir).as_posix() not in current:
            p.unlink(missing_ok=True)


def write_indexes(stories: list) -> list[Path]:
    """build/index.html of every output folder the build wrote into: a card per story (its
    thumbnail, gate, mean score, links; kolorsc.emit.gallery), in collection order.

    `stories`: (out_dir or None, story id, title, status, StoryResult or None, error) per
    story; a story without an output folder (invalid before its id was known) is left out."""
    from kolorsc.emit.gallery import failed_entry, gallery_entry, write_gallery

    roots: dict[Path, list] = {}
    for out_dir, story_id, title, status, result, error in stories:
        if out_dir is None:
            continue
        entry = (gallery_entry(result, out_dir.name, status) if result is not None
                 else failed_entry(story_id, title, out_dir.name, status, error))
        roots.setdefault(out_dir.parent, []).append(entry)
    return [write_gallery(root, entries) for root, entries in roots.items()]
