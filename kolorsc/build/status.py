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
from dataclasses import dataclass, field

from kolorsc.build.graph import DATASET, LORA, Graph, Node, NodeId
from kolorsc.build.lockfile import LockFile, LockRead, summarize
from kolorsc.cache import Cache, Entry, Lookup

CACHED, TO_RUN, SKIPPED = "cached", "to-run", "skipped"
_HEXLIKE = re.compile(r"^[0-9a-f-]{8,}$")

# How an input is named in a reason. "{kind}" is the node's kind.
_LABELS = {
    "prompt": "prompt",
    "negative": "negative",
    "seed": "seed",
    "panel_seed": "seed",
    "settings": "settings (steps, cfg, size or refine)",
    "lora": "style (LoRA)",
    "lora_scale": "LoRA scale",
    "base_model": "base model",
    "base_weights": "base model weights",
    "style": "style",
    "engine": "engine",
    "code": "{kind} code",
    "caption": "caption",
    "captions": "captions",
    "story": "story metadata",
    "panel": "panel settings or chosen image",
    "panels": "panels",
    "scores": "scores",
    "render": "image",
    "candidates": "candidate images",
    "panel_pngs": "panel images",
    "dataset": "dataset",
    "source": "dataset source",
    "training": "training settings",
    "file_sha256": "LoRA file",
    "scorer": "scorer",
    "fonts": "fonts",
    "preview": "engine",
}


# Inputs that are mappings of named parts: a change names the part ("engine code changed",
# "steps 50 → 30", "scorer aesthetic changed"). The prefix goes before the part's name.
_PARTS = {"engine": "engine", "scorer": "scorer", "story": "", "settings": "", "source": "dataset",
          "training": "training", "fonts": "fonts"}


@dataclass(frozen=True)
class PlannedNode:
    """A node with its status and the reasons it runs (or is skipped)."""

    node: Node
    status: str
    why: tuple[str, ...] = ()
    corrupt: bool = False  # the cache holds a damaged entry under its key (run discards it)
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
        return [f"cache entry corrupt ({found.reason[len('corrupt: '):]}); will be rebuilt"]
    return []


def check_new(node: Node, lock: LockFile | None) -> list[str]:
    return ["new node"] if lock is None or str(node.id) not in lock.nodes else []


def check_inputs(node: Node, lock: LockFile | None) -> list[str]:
    """Which inputs differ from the last successful build, named, with old → new values
    where the lock recorded them."""
    if lock is None or str(node.id) not in lock.nodes:
        return []
    old = lock.nodes[str(node.id)]
    if old.key == node.key:
        return []
    new = {name: summarize(value) for name, value in node.inputs.items()}
    reasons: list[str] = []
    for name in sorted(set(new) | set(old.inputs)):
        before, after = old.inputs.get(name), new.get(name)
        if before == after:
            continue
        label = _LABELS.get(name, name).format(kind=node.kind)
        for reason in _describe(name, label, before, after):
            if reason not in reasons:
                reasons.append(reason)
    return reasons or ["inputs changed"]


def _describe(name: str, label: str, before, after) -> list[str]:
    if name in _PARTS and isinstance(before, dict) and isinstance(after, dict):
        prefix = _PARTS[name]
        out = []
        for part in sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k)):
            what = f"{prefix} {part}".strip()
            old, new = before.get(part), after.get(part)
            shown = part != "code" and _shown(old) and _shown(new)
            out.append(f"{what} {old} → {new}" if shown else f"{what} changed")
        return out or [f"{label} changed"]
    if name != "code" and _shown(before) and _shown(after):
        return [f"{label} {before} → {after}"]
    return [f"{label} changed"]


def _shown(value) -> bool:
    """Small values are shown as they are; digests ("#…", code identities) and mappings are not."""
    if isinstance(value, str):
        return not value.startswith("#") and not _HEXLIKE.match(value)
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# -- the plan ------------------------------------------------------------------------------


def plan_of(graph: Graph, cache: Cache, lock_read: LockRead, lock_name: str = "lock file") -> Plan:
    """Every node's status against `cache` and the last lock file, read-only."""
    lock = lock_read.lock
    warnings = []
    if lock_read.problem:
        warnings.append(f"{lock_name}: {lock_read.problem}; building as if for the first time "
                        "(it is rewritten when the build succeeds)")
    planned = []
    for node in graph.nodes:
        if node.skipped is not None:
            planned.append(PlannedNode(node, SKIPPED, (node.skipped,)))
            continue
        found = cache.lookup(node.key)
        if found.hit:
            planned.append(PlannedNode(node, CACHED, entry=found.entry))
            continue
        why = (check_corrupt(found) or check_new(node, lock) or check_inputs(node, lock)
               or ["output missing from cache"])
        planned.append(PlannedNode(node, TO_RUN, tuple(why), corrupt=found.corrupt))
    return Plan(graph, _skip_unneeded_dataset(planned), lock, warnings)


def _skip_unneeded_dataset(planned: list[PlannedNode]) -> list[PlannedNode]:
    """A dataset whose LoRA is cached is not needed at all."""
    by_kind = {p.kind: p for p in planned if p.kind in (DATASET, LORA)}
    lora, dataset = by_kind.get(LORA), by_kind.get(DATASET)
    if lora and dataset and lora.status == CACHED and dataset.status == TO_RUN:
        return [PlannedNode(p.node, SKIPPED, ("not needed: the LoRA is cached",)) if p is dataset else p
                for p in planned]
    return planned
