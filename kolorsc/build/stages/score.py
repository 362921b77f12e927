"""Stage `score`: the challenge's aesthetic score (and Chinese-CLIP alignment) of candidates.

A record per render: the image hash it was computed on, the scorers' identity, the numbers.
Without the aesthetic predictor's weights the record says "not computed" and holds no
number (never an invented one); the scorer's identity, in the node's key, says it was absent,
so the day the weights arrive every score runs again."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

from kolorsc.build.stages.base import Env, Task

NOT_COMPUTED = "not computed: run `kolorsc models pull aesthetic`"


def run(task: Task, env: Env) -> Iterator[tuple[str, bytes]]:
    images = {w.node.key: task.inputs(w)[w.node.deps[0]] for w in task.work}
    scorer = task.work[0].node.inputs["scorer"]
    if scorer["aesthetic"].get("absent"):
        for work in task.work:
            yield work.node.key, record(images[work.node.key].sha256, scorer, None, NOT_COMPUTED)
        return
    from PIL import Image

    from kolorsc.scoring.loader import load_scorers
    from kolorsc.scoring.report import score_one_batch

    scorers = env.resource("scorers", lambda: load_scorers(env.models_dir, env.device))
    pictures = []
    for work in task.work:
        with Image.open(io.BytesIO(images[work.node.key].read())) as im:
            pictures.append(im.convert("RGB"))
    prompts = [w.graph.panel(w.node.id.panel).prompt for w in task.work]
    # one call: the scorer batches on its device
    for done, (work, result) in enumerate(zip(task.work, score_one_batch(pictures, prompts, scorers)), 1):
        env.report("score", done, len(task.work), str(work.node.id))
        yield work.node.key, record(images[work.node.key].sha256, scorers.identity, result.to_json(), None)


def record(image_sha256: str, scorer: dict, score: dict | None, note: str | None) -> bytes:
    return json.dumps({"image": image_sha256, "scorer": scorer, "score": score, "note": note},
                      sort_keys=True, ensure_ascii=False).encode("utf-8")
