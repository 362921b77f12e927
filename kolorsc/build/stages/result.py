"""The build's result as plain data (kolorsc.results.StoryResult), made from node outputs:
which candidate each panel kept, every candidate's scores, the summary with per-character
consistency, the character sheets, the LoRA.

Emit stages build it from their task's upstream outputs; the driver builds the same from
its cache to report scores. Reads only small records (selections, score JSON); images stay
where they are."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from kolorsc.build.graph import LORA, REFERENCE, RENDER, SCORE, SELECT, SHEET, Graph, NodeId
from kolorsc.build.stages.base import Blob
from kolorsc.consistency import panels_showing
from kolorsc.results import Candidate, CharacterSheet, LoraResult, PanelResult, Scores, StoryResult

PREVIEW_NOTE = "not computed: preview drafts are not scored"
MISSING_NOTE = "not computed: run `kolorsc models pull aesthetic`"


def story_result(graph: Graph, outputs: dict[NodeId, Blob]) -> StoryResult:
    """The result of `graph`'s build from the outputs of its select, render and score nodes
    (and its reference scores, character sheets and LoRA, when there are some)."""
    records = {nid: json.loads(b.read()) for nid, b in outputs.items() if nid.kind == SCORE}
    scores = {nid: _image_score(r) for nid, r in records.items()}
    chosen_seed = {p.index: json.loads(outputs[NodeId(SELECT, p.index)].read())["seed"] for p in graph.panels}
    chosen = {i: scores.get(NodeId(SCORE, i, s)) for i, s in chosen_seed.items()}
    embeddings = {i: list(s.embedding) for i, s in chosen.items() if s is not None}
    references = _reference_embeddings(outputs)
    shown = panels_showing(graph.story)
    panels = []
    for p in graph.panels:
        others = [e for i, e in embeddings.items() if i != p.index]
        peers = consistency_peers(p.index, shown, embeddings, references)
        cands = [
            _candidate(nid, outputs[nid], scores.get(nid.sibling(SCORE)), others, peers)
            for nid in sorted(outputs) if nid.kind == RENDER and nid.panel == p.index
        ]
        pick = next(c for c in cands if c.seed == chosen_seed[p.index])
        panels.append(PanelResult(p, pick, tuple(cands)))
    return StoryResult(
        story=graph.story,
        panels=tuple(panels),
        engine=graph.engine,
        preview=graph.preview,
        scores=_summary(graph, [s for s in chosen.values() if s is not None], records, embeddings, shown, references),
        lora=_lora(graph, outputs),
        sheets=_sheets(graph, outputs),
    )


def consistency_peers(index: int, shown: Mapping[str, Sequence[int]], embeddings: Mapping[int, Sequence[float]],
                      references: Mapping[str, Sequence[float] | None]) -> tuple[list, list]:
    """What a candidate of panel `index` is compared with for its character consistency: the
    embeddings (by panel, of the other panels' images) of the panels that show one of its
    characters, and its characters' reference embeddings. `shown`: character -> its panels."""
    mine = [c for c, panels in shown.items() if index in panels]
    same = [list(embeddings[i]) for i in sorted(embeddings)
            if i != index and any(i in shown[c] for c in mine)]
    refs = [list(references[c]) for c in mine if references.get(c) is not None]
    return same, refs


def _reference_embeddings(outputs: dict[NodeId, Blob]) -> dict[str, list[float]]:
    from kolorsc.build.stages.reference import embedding_of

    found = {nid.name: embedding_of(b.read()) for nid, b in outputs.items() if nid.kind == REFERENCE}
    return {c: e for c, e in found.items() if e is not None}


def _image_score(record: dict):
    if not record.get("score"):
        return None
    from kolorsc.scoring.report import ImageScore

    return ImageScore.from_json(record["score"])


def _candidate(nid: NodeId, blob: Blob, score, others: list, peers: tuple[list, list]) -> Candidate:
    """A rendered candidate with its numbers; coherence = mean similarity to the other
    panels' chosen images, consistency = to the other chosen images of its characters and
    their reference pictures (None without scores, or nothing to compare with)."""
    if score is None:
        return Candidate(nid.seed, blob.path, blob.sha256)
    from kolorsc.scoring.consistency import candidate_consistency
    from kolorsc.scoring.select import CandidateScore, candidate_coherence

    coherence = candidate_coherence(CandidateScore(nid.seed, score.aesthetic, score.embedding), others) if others else None
    consistency = candidate_consistency(score.embedding, *peers)
    return Candidate(nid.seed, blob.path, blob.sha256, score.aesthetic, coherence, score.alignment, consistency)


def _summary(graph: Graph, chosen: list, records: dict, embeddings: dict, shown: dict, references: dict) -> Scores:
    threshold = graph.story.threshold
    if graph.preview:
        return Scores(threshold=threshold, note=PREVIEW_NOTE)
    if len(chosen) != len(graph.panels):
        notes = [r["note"] for r in records.values() if r.get("note")]
        return Scores(threshold=threshold, note=notes[0] if notes else MISSING_NOTE)
    from kolorsc.scoring.consistency import character_scores
    from kolorsc.scoring.report import summarize

    scorer = next(iter(records.values()))["scorer"] if records else {}
    characters = character_scores(embeddings, shown, references)
    return summarize(chosen, scorer=scorer).to_scores(threshold, characters=characters)


def _sheets(graph: Graph, outputs: dict[NodeId, Blob]) -> tuple[CharacterSheet, ...]:
    out = []
    for node in graph.of_kind(SHEET):
        blob = outputs.get(node.id)
        if blob is not None:
            character = graph.story.characters[node.id.name]
            out.append(CharacterSheet(node.id.name, character.name or node.id.name, node.inputs["seed"], blob.path,
                                      blob.sha256))
    return tuple(out)


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
