"""Stage `reference`: the scorer's CLIP image embedding of a character's reference picture (the
file, or its sheet), so its panels can be compared with it (per-character consistency,
kolorsc.scoring.consistency). A record like a score's: the picture's hash, the scorer's
identity, the embedding; without the aesthetic predictor's weights it says "not computed"
and holds none (the scorer's identity in the key says it was absent)."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

from kolorsc.build.stages.base import Env, Task
from kolorsc.build.stages.score import NOT_COMPUTED


def run(task: Task, env: Env) -> Iterator[tuple[str, bytes]]:
    scorer = task.work[0].node.inputs["scorer"]
    for work in task.work:
        picture = task.inputs(work)[work.node.deps[0]]
        if scorer["aesthetic"].get("absent"):
            yield work.node.key, record(picture.sha256, scorer, None, NOT_COMPUTED)
            continue
        from PIL import Image

        from kolorsc.scoring.consistency import reference_embedding
        from kolorsc.scoring.loader import load_scorers

        scorers = env.resource("scorers", lambda: load_scorers(env.models_dir, env.device))
        with Image.open(io.BytesIO(picture.read())) as im:
            embedding = reference_embedding(im, scorers)
        env.report("reference", 1, 1, str(work.node.id))
        yield work.node.key, record(picture.sha256, scorers.identity, embedding, None)


def record(image_sha256: str, scorer: dict, embedding: list[float] | None, note: str | None) -> bytes:
    return json.dumps({"image": image_sha256, "scorer": scorer, "embedding": embedding, "note": note},
                      sort_keys=True, ensure_ascii=False).encode("utf-8")


def embedding_of(data: bytes) -> list[float] | None:
    """The embedding a reference record holds, or None when it was not computed."""
    return json.loads(data).get("embedding")
