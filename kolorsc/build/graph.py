"""The build graph, pure: one node per output, keyed by the hash of everything that makes it.

    make_graph(story, panels, identities) -> Graph

A node's key is the sha256 of the canonical JSON of its kind and its declared inputs: its
own settings, the keys of the nodes it reads, the identity of the code that makes it
(`identities.code[kind]`, derived from the source by kolorsc.codeid) and the identity of
every model or font it uses (engine weights, scorer weights, font files). Those identities
are resolved before the graph is built (kolorsc.build.inputs); this module computes from
values only and touches no file at all, so the same story and identities always give the
same keys, and planning can say exactly what a build will do before anything runs.

Nodes, in run order (`KINDS`):

    dataset            prepared training images (kolors engine, style trained from a dataset)
    lora               the style LoRA (a reused `path:` file, or trained from `dataset`)
    picture/C          character C's reference picture file, read and checked against its hash
    sheet/C            character C's sheet (`reference: generate`): one render of C alone
    render/NN/seed-S   one candidate image of panel NN (the engine's work)
    score/NN/seed-S    aesthetic score of one candidate (not for preview drafts)
    reference/C        the scorer's embedding of C's reference picture (per-character consistency)
    select/NN          which candidate of panel NN goes out (best of N, else candidate 1)
    panel/NN           panels/NN.png with the generation parameters in PNG text chunks
    storyboard, pdf, scores, page (index.html), thumbnail (of the storyboard), bundle

Decisions:
- The preview engine draws without a LoRA: its dataset and lora nodes are skipped, and its
  renders carry no LoRA key. Drafts are not scored, and only candidate 1 of each panel is
  drawn, as nothing could choose among drafts.
- The caption is not a render input: editing it re-emits panel PNGs, storyboard, PDF,
  scores.json and bundle, and renders nothing.
- Character consistency (kolorsc.consistency) adds to a render's inputs only when it is on
  for the panel: `ip_adapter` (character -> scale of each reference it uses),
  `shared_attention` (the sharing settings, this panel's rate and what decides each identity
  panel's image), `pictures` (character -> the picture's identity: the file's sha256, or the
  sheet node's key; the identity panels' pictures included) and `consistency_engine` (the
  engine's consistency code and, with pictures, the adapter's files). A panel without it
  keeps exactly the key it had before consistency existed (CONSISTENCY_INPUTS are absent).
  The preview engine cannot condition on pictures: its drafts note the references and
  sharing (keyed by `ip_adapter` and `shared_attention`) and neither read nor key pictures.
- A score made without the scorer's weights is a record that says so; the scorer's identity
  (absent) is in its key, so once the weights arrive every score node has a new key and
  runs, and everything made from scores follows. Nothing is ever cached under a key that
  does not say what made it.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePath

from kolorsc.consistency import (
    PanelConsistency,
    character_sheet_panel,
    generated_characters,
    panel_consistency,
    panels_showing,
    pictures_used,
    render_key_inputs,
)
from kolorsc.hashing import digest
from kolorsc.i18n import _
from kolorsc.prompts import Panel
from kolorsc.spec.model import Loc, Story

DATASET, LORA, RENDER, SCORE, SELECT = "dataset", "lora", "render", "score", "select"
PICTURE, SHEET, REFERENCE = "picture", "sheet", "reference"
PANEL, STORYBOARD, PDF, SCORES, BUNDLE = "panel", "storyboard", "pdf", "scores", "bundle"
PAGE, THUMBNAIL = "page", "thumbnail"
EMIT_KINDS = (PANEL, STORYBOARD, PDF, SCORES, PAGE, THUMBNAIL, BUNDLE)
KINDS = (DATASET, LORA, PICTURE, SHEET, RENDER, SCORE, REFERENCE, SELECT, *EMIT_KINDS)
CHARACTER_KINDS = (PICTURE, SHEET, REFERENCE)  # nodes about one character: "sheet/girl"
# What character consistency adds to a render's inputs, only when it is on for its panel.
CONSISTENCY_INPUTS = ("ip_adapter", "shared_attention", "pictures", "consistency_engine")

# Fields of the story model that never change an output: source positions, where files live.
_COSMETIC = {"loc", "prompt_loc", "negative_loc", "locs", "source", "path", "root"}


# -- node ids ------------------------------------------------------------------------------

# kind, then a panel number (and a candidate seed), or a character key (a template name:
# never all digits, so "sheet/girl" and "select/03" cannot be confused)
_ID = re.compile(r"^(?P<kind>[a-z-]+)(?:/(?P<panel>\d+)(?:/seed-(?P<seed>-?\d+))?|/(?P<name>[A-Za-z_][A-Za-z0-9_]*))?$")


@dataclass(frozen=True, order=True)
class NodeId:
    """A node's identity in its story: kind, panel number, candidate seed, or the key of the
    character it is about. Shown as "render/03/seed-3", "select/03", "pdf", "sheet/girl"; lock
    files store that text (`parse` reads it)."""

    kind: str
    panel: int | None = None
    seed: int | None = None
    name: str = ""  # a character key (sheet/girl, picture/girl, reference/girl)

    def __str__(self) -> str:
        if self.name:
            return f"{self.kind}/{self.name}"
        if self.panel is None:
            return self.kind
        if self.seed is None:
            return f"{self.kind}/{self.panel:02d}"
        return f"{self.kind}/{self.panel:02d}/seed-{self.seed}"

    @classmethod
    def parse(cls, text: str) -> NodeId:
        m = _ID.match(text)
        if not m:
            raise ValueError(f"not a node id: {text!r}")
        panel, seed, name = m.group("panel"), m.group("seed"), m.group("name")
        if name and m.group("kind") not in CHARACTER_KINDS:
            raise ValueError(f"not a node id: {text!r} ({m.group('kind')} nodes are not about a character)")
        return cls(m.group("kind"), int(panel) if panel else None, int(seed) if seed is not None else None, name or "")

    def sibling(self, kind: str) -> NodeId:
        """The node of another kind for the same panel and candidate (render -> score), or
        the same character (picture -> reference)."""
        return NodeId(kind, self.panel, self.seed, self.name)


@dataclass(frozen=True)
class Node:
    id: NodeId
    inputs: dict  # resolved inputs (plain JSON data); upstream nodes appear by key
    deps: tuple[NodeId, ...] = ()  # the nodes this one reads
    loc: Loc | None = None  # where in the story (or style) this node comes from
    output: str | None = None  # file inside build/<id>/, for nodes that become one
    skipped: str | None = None  # why this node is not part of this build (preview: no LoRA)
    key: str = field(init=False, default="")

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", digest({"kind": self.id.kind, "inputs": self.inputs}))

    @property
    def kind(self) -> str:
        return self.id.kind


# -- what the graph needs to know from outside ---------------------------------------------


@dataclass(frozen=True)
class LoraSource:
    """The style's LoRA as resolved before planning: a file (`file_sha256` of `lora.path`) or
    a training run (`dataset` facts: the source files' hashes or the ModelScope revision)."""

    mode: str  # "file" or "train"
    scale: float
    file_sha256: str | None = None
    dataset: dict | None = None  # kolorsc.data.dataset_facts(): what the prepared data depends on


@dataclass(frozen=True)
class Identities:
    """Everything outside the story that a node's bytes depend on, resolved by
    kolorsc.build.inputs (read-only) so that building the graph touches nothing."""

    engine: dict  # Engine.identity(): name, its code, its model files, precision, sampler
    preview: bool
    code: dict  # node kind -> identity of the code that makes it (kolorsc.codeid)
    fonts: dict = field(default_factory=dict)  # kolorsc.fonts.identity(): files drawn with
    scorer: dict | None = None  # scorer identity (weights fingerprint, or absent); None: no scores
    lora: LoraSource | None = None
    # Character consistency (kolorsc.consistency), resolved for a real engine only when the story
    # uses it: the sha256 of every reference picture file a render uses, by character; and the
    # engine's Engine.consistency_identity() for renders with pictures ("references") and for
    # renders that only share attention ("sharing").
    pictures: dict = field(default_factory=dict)
    consistency: dict = field(default_factory=dict)


# -- the graph -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Graph:
    story: Story
    panels: tuple[Panel, ...]
    nodes: tuple[Node, ...]  # in run order
    identities: Identities

    @property
    def preview(self) -> bool:
        return self.identities.preview

    @property
    def engine(self) -> dict:
        return self.identities.engine

    def node(self, node_id: NodeId | str) -> Node:
        wanted = NodeId.parse(node_id) if isinstance(node_id, str) else node_id
        for n in self.nodes:
            if n.id == wanted:
                return n
        raise KeyError(str(node_id))

    def of_kind(self, kind: str) -> list[Node]:
        return [n for n in self.nodes if n.kind == kind]

    def panel(self, index: int) -> Panel:
        return next(p for p in self.panels if p.index == index)

    def render_panel(self, node_id: NodeId) -> Panel:
        """What a render or sheet node draws: panel NN, or character C's sheet."""
        if node_id.kind == SHEET:
            return character_sheet_panel(self.story, node_id.name)
        return self.panel(node_id.panel)

    def downstream(self, node_id: NodeId) -> set[NodeId]:
        """Every node that reads `node_id`, directly or not."""
        found: set[NodeId] = set()
        frontier = {node_id}
        while frontier:
            frontier = {n.id for n in self.nodes if set(n.deps) & frontier and n.id not in found}
            found |= frontier
        return found


def jsonable(value, root: Path | None = None):
    """Plain JSON data for hashing: dataclasses to dicts (cosmetic fields left out), tuples to
    lists, paths relative to the project root (the same story in another checkout has the
    same keys)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name), root) for f in dataclasses.fields(value)
                if f.name not in _COSMETIC}
    if isinstance(value, dict):
        return {str(k): jsonable(v, root) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v, root) for v in value]
    if isinstance(value, PurePath):
        if root is not None:
            try:
                return Path(value).relative_to(root).as_posix()
            except ValueError:
                pass
        return Path(value).as_posix()
    if isinstance(value, Loc):
        return None
    return value


def make_graph(story: Story, panels: list[Panel] | tuple[Panel, ...], ids: Identities) -> Graph:
    """Every node of the story's build, in run order, with its key."""
    panels = tuple(panels)
    nodes: list[Node] = []

    # 1. Dataset and LoRA (the preview engine draws without a LoRA).
    lora = _lora_nodes(story, ids)
    nodes += lora
    lora_node = lora[-1] if lora and lora[-1].skipped is None else None
    lora_inputs = {"lora": lora_node.key if lora_node else None,
                   "lora_scale": ids.lora.scale if lora_node else None}

    # 2. Characters' pictures: reference files (read by a real engine only) and sheets.
    pcs = {pc.index: pc for pc in panel_consistency(story)}
    pictures = _picture_nodes(story, pcs, ids, lora_inputs, lora_node)
    nodes += sorted(pictures.values(), key=lambda n: KINDS.index(n.kind))
    picture_ids = {c: n.inputs["picture_sha256"] if n.kind == PICTURE else n.key for c, n in pictures.items()}

    # 3. Renders, scores and selection, panel by panel.
    by_index = {p.index: p for p in panels}
    renders = {p.index: [_render(story, p, s, ids, lora_inputs, lora_node,
                                 _consistency(pcs.get(p.index), by_index, pcs, pictures, picture_ids, ids))
                         for s in _seeds(p, ids)] for p in panels}
    scores = {p.index: [_score(r, ids) for r in renders[p.index]] if ids.scorer is not None else [] for p in panels}
    every_score = [s for ss in scores.values() for s in ss]
    references = _reference_nodes(pictures, picture_ids, ids)
    shown = panels_showing(story, list(pcs.values())) if ids.scorer is not None else {}
    selects = {p.index: _select(story, p, renders[p.index], every_score, references, shown, ids) for p in panels}
    nodes += [r for p in panels for r in renders[p.index]]
    nodes += every_score
    nodes += references
    nodes += [selects[p.index] for p in panels]

    # 4. Emitted outputs: keyed by what they show (captions, settings, chosen images, scores).
    shared = {
        "story": _story_meta(story),
        "engine": ids.engine,
        "preview": ids.preview,
        "lora": lora_node.key if lora_node else None,
        "scores": {str(s.id): s.key for s in every_score},
    }
    if shown:  # per-character consistency: who is in which panel, by name
        shared["characters"] = {c: {"name": story.characters[c].name, "panels": i} for c, i in shown.items()}
    if references:
        shared["references"] = {str(r.id): r.key for r in references}
    views = {p.index: _panel_view(p, selects[p.index]) for p in panels}
    # A panel's PNG records its coherence with the other panels' chosen images: every
    # choice and every candidate is an input, not only its own.
    chosen = {"selects": [selects[p.index].key for p in panels]}
    upstream = (*(s.id for s in selects.values()), *(r.id for p in panels for r in renders[p.index]),
                *(s.id for s in every_score), *(r.id for r in references))
    panel_nodes = []
    for p in panels:
        inputs = {**shared, **chosen, "caption": p.caption, "panel": views[p.index], "code": ids.code[PANEL]}
        panel_nodes.append(Node(NodeId(PANEL, p.index), inputs, upstream, _scene_loc(story, p),
                                output=f"panels/{p.index:02d}.png"))
    nodes += panel_nodes

    whole = {**shared, "captions": [p.caption for p in panels], "panels": [views[p.index] for p in panels]}
    everything = tuple(n.id for n in nodes if n.skipped is None and n.kind != DATASET)
    files = {STORYBOARD: "storyboard.png", PDF: "storyboard.pdf", SCORES: "scores.json", PAGE: "index.html",
             BUNDLE: f"{story.bundle_name}.zip"}
    sheets = {c: {"key": n.key, "name": story.characters[c].name} for c, n in pictures.items() if n.kind == SHEET}
    story_loc = Loc(str(story.path), 1, 1)
    for kind, name in files.items():
        inputs = {**whole, "code": ids.code[kind]}
        if kind in (STORYBOARD, PDF):
            inputs["fonts"] = ids.fonts
            if sheets:  # the cover shows the character sheets
                inputs["sheets"] = sheets
        if kind == BUNDLE:
            inputs["panel_pngs"] = [n.key for n in panel_nodes]
        nodes.append(Node(NodeId(kind), inputs, everything, story_loc, output=name))
    # The collection index shows each story by a small copy of its storyboard.
    board = nodes[-len(files)]
    nodes.insert(len(nodes) - 1, Node(NodeId(THUMBNAIL), {"storyboard": board.key, "code": ids.code[THUMBNAIL]},
                                      (board.id,), story_loc, output="storyboard-thumb.jpg"))
    return Graph(story, panels, tuple(nodes), ids)


def _seeds(p: Panel, ids: Identities) -> list[int]:
    return p.candidate_seeds()[:1] if ids.preview else p.candidate_seeds()


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
        "file": story.path.name,  # the model card names it
        "style": jsonable(story.style, story.root),
    }


def _panel_view(p: Panel, select: Node) -> dict:
    return {"index": p.index, "shot": p.shot, "candidates": p.candidates, "settings": p.settings(),
            "select": select.key}


def _render_inputs(story: Story, p: Panel, seed: int, ids: Identities, lora_inputs: dict, code: str) -> dict:
    settings = p.settings()
    return {
        "prompt": settings.pop("prompt"),
        "negative": settings.pop("negative"),
        "panel_seed": settings.pop("seed"),
        "seed": seed,
        "settings": settings,
        "base_model": story.style.base_model,
        "engine": ids.engine,
        **lora_inputs,
        "code": code,
    }


def _render(story: Story, p: Panel, seed: int, ids: Identities, lora_inputs: dict, lora_node: Node | None,
            consistency: tuple[dict, tuple[NodeId, ...]] = ({}, ())) -> Node:
    extra, picture_deps = consistency
    inputs = {**_render_inputs(story, p, seed, ids, lora_inputs, ids.code[RENDER]), **extra}
    deps = ((lora_node.id,) if lora_node else ()) + picture_deps
    return Node(NodeId(RENDER, p.index, seed), inputs, deps, _scene_loc(story, p))


# -- character consistency -----------------------------------------------------------------


def _consistency(pc: PanelConsistency | None, by_index: dict, pcs: dict, pictures: dict[str, Node],
                 picture_ids: dict[str, str], ids: Identities) -> tuple[dict, tuple[NodeId, ...]]:
    """What consistency adds to a panel's render inputs, and the picture nodes it reads; nothing
    when it is off for the panel (the key stays the one a story without consistency has)."""
    if pc is None or not pc.on:
        return {}, ()
    # Two flat inputs rather than one nested block, so the lock records each value and a plan
    # can say "ip_adapter scale of girl 0.5 → 0.7" or "shared_attention rate 0.5 → 0.3".
    keyed = render_key_inputs(pc, by_index, pcs, None)
    extra = {}
    if pc.references:
        extra["ip_adapter"] = {r.character: r.scale for r in pc.references}
    if pc.sharing is not None:
        extra["shared_attention"] = keyed["sharing"]
    if ids.preview:  # a draft notes the references and the sharing; it never sees a picture
        return extra, ()
    used = pictures_used(pc, pcs)
    if used:
        extra["pictures"] = {c: picture_ids[c] for c in used}
    extra["consistency_engine"] = _resolved(ids.consistency, "references" if used else "sharing")
    return extra, tuple(pictures[c].id for c in used)


def _picture_nodes(story: Story, pcs: dict[int, PanelConsistency], ids: Identities, lora_inputs: dict,
                   lora_node: Node | None) -> dict[str, Node]:
    """character -> the node whose output is its reference picture: `picture/C` (a file,
    checked against the sha256 planning read; real engines only) or `sheet/C` (rendered)."""
    out = {}
    generated = generated_characters(story)
    for c in generated:
        panel = character_sheet_panel(story, c)
        inputs = _render_inputs(story, panel, panel.seed, ids, lora_inputs, ids.code[SHEET])
        out[c] = Node(NodeId(SHEET, name=c), inputs, (lora_node.id,) if lora_node else (), _character_loc(story, c),
                      output=f"characters/{c}.png")
    if not ids.preview:
        files = dict.fromkeys(r.character for pc in pcs.values() for r in pc.references if r.character not in generated)
        for c in files:
            inputs = {"picture_sha256": _resolved(ids.pictures, c), "code": ids.code[PICTURE]}
            out[c] = Node(NodeId(PICTURE, name=c), inputs, (), _character_loc(story, c))
    return out


def _reference_nodes(pictures: dict[str, Node], picture_ids: dict[str, str], ids: Identities) -> list[Node]:
    """The scorer's embedding of each picture a render uses (its panels are compared with it)."""
    if ids.preview or ids.scorer is None:
        return []
    return [Node(NodeId(REFERENCE, name=c), {"picture": picture_ids[c], "scorer": ids.scorer,
                                              "code": ids.code[REFERENCE]}, (n.id,), n.loc)
            for c, n in pictures.items()]


def consistent(node: Node) -> bool:
    """Does character consistency take part in this render (references or shared attention)?"""
    return "ip_adapter" in node.inputs or "shared_attention" in node.inputs


def shares_attention(node: Node) -> bool:
    """A render that shares attention with its story's identity panels: the engine must get it
    in one call with the story's other sharing renders (kolorsc.build.run, Task.unsplittable)."""
    return "shared_attention" in node.inputs


def _resolved(mapping: dict, key: str):
    """An identity planning resolved (kolorsc.build.inputs); missing is a bug, never a key without it."""
    if key not in mapping:
        raise ValueError(f"identity {key!r} was not resolved before planning (kolorsc.build.inputs.identities)")
    return mapping[key]


def _character_loc(story: Story, key: str) -> Loc:
    return story.locs.get(f"characters.{key}.reference") or story.locs.get(f"characters.{key}") or Loc(
        str(story.path), 1, 1)


def _score(render: Node, ids: Identities) -> Node:
    # Keyed by the render's key (input-addressed); the stored record also names the image
    # hash it was computed on.
    inputs = {"render": render.key, "scorer": ids.scorer, "code": ids.code[SCORE]}
    return Node(render.id.sibling(SCORE), inputs, (render.id,), render.loc)


def _select(story: Story, p: Panel, renders: list[Node], scores: list[Node], references: list[Node],
            shown: dict[str, list[int]], ids: Identities) -> Node:
    # Every score of the story: among tied candidates the objective prefers the one whose
    # characters look most like themselves in the other panels and their reference pictures,
    # then the one closest to the other panels (coherence), so other panels' scores matter too.
    inputs = {
        "candidates": {str(r.id): r.key for r in renders},
        "scores": {str(s.id): s.key for s in scores},
        "code": ids.code[SELECT],
    }
    if shown:
        inputs["characters"] = shown
    if references:
        inputs["references"] = {str(r.id): r.key for r in references}
    deps = tuple(r.id for r in renders) + tuple(s.id for s in scores) + tuple(r.id for r in references)
    return Node(NodeId(SELECT, p.index), inputs, deps, _scene_loc(story, p))


def _lora_nodes(story: Story, ids: Identities) -> list[Node]:
    style = story.style
    if style.lora is None:
        return []
    loc = _style_loc(story)
    if ids.preview or ids.lora is None:
        kinds = (DATASET, LORA) if style.lora.training else (LORA,)
        why = _("preview engine draws without a LoRA")
        return [Node(NodeId(k), {"style": style.id}, (), loc, skipped=why) for k in kinds]
    src = ids.lora
    if src.mode == "file":
        return [Node(NodeId(LORA), {"file_sha256": src.file_sha256, "code": ids.code[LORA]}, (), loc)]
    dataset = Node(
        NodeId(DATASET),
        {"source": src.dataset, "dataset": jsonable(style.lora.dataset, story.root), "code": ids.code[DATASET]},
        (),
        loc,
    )
    lora = Node(
        NodeId(LORA),
        {
            "dataset": dataset.key,
            "training": jsonable(style.lora.training, story.root),
            "base_model": style.base_model,
            "base_weights": ids.engine.get("files"),  # training reads the Kolors weights too
            "code": ids.code[LORA],
        },
        (dataset.id,),
        loc,
    )
    return [dataset, lora]


def _style_loc(story: Story) -> Loc:
    src = story.style.source
    return Loc(str(src), 1, 1) if src else Loc(str(story.path), 1, 1)
