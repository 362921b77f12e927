"""The adapter between `kolorsc diff` and the build core: the only module of kolorsc.review
that imports the build core (graph, inputs, lock file format) or the engines.

    engine(name, models_dir, cache_dir) -> Engine          the engine whose keys we compute
    lora_source(story, cache, models_dir) -> LoraSource     what the LoRA node is keyed by
    render_keys(story, panels, engine, cache, lora)         keys the current code gives
    lock_render_keys(lock_path, cache)                      keys a lock file recorded
    intent_digests(story, panels)                           the engine-free inputs of each render,
                                                            to tell whether a lock file is stale

Everything else in kolorsc.review works on `RenderKey` values, so when the build core
changes only this file follows. Looking a key up in the cache never writes: a missing or
broken entry is simply "not in the cache".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from kolorsc import paths
from kolorsc.build import inputs, lockfile
from kolorsc.build.graph import RENDER, Identities, LoraSource, NodeId, make_graph
from kolorsc.build.lockfile import summarize
from kolorsc.build.stages import code_identities
from kolorsc.cache import Cache
from kolorsc.engines import Engine, get_engine
from kolorsc.errors import KolorscError
from kolorsc.prompts import Panel
from kolorsc.spec.model import Story


@dataclass(frozen=True)
class RenderKey:
    """One render node (one candidate of one panel) as review sees it."""

    panel: int  # 1-based
    seed: int  # the candidate's seed
    key: str
    inputs: dict = field(default_factory=dict)  # input name -> what lock files record of it (kolorsc.build.lockfile.summarize)
    image: Path | None = None  # the PNG in the cache, when the cache holds it


class KeysUnavailable(Exception):
    """The keys cannot be computed here (engine weights, LoRA file or dataset missing)."""


def engine(name: str, models_dir: Path | None = None, cache_dir: Path | None = None) -> Engine:
    options = {} if name == "preview" else {"models_dir": models_dir, "cache_dir": cache_dir}
    return get_engine(name, **options)


def lora_source(story: Story, cache: Cache, models_dir: Path | None = None) -> LoraSource | None:
    """What the style's LoRA node is keyed by (file hash, or the dataset's facts)."""
    try:
        lock = lockfile.read(lockfile.lock_path(story.path)).lock
        return inputs.lora_source(story, cache, paths.models_dir(models_dir), lock, [])
    except (KolorscError, OSError, ImportError) as exc:
        raise KeysUnavailable(f"the style's LoRA cannot be keyed here ({exc})") from None


def render_keys(story: Story, panels: list[Panel], eng: Engine, cache: Cache,
                lora: LoraSource | None) -> dict[tuple[int, int], RenderKey]:
    """{(panel, seed): RenderKey} of every render node the current code plans for the story."""
    try:
        identity = eng.identity()
        pictures, consistency = ({}, {}) if eng.preview else inputs.consistency(story, eng, cache)
    except (KolorscError, OSError, ImportError) as exc:
        raise KeysUnavailable(f"the {eng.name} engine's identity is unknown here ({exc})") from None
    ids = Identities(engine=identity, preview=eng.preview, code=code_identities(),
                     lora=None if eng.preview else lora, pictures=pictures, consistency=consistency)
    graph = make_graph(story, panels, ids)
    return {
        (n.id.panel, n.id.seed): RenderKey(n.id.panel, n.id.seed, n.key, _summary(n.inputs), _cached(cache, n.key))
        for n in graph.of_kind(RENDER)
    }


def _summary(node_inputs: dict) -> dict:
    return {name: summarize(value) for name, value in node_inputs.items()}


def lock_render_keys(lock_path: Path, cache: Cache) -> tuple[str, dict[tuple[int, int], RenderKey]] | None:
    """(engine name, {(panel, seed): RenderKey}) recorded by a lock file, or None without one."""
    lock = lockfile.read(lock_path).lock
    if lock is None:
        return None
    keys = {}
    for text, entry in lock.nodes.items():
        try:
            node_id = NodeId.parse(text)
        except ValueError:
            continue
        if node_id.kind == RENDER and node_id.seed is not None:
            keys[(node_id.panel, node_id.seed)] = RenderKey(node_id.panel, node_id.seed, entry.key, dict(entry.inputs),
                                                           _cached(cache, entry.key))
    return lock.engine, keys


# Render inputs that depend only on the story (not on the engine, the weights or the LoRA
# file): a lock entry whose digests of these differ was built from an older story.
INTENT_INPUTS = ("prompt", "negative", "panel_seed", "seed", "settings", "base_model", "code", "ip_adapter",
                 "shared_attention")


def intent_digests(story: Story, panels: list[Panel]) -> dict[tuple[int, int], dict[str, str]]:
    """{(panel, seed): {input: summary}} of every candidate, for INTENT_INPUTS only. The
    pictures and the engine's consistency identity are not intent: they stand in as blanks."""
    from kolorsc.consistency import panel_consistency

    names = {c for pc in panel_consistency(story) for c in pc.characters}
    blanks = Identities(engine={}, preview=False, code=code_identities(), pictures=dict.fromkeys(names, ""),
                        consistency={"references": {}, "sharing": {}})
    graph = make_graph(story, panels, blanks)
    return {(n.id.panel, n.id.seed): {k: v for k, v in _summary(n.inputs).items() if k in INTENT_INPUTS}
            for n in graph.of_kind(RENDER)}


def lock_engine(lock_path: Path) -> str | None:
    """The engine a lock file's build used ("preview", "kolors"), or None without a lock."""
    lock = lockfile.read(lock_path).lock
    return lock.engine or None if lock else None


def story_lock_path(story_path: Path) -> Path:
    return lockfile.lock_path(story_path)


def _cached(cache: Cache, key: str) -> Path | None:
    # existence of the sidecar (written last) and the object: no hashing, no deleting
    obj = cache.object_path(key)
    return obj if cache.sidecar_path(key).is_file() and obj.is_file() else None
