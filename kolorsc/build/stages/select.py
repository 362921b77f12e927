"""Stage `select`: which candidate of a panel goes out — best of N by the scoring objective
(kolorsc.scoring.select), candidate 1 (the scene's seed) when nothing is scored."""

from __future__ import annotations

import json
from collections.abc import Iterator

from kolorsc.build.graph import REFERENCE, RENDER, SCORE, NodeId
from kolorsc.build.stages.base import Env, Task, Work


def run(task: Task, env: Env) -> Iterator[tuple[str, bytes]]:
    for work in task.work:
        yield work.node.key, json.dumps({"seed": choose(task, work)}).encode()


def choose(task: Task, work: Work) -> int:
    inputs = task.inputs(work)
    renders = [d for d in work.node.deps if d.kind == RENDER]
    scores = {d: _score(inputs[d]) for d in work.node.deps if d.kind == SCORE}
    mine = [scores.get(r.sibling(SCORE)) for r in renders]
    if len(renders) == 1 or not any(mine):
        return renders[0].seed
    from kolorsc.build.stages.reference import embedding_of
    from kolorsc.build.stages.result import consistency_peers
    from kolorsc.scoring.consistency import candidate_consistency
    from kolorsc.scoring.select import CandidateScore, select_best

    # The other panels' first candidates stand for their choices: selection stays per
    # panel and order-independent (a sequential "current choice" would make panel 1's
    # pick depend on panel 8's).
    index = work.node.id.panel
    first = {}
    for p in work.graph.panels:
        s = scores.get(NodeId(SCORE, p.index, p.candidate_seeds()[0]))
        if p.index != index and s is not None:
            first[p.index] = list(s.embedding)
    references = {d.name: embedding_of(inputs[d].read()) for d in work.node.deps if d.kind == REFERENCE}
    same, refs = consistency_peers(index, work.node.inputs.get("characters", {}), first, references)
    cands = [CandidateScore(r.seed, s.aesthetic if s else None, s.embedding if s else None, s.alignment if s else None,
                            candidate_consistency(s.embedding, same, refs) if s else None)
             for r, s in zip(renders, mine)]
    return renders[select_best(cands, list(first.values()) or None)].seed


def _score(blob):
    """The ImageScore in a score record, or None when it was not computed."""
    from kolorsc.scoring.report import ImageScore

    data = json.loads(blob.read())
    return ImageScore.from_json(data["score"]) if data.get("score") else None
