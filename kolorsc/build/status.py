"""What a build would do, and why: the graph compared with the cache and the lock file.

    plan_of(graph, cache, lock_read) -> Plan

Read-only by construction: it looks entries up (Cache.lookup never deletes) and reads the
lock file, and writes nothing — no deletions, no memos — so `kolorsc plan` and
`build --dry-run` leave the cache byte-identical. The run (kolorsc.build.run) is what
discards a corrupt entry and rebuilds it.

Each to-run node says why, from small named checks taken cheapest first (DVC's `changed()`):
the cache entry is corrupt, the node is new, an input differs from the lock file (naming it,
with old → new values when they are small: "seed 3 → 5", "pdf code changed", "scorer
weights changed"), or the output is simply missing from this cache.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from kolorsc.build.graph import DATASET, LORA, Graph, Node, NodeId
from kolorsc.build.lockfile import LockFile, LockRead, summarize
from kolorsc.build.where import input_loc
from kolorsc.cache import Cache, Entry, Lookup
from kolorsc.i18n import N_, _
from kolorsc.spec.model import Loc

CACHED, TO_RUN, SKIPPED = "cached", "to-run", "skipped"
_HEXLIKE = re.compile(r"^[0-9a-f-]{8,}$")

# How an input is named in a reason. "{kind}" is the node's kind.
_LABELS = {
    "prompt": N_("prompt"),
    "negative": N_("negative"),
    "seed": N_("seed"),
    "panel_seed": N_("seed"),
    "settings": N_("settings (steps, cfg, size or refine)"),
    "lora": N_("style (LoRA)"),
    "lora_scale": N_("LoRA scale"),
    "base_model": N_("base model"),
    "base_weights": N_("base model weights"),
    "style": N_("style"),
    "engine": N_("engine"),
    "code": N_("{kind} code"),
    "caption": N_("caption"),
    "captions": N_("captions"),
    "story": N_("story metadata"),
    "panel": N_("panel settings or chosen image"),
    "panels": N_("panels"),
    "scores": N_("scores"),
    "render": N_("image"),
    "candidates": N_("candidate images"),
    "panel_pngs": N_("panel images"),
    "dataset": N_("dataset"),
    "source": N_("dataset source"),
    "training": N_("training settings"),
    "file_sha256": N_("LoRA file"),
    "scorer": N_("scorer"),
    "fonts": N_("fonts"),
    "preview": N_("engine"),
    "ip_adapter": N_("ip_adapter scales"),
    "shared_attention": N_("shared_attention settings"),
    "pictures": N_("reference pictures"),
    "consistency_engine": N_("consistency engine"),
    "picture_sha256": N_("reference picture"),
    "picture": N_("reference picture"),
    "characters": N_("characters"),
    "references": N_("reference pictures' embeddings"),
    "sheets": N_("character sheets"),
}


# Inputs that are mappings of named parts: a change names the part ("engine code changed",
# "steps 50 → 30", "scorer aesthetic changed"). The prefix goes before the part's name, or is
# a template with the part in it: a render's pictures and scales are by character ("reference
# picture of girl changed", "ip_adapter scale of girl 0.5 → 0.7").
_PARTS = {"engine": N_("engine"), "scorer": N_("scorer"), "story": "", "settings": "", "source": N_("dataset"),
          "training": N_("training"), "fonts": N_("fonts"), "consistency_engine": N_("consistency engine"),
          "shared_attention": "shared_attention",  # the setting's name as the story writes it
          "pictures": N_("reference picture of {part}"), "ip_adapter": N_("ip_adapter scale of {part}")}


@dataclass(frozen=True)
class Change:
    """One input that differs from the last build: what (as said in a reason), old and new
    values when small enough to show, and the line of the story or style that holds it."""

    what: str  # "seed", "steps", "style", "prompt", "pdf code"
    old: object = None
    new: object = None
    shown: bool = False  # old and new are small values, shown as "old → new"
    loc: Loc | None = None
    by: str | None = None  # what changed it, when that is another input ("style ink-wash → anime")

    @property
    def reason(self) -> str:
        """As said to a person, in their language (`what` and `by` stay English in JSON)."""
        what = _say(self.what)
        text = (_("{what} {old} → {new}").format(what=what, old=_value(self.old), new=_value(self.new)) if self.shown
                else _("{what} changed").format(what=what))
        if self.by:
            by = _("the style") if self.by == "the style" else _say("style") + self.by[len("style"):]
            text += _(" by {cause}").format(cause=by)
        return text + (_(" at {file}:{line}").format(file=self.loc.file, line=self.loc.line) if self.loc else "")

    def to_json(self, relative=lambda f: f) -> dict:
        loc = self.loc
        return {"what": self.what, "old": self.old if self.shown else None, "new": self.new if self.shown else None,
                "by": self.by,
                "file": relative(loc.file) if loc else None, "line": loc.line if loc else None,
                "col": loc.col if loc else None}


@dataclass(frozen=True)
class PlannedNode:
    """A node with its status and the reasons it runs (or is skipped)."""

    node: Node
    status: str
    why: tuple[str, ...] = ()
    corrupt: bool = False  # the cache holds a damaged entry under its key (run discards it)
    changes: tuple[Change, ...] = ()  # the inputs that differ from the lock file, with their lines
    entry: Entry | None = None  # the verified cache entry of a cached node

    @property
    def id(self) -> NodeId:
        return self.node.id

    @property
    def kind(self) -> str:
        return self.node.kind

    @property
    def key(self) -> str:
        return self.node.key

    @property
    def loc(self):
        return self.node.loc

    @property
    def output(self) -> str | None:
        return self.node.output


@dataclass
class Plan:
    graph: Graph
    nodes: list[PlannedNode]  # in run order
    lock: LockFile | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def story(self):
        return self.graph.story

    @property
    def panels(self):
        return self.graph.panels

    @property
    def engine(self) -> dict:
        return self.graph.engine

    @property
    def preview(self) -> bool:
        return self.graph.preview

    def node(self, node_id: NodeId | str) -> PlannedNode:
        wanted = NodeId.parse(node_id) if isinstance(node_id, str) else node_id
        for n in self.nodes:
            if n.id == wanted:
                return n
        raise KeyError(str(node_id))

    def of_kind(self, kind: str) -> list[PlannedNode]:
        return [n for n in self.nodes if n.kind == kind]

    def to_run(self) -> list[PlannedNode]:
        return [n for n in self.nodes if n.status == TO_RUN]

    def counts(self) -> dict[str, int]:
        out = {CACHED: 0, TO_RUN: 0, SKIPPED: 0}
        for n in self.nodes:
            out[n.status] += 1
        return out


# -- the checks ----------------------------------------------------------------------------


def check_corrupt(found: Lookup) -> list[str]:
    if found.corrupt:
        return [_("cache entry corrupt ({reason}); will be rebuilt").format(reason=found.reason[len("corrupt: "):])]
    return []


def check_new(node: Node, lock: LockFile | None) -> list[str]:
    return [_("new node")] if lock is None or str(node.id) not in lock.nodes else []


def check_inputs(node: Node, lock: LockFile | None, story=None) -> list[str]:
    """Which inputs differ from the last successful build, named, with old → new values
    where the lock recorded them (and the line that holds each, given the story)."""
    changes = input_changes(node, lock, story)
    if changes is None:
        return []
    return [c.reason for c in changes] or [_("inputs changed")]


def input_changes(node: Node, lock: LockFile | None, story=None) -> list[Change] | None:
    """The changed inputs of a node the lock knows under another key; None when the lock does
    not know the node or has the same key."""
    if lock is None or str(node.id) not in lock.nodes:
        return None
    return entry_changes(node, lock.nodes[str(node.id)], story)


def entry_changes(node: Node, old, story=None) -> list[Change] | None:
    """The inputs of `node` that differ from lock entry `old`; None when the keys are equal."""
    if old.key == node.key:
        return None
    new = {name: summarize(value) for name, value in node.inputs.items()}
    changes: list[Change] = []
    for name in sorted(set(new) | set(old.inputs)):
        before, after = old.inputs.get(name), new.get(name)
        if before == after:
            continue
        label = _LABELS.get(name, name).format(kind=node.kind)
        for change in _describe(name, label, before, after):
            if story is not None:
                change = replace(change, loc=input_loc(story, node.id, name, change.part))
            if change.reason not in [c.reason for c in changes]:
                changes.append(change)
    return changes


@dataclass(frozen=True)
class _Part(Change):
    part: str | None = None


def _describe(name: str, label: str, before, after) -> list[_Part]:
    if name in _PARTS and isinstance(before, dict) and isinstance(after, dict):
        prefix = _PARTS[name]
        out = []
        for part in sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k)):
            what = prefix.format(part=part) if "{part}" in prefix else f"{prefix} {part}".strip()
            old, new = before.get(part), after.get(part)
            shown = part != "code" and _shown(old) and _shown(new)
            out.append(_Part(what, old, new, shown, part=part))
        return out or [_Part(label)]
    if name != "code" and _shown(before) and _shown(after):
        return [_Part(label, before, after, True)]
    return [_Part(label)]


_FULL_LABELS = set(_LABELS.values())
_PREFIXES = {p for p in _PARTS.values() if p and "{part}" not in p}
_TEMPLATES = {re.compile(re.escape(p).replace(re.escape("{part}"), "(?P<part>.+)")): p
              for p in _PARTS.values() if "{part}" in p}


def _say(what: str) -> str:
    """A change's `what` ("seed", "pdf code", "training rank") in the current language: labels and
    prefixes are translated, the names of parts (rank, steps) are field names and stay."""
    if what in _FULL_LABELS:
        return _(what)
    if what.endswith(" code"):
        return _("{kind} code").format(kind=what[: -len(" code")])
    for pattern, template in _TEMPLATES.items():
        m = pattern.fullmatch(what)
        if m:
            return _(template).format(part=m.group("part"))
    head, _sep, tail = what.partition(" ")
    if head in _PREFIXES and tail:
        return f"{_(head)} {tail}"
    return what


def _value(value) -> str:
    """A recorded value as shown: a summary with an id ("ink-wash#3f2a…") by its id."""
    if isinstance(value, str) and "#" in value and not value.startswith("#"):
        return value.split("#", 1)[0]
    return str(value)


def _shown(value) -> bool:
    """Small values are shown as they are; digests ("#…", code identities) and mappings are not;
    a summary with an id ("ink-wash#3f2a…", kolorsc.build.lockfile) by its id."""
    if isinstance(value, str):
        return not value.startswith("#") and not _HEXLIKE.match(value)
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# -- the plan ------------------------------------------------------------------------------


def plan_of(graph: Graph, cache: Cache, lock_read: LockRead, lock_name: str = "lock file") -> Plan:
    """Every node's status against `cache` and the last lock file, read-only."""
    lock = lock_read.lock
    warnings = []
    if lock_read.problem:
        warnings.append(_("{lock}: {problem}; building as if for the first time (it is rewritten when the build "
                          "succeeds)").format(lock=lock_name, problem=lock_read.problem))
    planned = []
    restyled = _style_change(graph, lock)
    predecessors = _predecessors(graph, lock)
    for node in graph.nodes:
        if node.skipped is not None:
            planned.append(PlannedNode(node, SKIPPED, (node.skipped,)))
            continue
        found = cache.lookup(node.key)
        if found.hit:
            planned.append(PlannedNode(node, CACHED, entry=found.entry))
            continue
        before = predecessors.get(node.id)
        changes = (entry_changes(node, lock.nodes[str(before)], graph.story) if before is not None
                   else input_changes(node, lock, graph.story)) or []
        changes = _blame_style(changes, restyled)
        new = check_new(node, lock) if before is None else []
        why = (check_corrupt(found) or new or [c.reason for c in changes]
               or ([_("inputs changed")] if _changed_key(node, lock) else [_("output missing from cache")]))
        planned.append(PlannedNode(node, TO_RUN, tuple(why), corrupt=found.corrupt, changes=tuple(changes)))
    return Plan(graph, _skip_unneeded_dataset(planned), lock, warnings)


def _predecessors(graph: Graph, lock: LockFile | None) -> dict[NodeId, NodeId]:
    """A candidate's id holds its seed (render/03/seed-5): when the seed changes, the node of
    the last build it replaces is the one of the same kind and panel that is gone, paired in
    seed order, so the plan can say "seed 3 → 5" instead of "new node"."""
    if lock is None:
        return {}
    old: dict[tuple, list[NodeId]] = {}
    for text in lock.nodes:
        try:
            nid = NodeId.parse(text)
        except ValueError:
            continue
        if nid.seed is not None:
            old.setdefault((nid.kind, nid.panel), []).append(nid)
    current = {n.id for n in graph.nodes}
    out: dict[NodeId, NodeId] = {}
    for (kind, panel), ids in old.items():
        gone = sorted((i for i in ids if i not in current), key=lambda i: i.seed)
        new = sorted((n.id for n in graph.nodes if n.kind == kind and n.id.panel == panel
                      and n.id.seed is not None and str(n.id) not in lock.nodes), key=lambda i: i.seed)
        out.update(zip(new, gone))
    return out


def _style_change(graph: Graph, lock: LockFile | None) -> Change | None:
    """The story's style, when it differs from the last build (as the emitted nodes record it)."""
    for node in graph.nodes:
        if "story" in node.inputs:
            for change in input_changes(node, lock, graph.story) or []:
                if change.what == "style":
                    return change
            return None
    return None


def _blame_style(changes: list[Change], restyled: Change | None) -> list[Change]:
    """A render's prompt and negative hold the style's trigger and negative: when the style
    changed, that is the line that changed them."""
    if restyled is None:
        return changes
    by = f"style {_value(restyled.old)} → {_value(restyled.new)}" if restyled.shown else "the style"
    return [replace(c, by=by, loc=restyled.loc)
            if c.what in ("prompt", "negative") and not c.shown else c for c in changes]


def _changed_key(node: Node, lock: LockFile | None) -> bool:
    return lock is not None and str(node.id) in lock.nodes and lock.nodes[str(node.id)].key != node.key


def _skip_unneeded_dataset(planned: list[PlannedNode]) -> list[PlannedNode]:
    """A dataset whose LoRA is cached is not needed at all."""
    by_kind = {p.kind: p for p in planned if p.kind in (DATASET, LORA)}
    lora, dataset = by_kind.get(LORA), by_kind.get(DATASET)
    if lora and dataset and lora.status == CACHED and dataset.status == TO_RUN:
        return [PlannedNode(p.node, SKIPPED, (_("not needed: the LoRA is cached"),)) if p is dataset else p
                for p in planned]
    return planned
