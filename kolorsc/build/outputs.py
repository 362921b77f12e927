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
    return written


def _remove_stale(plan: Plan, out_dir: Path) -> None:
    current = {n.output for n in plan.nodes if n.output}
    stale = list(out_dir.glob(f"*-可图Kolors训练-{plan.story.id}.zip"))
    stale += list((out_dir / "panels").glob("[0-9][0-9].png"))
    for p in stale:
        if p.relative_to(out_dir).as_posix() not in current:
            p.unlink(missing_ok=True)
