"""The build's result as plain data (kolorsc.results.StoryResult), made from node outputs:
which candidate each panel kept, every candidate's scores, the summary, the LoRA.

Emit stages build it from their task's upstream outputs; the driver builds the same from
its cache to report scores. Reads only small records (selections, score JSON); images stay
where they are."""

from __future__ import annotations

import json

from kolorsc.build.graph import LORA, RENDER, SCORE, SELECT, Graph, NodeId
from kolorsc.build.stages.base import Blob
from kolorsc.results import Candidate, LoraResult, PanelResult, Scores, StoryResult

PREVIEW_NOTE = "not computed: preview drafts are not scored"
MISSING_NOTE = "not computed: run `kolorsc models pull aesthetic`"


def story_result(graph: Graph, outputs: dict[NodeId, Blob]) -> StoryResult:
    """The result of `graph`'s build from the outputs of its select, render and score nodes
    (and its LoRA, when there is one)."""
    records = {nid: json.loads(b.read()) for nid, b in outputs.items() if nid.kind == SCORE}
    scores = {nid: _image_score(r) for nid, r in records.items()}
    chosen_seed = {p.index: json.loads(outputs[NodeId(SELECT, p.index)].read())["seed"] for p in graph.panels}
    chosen = {i: scores.get(NodeId(SCORE, i, s)) for i, s in chosen_seed.items()}
    panels = []
    for p in graph.panels:
        others = [s.embedding for i, s in chosen.items() if i != p.index and s is not None]
        cands = [
            _candidate(nid, outputs[nid], scores.get(nid.sibling(SCORE)), others)
            for nid in sorted(outputs) if nid.kind == RENDER and nid.panel == p.index
        ]
        pick = next(c for c in cands if c.seed == chosen_seed[p.index])
        panels.append(PanelResult(p, pick, tuple(cands)))
    return StoryResult(
        story=graph.story,
        panels=tuple(panels),
        engine=graph.engine,
        preview=graph.preview,
        scores=_summary(graph, [s for s in chosen.values() if s is not None], records),
        lora=_lora(graph, outputs),
    )


def _image_score(record: dict):
    if not record.get("score"):
        return None
    from kolorsc.scoring.report import ImageScore

    return ImageScore.from_json(record["score"])


def _candidate(nid: NodeId, blob: Blob, score, others: list) -> Candidate:
    """A rendered candidate with its numbers; coherence = mean similarity to the other
    panels' chosen images (None without scores)."""
    if score is None:
        return Candidate(nid.seed, blob.path, blob.sha256)
    from kolorsc.scoring.select import CandidateScore, candidate_coherence

    coherence = candidate_coherence(CandidateScore(nid.seed, score.aesthetic, score.embedding), others) if others else None
    return Candidate(nid.seed, blob.path, blob.sha256, score.aesthetic, coherence, score.alignment)


def _summary(graph: Graph, chosen: list, records: dict) -> Scores:
    threshold = graph.story.threshold
    if graph.preview:
        return Scores(threshold=threshold, note=PREVIEW_NOTE)
    if len(chosen) != len(graph.panels):
        notes = [r["note"] for r in records.values() if r.get("note")]
        return Scores(threshold=threshold, note=notes[0] if notes else MISSING_NOTE)
    from kolorsc.scoring.report import summarize

    scorer = next(iter(records.values()))["scorer"] if records else {}
    return summarize(chosen, scorer=scorer).to_scores(threshold)


def _lora(graph: Graph, outputs: dict[NodeId, Blob]) -> LoraResult | None:
    lora = NodeId(LORA)
    if graph.preview or lora not in outputs:
        return None
    spec = graph.story.style.lora
    t = spec.training
    node = graph.node(lora)
    return LoraResult(
        path=outputs[lora].local_path(),
        key=node.key,
        rank=t.rank if t else None,
        alpha=t.alpha if t else None,
        scale=spec.scale,
        trained=t is not None,
        info={"base_model": graph.story.style.base_model, "inputs": node.inputs},
    )
