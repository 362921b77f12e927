"""RenderJobs with consistency: from the per-panel resolution (kolorsc.consistency) and the
reference pictures' bytes to the engine's Reference / SharedAttention fields.

The build core calls `render_jobs` instead of `RenderJob(panel, seed)` when the story has
consistency on; for a story without it the jobs are exactly the plain ones.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from kolorsc.consistency import PanelConsistency
from kolorsc.engines.base import Reference, RenderJob, SharedAttention, SharedMember
from kolorsc.prompts import Panel


def references_of(pc: PanelConsistency, pictures: dict[str, bytes]) -> tuple[Reference, ...]:
    """The panel's references with their pictures: `pictures` maps a character key to the
    bytes of its reference (the file's, or the character sheet's PNG)."""
    return tuple(
        Reference(r.character, hashlib.sha256(pictures[r.character]).hexdigest(), r.scale, pictures[r.character])
        for r in pc.references
    )


def render_jobs(panels: Sequence[Panel], consistency: Sequence[PanelConsistency],
                pictures: dict[str, bytes]) -> dict[tuple[int, int], RenderJob]:
    """Every candidate of every panel as a RenderJob, keyed by (panel index, seed). Identity
    images are the first candidate of each identity panel (kolorsc.consistency)."""
    by_index = {p.index: p for p in panels}
    pcs = {pc.index: pc for pc in consistency}
    jobs = {}
    for panel in panels:
        pc = pcs.get(panel.index)
        refs = references_of(pc, pictures) if pc else ()
        shared = None
        if pc is not None and pc.sharing is not None:
            s = pc.sharing
            members = tuple(
                SharedMember(by_index[i], by_index[i].seed, references_of(pcs[i], pictures), pcs[i].sharing.rate)
                for i in s.identity
            )
            shared = SharedAttention(members, group=s.group, rate=s.rate, layers=s.layers, from_step=s.from_step)
        for seed in panel.candidate_seeds():
            jobs[(panel.index, seed)] = RenderJob(panel, seed, refs, shared)
    return jobs
