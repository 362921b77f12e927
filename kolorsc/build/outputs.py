"""build/<id>/: the story's output files, put in place from the cache after a build.

Each file is replaced atomically and only when its bytes differ (a no-op build touches
nothing, so file times stay meaningful); our own files that this build no longer makes (a
bundle under an old team name, panels beyond the story's count) are removed. Nothing else
in the folder is touched.
"""

from __future__ import annotations

from pathlib import Path

from kolorsc.atomic import atomic_copy_file, atomic_write_bytes
from kolorsc.build.stages.base import Blob
from kolorsc.build.status import Plan
from kolorsc.hashing import sha256_file
from kolorsc.spec.model import Story


def output_dir(story: Story, out: Path | None) -> Path:
    return (Path(out) if out else Path(story.root) / "build") / story.id


def write_outputs(plan: Plan, outputs: dict, out_dir: Path, hashes=None) -> list[str]:
    """Put each output file in place; returns the files (re)written, relative to out_dir.
    `hashes`: the cache's file-hash memo (a no-op build of a collection then re-reads none
    of its files), else each file in place is hashed."""
    sha = hashes.sha256 if hashes is not None else sha256_file
    written = []
    for planned in plan.nodes:
        node = planned.node
        blob: Blob | None = outputs.get(node.id)
        if node.output is None or blob is None:
            continue
        dst = out_dir / node.output
        if dst.is_file() and sha(dst) == blob.sha256:
            continue
        if blob.data is not None:
            atomic_write_bytes(dst, blob.data)
        else:
            atomic_copy_file(blob.path, dst)
        written.append(node.output)
    _remove_stale(plan, out_dir)
    return written


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
