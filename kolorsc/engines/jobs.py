"""RenderJobs with consistency: from the per-panel resolution (kolorsc.consistency) and the
reference pictures' bytes to the engine's Reference / SharedAttention fields.

The build's render stage calls `render_job` for each candidate it makes (`render_jobs` makes
every candidate of a story at once); for a panel without consistency the job is exactly the
plain `RenderJob(panel, seed)`. `pictures` None names the references without their pictures
(sha256 "" and no bytes): what the preview engine gets, which notes them on its drafts and
cannot condition on a picture.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

from kolorsc.consistency import PanelConsistency
from kolorsc.engines.base import Reference, RenderJob, SharedAttention, SharedMember
from kolorsc.prompts import Panel


def references_of(pc: PanelConsistency, pictures: Mapping[str, bytes] | None) -> tuple[Reference, ...]:
    """The panel's references with their pictures: `pictures` maps a character key to the
    bytes of its reference (the file's, or the character sheet's PNG); None: named only."""
    if pictures is None:
        return tuple(Reference(r.character, "", r.scale) for r in pc.references)
    return tuple(
        Reference(r.character, hashlib.sha256(pictures[r.character]).hexdigest(), r.scale, pictures[r.character])
        for r in pc.references
    )


def render_job(panel: Panel, seed: int, panels: Mapping[int, Panel], consistency: Mapping[int, PanelConsistency],
               pictures: Mapping[str, bytes] | None) -> RenderJob:
    """Candidate `seed` of `panel`, with its references and the identity images it shares
    attention with. `panels`/`consistency` by panel index; `pictures` needs the characters of
    kolorsc.consistency.pictures_used for this panel only."""
    pc = consistency.get(panel.index)
    if pc is None or not pc.on:
        return RenderJob(panel, seed)
    shared = None
    if pc.sharing is not None:
        s = pc.sharing
        members = tuple(
            SharedMember(panels[i], panels[i].seed, references_of(consistency[i], pictures), consistency[i].sharing.rate)
            for i in s.identity
        )
        shared = SharedAttention(members, group=s.group, rate=s.rate, layers=s.layers, from_step=s.from_step)
    return RenderJob(panel, seed, references_of(pc, pictures), shared)


def render_jobs(panels: Sequence[Panel], consistency: Sequence[PanelConsistency],
                pictures: Mapping[str, bytes] | None) -> dict[tuple[int, int], RenderJob]:
    """Every candidate of every panel as a RenderJob, keyed by (panel index, seed). Identity
    images are the first candidate of each identity panel (kolorsc.consistency)."""
    by_index = {p.index: p for p in panels}
    pcs = {pc.index: pc for pc in consistency}
    return {(p.index, seed): render_job(p, seed, by_index, pcs, pictures) for p in panels for seed in p.candidate_seeds()}
