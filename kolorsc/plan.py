"""The build graph: one node per output, keyed by the hash of everything that determines it.

A node's key is the sha256 of the canonical JSON (sorted keys, no cosmetic fields such as
source positions) of its resolved inputs: its own settings, the keys of the nodes it reads,
and the code version of its stage. Keys are input-addressed: they are all known before
anything runs, so `plan` can say exactly what a build will do.

Nodes, in run order:

    dataset            prepared training images (kolors engine, style trained from a dataset)
    lora               the style LoRA (a reused `path:` file, or trained from `dataset`)
    render/NN/seed-S   one candidate image of panel NN (the engine's work)
    score/NN/seed-S    aesthetic score of one candidate (kolors engine only)
    select/NN          which candidate of panel NN goes out (best of N, else candidate 1)
    panel/NN           panels/NN.png with the generation parameters in PNG text chunks
    storyboard, pdf, scores, bundle

Decisions (documented in README "Build graph and cache"):
- The preview engine draws without a LoRA: dataset and lora nodes are `skipped`, and
  preview renders carry no LoRA key. Preview drafts are not scored (an aesthetic score of a
  draft means nothing), and only candidate 1 of each panel is drawn, as nothing could pick
  among drafts.
- The caption is not a render input: changing it re-emits panel PNGs, storyboard, PDF,
  scores.json and bundle, and renders nothing.
- Emit nodes (panel PNG, storyboard, pdf, scores, bundle) include kolorsc's version in their
  key: they are cheap and their format follows the code. Render and LoRA nodes include only
  their stage's own version string: a kolorsc release must not re-render every panel.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path, PurePath

from kolorsc import __version__
from kolorsc.cache import Cache
from kolorsc.lockfile import LockFile
from kolorsc.prompts import Panel
from kolorsc.spec.model import Loc, Story

# Bump a stage's version when its output for the same inputs changes.
STAGE_VERSIONS = {
    "dataset": "1",
    "lora": "1",
    "render": "1",
    "score": "1",
    "select": "1",
    "panel": "1",
    "storyboard": "1",
    "pdf": "1",
    "scores": "1",
    "bundle": "1",
}
EMIT_KINDS = ("panel", "storyboard", "pdf", "scores", "bundle")

CACHED, TO_RUN, SKIPPED = "cached", "to-run", "skipped"

# Fields that never change an output: source positions, where a style file lives.
_COSMETIC = {"loc", "prompt_loc", "source", "path", "root"}


# -- hashing -------------------------------------------------------------------------------


def jsonable(value, root: Path | None = None):
    """Plain JSON data for hashing: dataclasses to dicts, tuples to lists, paths relative to root."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: jsonable(getattr(value, f.name), root)
            for f in dataclasses.fields(value)
            if f.name not in _COSMETIC
        }
    if isinstance(value, dict):
        return {str(k): jsonable(v, root) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v, root) for v in value]
    if isinstance(value, PurePath):
        p = Path(value)
        if root is not None:
            try:
                return p.resolve().relative_to(Path(root).resolve()).as_posix()
            except ValueError:
                pass
        return p.as_posix()
    if isinstance(value, Loc):
        return None
    return value


def canonical(value) -> bytes:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def digest(value) -> str:
    return hashlib.sha256(canonical(value)).hexdigest()


def short_digest(value) -> str:
    return digest(value)[:12]


# -- nodes ---------------------------------------------------------------------------------


@dataclass
class Node:
    id: str  # stable, human-readable: "render/03/seed-3"
    kind: str  # dataset, lora, render, score, select, panel, storyboard, pdf, scores, bundle
    inputs: dict  # resolved inputs (JSON data); upstream nodes appear by key
    deps: tuple[str, ...] = ()  # ids of the nodes this one reads
    loc: Loc | None = None  # where in the story (or style) this node comes from
    output: str | None = None  # path inside build/<id>/, for nodes that become a file there
    panel: int | None = None  # 1-based panel number, when the node belongs to one panel
    seed: int | None = None  # candidate seed of render/score nodes
    status: str = TO_RUN
    why: list[str] = field(default_factory=list)
    key: str = ""

    def __post_init__(self) -> None:
        self.key = digest({"kind": self.kind, "inputs": self.inputs})

    def input_digests(self) -> dict[str, str]:
        return {name: short_digest(value) for name, value in self.inputs.items()}


@dataclass
class Plan:
    story: Story
    panels: list[Panel]
    nodes: list[Node]  # in run order
    engine: dict
    preview: bool
    lora_scale: float | None = None

    def node(self, node_id: str) -> Node:
        return self._index()[node_id]

    def _index(self) -> dict[str, Node]:
        return {n.id: n for n in self.nodes}

    def of_kind(self, kind: str) -> list[Node]:
        return [n for n in self.nodes if n.kind == kind]

    def to_run(self) -> list[Node]:
        return [n for n in self.nodes if n.status == TO_RUN]

    def counts(self) -> dict[str, int]:
        out = {CACHED: 0, TO_RUN: 0, SKIPPED: 0}
        for n in self.nodes:
            out[n.status] += 1
        return out


@dataclass(frozen=True)
class LoraSource:
    """What the runner learnt about the style's LoRA before planning (plan.py may not import
    the training code, which sits in a higher layer).

    mode "file": `file_sha256` of the style's `lora.path`; mode "train": the dataset's
    fingerprint from `kolorsc.data.dataset_fingerprint` and `kolorsc.train.TRAINER_VERSION`."""

    mode: str  # "file" or "train"
    scale: float
    file_sha256: str | None = None
    dataset_fingerprint: str | None = None
    trainer_version: str | None = None


# -- building the graph --------------------------------------------------------------------


def panel_id(index: int) -> str:
    return f"{index:02d}"


def make_plan(
    story: Story,
    panels: list[Panel],
    engine: dict,
    preview: bool,
    lora: LoraSource | None = None,
) -> Plan:
    """Every node of the story's build, in run order, with its key (statuses not yet known)."""
    style = story.style
    nodes: list[Node] = []

    # 1. Dataset and LoRA: the preview engine draws without a LoRA.
    lora_node = None
    if style.lora is not None and not preview and lora is not None:
        nodes += _lora_nodes(story, lora)
        lora_node = nodes[-1]
    elif style.lora is not None:
        for kind in ("dataset", "lora") if style.lora.training else ("lora",):
            skipped = Node(kind, kind, {"style": style.id}, status=SKIPPED)
            skipped.why = ["preview engine draws without a LoRA"]
            nodes.append(skipped)

    lora_inputs = {
        "lora": lora_node.key if lora_node else None,
        "lora_scale": lora.scale if lora_node else None,
    }

    # 2. Renders, scores and selection, panel by panel.
    renders: dict[int, list[Node]] = {}
    scores: dict[int, list[Node]] = {}
    for p in panels:
        seeds = p.candidate_seeds()[:1] if preview else p.candidate_seeds()
        loc = _scene_loc(story, p)
        renders[p.index] = [_render_node(p, s, style.base_model, engine, lora_inputs, lora_node, loc) for s in seeds]
        scores[p.index] = [] if preview else [_score_node(r) for r in renders[p.index]]
    score_keys = {n.id: n.key for ns in scores.values() for n in ns}
    all_scores = [n for ns in scores.values() for n in ns]
    selects = {p.index: _select_node(p, renders[p.index], all_scores, _scene_loc(story, p)) for p in panels}
    for p in panels:
        nodes += renders[p.index]
    for p in panels:
        nodes += scores[p.index]
    nodes += [selects[p.index] for p in panels]

    # 3. Emitted outputs: keyed by what they show (captions, settings, chosen images, scores).
    meta = _story_meta(story)
    lora_key = lora_node.key if lora_node else None
    per_panel = [_panel_view(p, selects[p.index]) for p in panels]
    shared = {
        "story": meta,
        "engine": engine,
        "preview": preview,
        "lora": lora_key,
        "scores": score_keys,
        "version": __version__,
    }
    panel_nodes = []
    for p, view in zip(panels, per_panel):
        deps = (selects[p.index].id, *(r.id for r in renders[p.index]), *score_keys)
        inputs = {**shared, "caption": p.caption, "panel": view, "code": STAGE_VERSIONS["panel"]}
        panel_nodes.append(
            Node(f"panel/{panel_id(p.index)}", "panel", inputs, deps, _scene_loc(story, p),
                 output=f"panels/{p.index:02d}.png", panel=p.index)
        )
    nodes += panel_nodes
    everything = tuple(n.id for n in nodes if n.status != SKIPPED and n.kind != "dataset")
    whole = {**shared, "captions": [p.caption for p in panels], "panels": per_panel}
    outputs = {
        "storyboard": "storyboard.png",
        "pdf": "storyboard.pdf",
        "scores": "scores.json",
        "bundle": f"{story.bundle_name}.zip",
    }
    for kind, name in outputs.items():
        inputs = {**whole, "code": STAGE_VERSIONS[kind]}
        if kind == "bundle":
            inputs["panel_pngs"] = [n.key for n in panel_nodes]
        nodes.append(Node(kind, kind, inputs, everything, Loc(str(story.path), 1, 1), output=name))
    return Plan(story, list(panels), nodes, engine, preview, lora.scale if lora_node else None)


def _scene_loc(story: Story, p: Panel) -> Loc | None:
    i = p.index - 1
    return story.scenes[i].prompt_loc if 0 <= i < len(story.scenes) else None


def _story_meta(story: Story) -> dict:
    return {
        "id": story.id,
        "title": story.title,
        "team": story.team,
        "description": story.description,
        "threshold": story.threshold,
        "version": story.version,
        "style": jsonable(story.style, story.root),
    }


def _panel_view(p: Panel, select: Node) -> dict:
    return {"index": p.index, "shot": p.shot, "candidates": p.candidates, "settings": p.settings(), "select": select.key}


def _render_node(p: Panel, seed: int, base_model: str, engine: dict, lora_inputs: dict,
                 lora_node: Node | None, loc: Loc | None) -> Node:
    settings = p.settings()
    inputs = {
        "prompt": settings.pop("prompt"),
        "negative": settings.pop("negative"),
        "panel_seed": settings.pop("seed"),
        "seed": seed,
        "settings": settings,
        "base_model": base_model,
        "engine": engine,
        **lora_inputs,
        "code": STAGE_VERSIONS["render"],
    }
    deps = (lora_node.id,) if lora_node else ()
    return Node(f"render/{panel_id(p.index)}/seed-{seed}", "render", inputs, deps, loc, panel=p.index, seed=seed)


def _score_node(render: Node) -> Node:
    # Keyed by the render's key (input-addressed); the stored score also records the image
    # hash it was computed on, and the runner checks it against the image it has.
    inputs = {"render": render.key, "scorer": "aesthetic-v2-linearMSE", "code": STAGE_VERSIONS["score"]}
    return Node(f"score/{panel_id(render.panel)}/seed-{render.seed}", "score", inputs, (render.id,),
                render.loc, panel=render.panel, seed=render.seed)


def _select_node(p: Panel, renders: list[Node], scores: list[Node], loc: Loc | None) -> Node:
    # Every score of the story: among tied candidates the scoring objective prefers the one
    # closest to the other panels (coherence), so other panels' scores matter too.
    inputs = {
        "candidates": {r.id: r.key for r in renders},
        "scores": {s.id: s.key for s in scores},
        "code": STAGE_VERSIONS["select"],
    }
    deps = tuple(r.id for r in renders) + tuple(s.id for s in scores)
    return Node(f"select/{panel_id(p.index)}", "select", inputs, deps, loc, panel=p.index)


def _lora_nodes(story: Story, src: LoraSource) -> list[Node]:
    style = story.style
    if src.mode == "file":
        inputs = {"file_sha256": src.file_sha256, "code": STAGE_VERSIONS["lora"]}
        return [Node("lora", "lora", inputs, (), _style_loc(story))]
    ds = style.lora.dataset
    dataset = Node(
        "dataset",
        "dataset",
        {"fingerprint": src.dataset_fingerprint, "dataset": jsonable(ds, story.root), "code": STAGE_VERSIONS["dataset"]},
        (),
        _style_loc(story),
    )
    lora = Node(
        "lora",
        "lora",
        {
            "dataset": dataset.key,
            "training": jsonable(style.lora.training, story.root),
            "base_model": style.base_model,
            "trainer": src.trainer_version,
            "code": STAGE_VERSIONS["lora"],
        },
        ("dataset",),
        _style_loc(story),
    )
    return [dataset, lora]


def _style_loc(story: Story) -> Loc:
    src = story.style.source
    return Loc(str(src), 1, 1) if src else Loc(str(story.path), 1, 1)


# -- statuses: small named checks, cheapest first -------------------------------------------

_WHY_BY_INPUT = {
    "prompt": "prompt changed",
    "negative": "negative changed",
    "seed": "seed changed",
    "panel_seed": "seed changed",
    "settings": "settings changed (steps, cfg, size or refine)",
    "lora": "style changed (LoRA)",
    "lora_scale": "style changed (LoRA scale)",
    "base_model": "style changed (base model)",
    "style": "style changed",
    "engine": "engine changed",
    "code": "code version changed",
    "version": "kolorsc version changed",
    "caption": "caption changed",
    "captions": "captions changed",
    "story": "story metadata changed",
    "panel": "panel settings or chosen image changed",
    "panels": "panels changed",
    "scores": "scores changed",
    "render": "image changed",
    "candidates": "candidate images changed",
    "panel_pngs": "panel images changed",
    "dataset": "dataset changed",
    "fingerprint": "dataset files changed",
    "training": "training settings changed",
    "trainer": "trainer version changed",
    "file_sha256": "LoRA file changed",
}


def check_corrupt(reason: str | None) -> list[str]:
    if reason and reason.startswith("corrupt: "):
        return [f"cache entry corrupt ({reason[len('corrupt: '):]}); deleted"]
    return []


def check_not_computed(node: Node, lock: LockFile | None) -> list[str]:
    old = lock.nodes.get(node.id) if lock else None
    if node.kind == "score" and old is not None and old.key == node.key and old.output is None:
        return ["not computed in the last build (scorer weights missing)"]
    return []


def check_new(node: Node, lock: LockFile | None) -> list[str]:
    return ["new node"] if lock is None or node.id not in lock.nodes else []


def check_inputs(node: Node, lock: LockFile | None) -> list[str]:
    """Which inputs differ from the last successful build, by their recorded digests."""
    if lock is None or node.id not in lock.nodes:
        return []
    old = lock.nodes[node.id]
    if old.key == node.key:
        return []
    new = node.input_digests()
    names = sorted(n for n in set(new) | set(old.inputs) if new.get(n) != old.inputs.get(n))
    reasons: list[str] = []
    for name in names:
        text = _WHY_BY_INPUT.get(name, f"{name} changed")
        if text not in reasons:
            reasons.append(text)
    return reasons or ["inputs changed"]


def resolve(plan: Plan, cache: Cache, lock: LockFile | None, verify: bool = True) -> Plan:
    """Set each node's status: cached when the cache holds a verified output for its key,
    else to-run with the reasons. A corrupt entry is deleted here (a miss, logged in `why`).

    A dataset whose LoRA is cached is not needed at all: skipped."""
    for node in plan.nodes:
        if node.status == SKIPPED:
            continue
        found = cache.lookup(node.key, verify=verify)
        if found.hit:
            node.status, node.why = CACHED, []
            continue
        node.status = TO_RUN
        node.why = (
            check_corrupt(found.reason)
            or check_not_computed(node, lock)
            or check_new(node, lock)
            or check_inputs(node, lock)
            or ["output missing from cache"]
        )
    _skip_unneeded_dataset(plan)
    return plan


def _skip_unneeded_dataset(plan: Plan) -> None:
    ids = {n.id: n for n in plan.nodes}
    if "dataset" in ids and "lora" in ids and ids["lora"].status == CACHED and ids["dataset"].status == TO_RUN:
        ids["dataset"].status = SKIPPED
        ids["dataset"].why = ["not needed: the LoRA is cached"]
