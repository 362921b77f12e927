"""`kolorsc diff [REV] [PATH...]`: the stories and lock files of a git revision against the
working tree, per story and panel: what changed, why, and which renders are new.

    1. git      repository root, the revision's commit, both sides' file lists (git.py)
    2. select   story files under PATH on either side (the rule of `kolorsc check`); a story
                whose file, lock file and styles/ are byte-identical on both sides is
                unchanged and never parsed (that keeps a 50-story collection fast)
    3. export   the revision's copies of the remaining stories, their lock files, styles/
                and kolorsc.toml into a temporary folder (one `git cat-file --batch`)
    4. load     both sides through the normal loader and compiler; invalid files are reported
    5. pair     by story id: same id in another file is a rename; else added / removed
    6. compare  story, style and panel fields (compare.py), then render keys (keys.py)

Render keys. Both sides are keyed by the *current* code for the same engine, so the diff
shows the effect of the change in the files, not of a kolorsc upgrade. The engine is
`--engine`, else the one the working tree's lock file names, else the revision's, else
`preview`. A side whose keys cannot be computed here (the kolors engine without its
weights, a LoRA file or dataset that is not on this machine) uses what its lock file
recorded instead, and the report says so. A render is *new* when its key is not among the
revision's keys; whether the cache already holds it is reported too.

Nothing here writes into the working tree, the index or the cache.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from kolorsc.cache import Cache
from kolorsc.engines.base import Engine
from kolorsc.errors import SpecError, UsageError
from kolorsc.i18n import _
from kolorsc.prompts import Panel
from kolorsc.review import git, keys
from kolorsc.review.compare import Change, lora_view, panel_changes, story_changes
from kolorsc.review.keys import KeysUnavailable, RenderKey
from kolorsc.spec.check import SKIP_DIRS, STORY_SUFFIXES
from kolorsc.hashing import digest
from kolorsc.spec.model import Story

ADDED, REMOVED, RENAMED, MODIFIED, UNCHANGED, INVALID = "added", "removed", "renamed", "modified", "unchanged", "invalid"
NEW, SAME, REUSED, DROPPED = "new", "unchanged", "reused", "dropped"

# Why a render's key changed, by the name of the input whose digest differs (the inputs of
# a render node: kolorsc.build.graph._render).
_WHY_BY_INPUT = {
    "prompt": "prompt changed",
    "negative": "negative changed",
    "seed": "seed changed",
    "panel_seed": "seed changed",
    "settings": "settings changed (steps, cfg, size or refine)",
    "lora": "LoRA changed",
    "lora_scale": "LoRA scale changed",
    "base_model": "base model changed",
    "engine": "engine changed",
    "code": "render code changed",
    # character consistency, present only when a switch is on for the panel
    "ip_adapter": "ip_adapter scales changed",
    "shared_attention": "shared_attention changed",
    "pictures": "reference picture changed",
    "consistency_engine": "consistency engine changed",
}


# -- the report ----------------------------------------------------------------------------


@dataclass
class RenderChange:
    panel: int
    seed: int
    old: RenderKey | None
    new: RenderKey | None
    status: str  # new, unchanged, reused (the revision has this key elsewhere), dropped
    reasons: list[str] = field(default_factory=list)

    @property
    def in_cache(self) -> bool:
        return self.new is not None and self.new.image is not None

    def to_json(self) -> dict:
        def side(k: RenderKey | None) -> dict | None:
            return None if k is None else {"key": k.key, "in_cache": k.image is not None}

        return {"panel": self.panel, "seed": self.seed, "status": self.status, "reasons": self.reasons,
                "old": side(self.old), "new": side(self.new)}


@dataclass
class PanelDiff:
    index: int
    caption: str
    changes: list[Change] = field(default_factory=list)
    renders: list[RenderChange] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.changes) or any(r.status != SAME for r in self.renders)

    def to_json(self) -> dict:
        return {"index": self.index, "caption": self.caption, "reasons": self.reasons,
                "changes": [c.to_json() for c in self.changes], "renders": [r.to_json() for r in self.renders]}


@dataclass
class StoryDiff:
    id: str
    status: str  # added, removed, renamed, modified, unchanged, invalid
    old_path: str | None  # repository-relative
    new_path: str | None
    engine: str = "preview"
    changes: list[Change] = field(default_factory=list)  # story, style, characters, engine
    panels: list[PanelDiff] = field(default_factory=list)  # all panels; see .changed
    notes: list[str] = field(default_factory=list)
    diagnostics: list[str] = field(default_factory=list)  # why a side is invalid

    @property
    def changed_panels(self) -> list[PanelDiff]:
        return [p for p in self.panels if p.changed]

    @property
    def new_renders(self) -> list[RenderChange]:
        return [r for p in self.panels for r in p.renders if r.status == NEW]

    def to_json(self) -> dict:
        return {
            "id": self.id, "status": self.status, "old_path": self.old_path, "new_path": self.new_path,
            "engine": self.engine, "changes": [c.to_json() for c in self.changes],
            "panels": [p.to_json() for p in self.changed_panels],
            "new_renders": len(self.new_renders),
            "new_renders_in_cache": sum(1 for r in self.new_renders if r.in_cache),
            "notes": self.notes, "diagnostics": self.diagnostics,
        }


@dataclass
class DiffReport:
    rev: str
    commit: str
    root: Path
    stories: list[StoryDiff]  # every story whose files differ, sorted by id
    unchanged: int = 0  # stories whose files are identical on both sides (not parsed)

    def count(self, status: str) -> int:
        return sum(1 for s in self.stories if s.status == status)

    @property
    def new_renders(self) -> list[RenderChange]:
        return [r for s in self.stories for r in s.new_renders]

    def to_json(self) -> dict:
        return {
            "rev": self.rev, "commit": self.commit, "unchanged": self.unchanged,
            "counts": {s: self.count(s) for s in (MODIFIED, ADDED, REMOVED, RENAMED, INVALID, UNCHANGED)},
            "new_renders": len(self.new_renders),
            "new_renders_in_cache": sum(1 for r in self.new_renders if r.in_cache),
            "stories": [s.to_json() for s in self.stories],
        }


# -- entry point ---------------------------------------------------------------------------


def diff(
    args: Sequence[str] = (),
    *,
    cwd: Path | None = None,
    engine: str | Engine | None = None,
    cache_dir: Path | None = None,
    models_dir: Path | None = None,
) -> DiffReport:
    """Compare `[REV] [PATH...]` (REV default HEAD, PATH default the whole repository).

    `engine`: a name, an Engine (as `api.build` takes), or None for the lock files' engine."""
    cwd = Path(cwd or Path.cwd()).resolve()
    root = git.repo_root(cwd)
    rev, commit, rest = _revision(root, cwd, list(args))
    old_files = git.tree_files(root, commit)
    new_files = git.work_files(root)
    prefixes = _prefixes(root, cwd, rest, old_files)
    old = _Side(f"{rev}", old_files, None)
    new = _Side("working tree", {}, root, new_files)
    old_stories = {p for p in old_files if _selected(p, prefixes)}
    new_stories = {p for p in new_files if _selected(p, prefixes)}
    unchanged = {p for p in old_stories & new_stories if _same_story(p, old, new, root)}
    todo_old, todo_new = sorted(old_stories - unchanged), sorted(new_stories - unchanged)
    ctx = _Context(Cache(cache_dir), engine if isinstance(engine, str) else None, cache_dir, models_dir)
    if isinstance(engine, Engine):
        ctx.engine, ctx.engines[engine.name] = engine.name, engine
    with tempfile.TemporaryDirectory(prefix="kolorsc-diff-") as tmp:
        old.dir = Path(tmp)
        _export(root, old, todo_old)
        loaded_old = [_load(old, p) for p in todo_old]
        loaded_new = [_load(new, p) for p in todo_new]
        stories = [_story_diff(a, b, ctx) for a, b in _pair(loaded_old, loaded_new)]
    stories.sort(key=lambda s: (s.id, s.new_path or s.old_path or ""))
    return DiffReport(rev, commit, root, stories, len(unchanged))


# -- 1. arguments --------------------------------------------------------------------------


def _revision(root: Path, cwd: Path, args: list[str]) -> tuple[str, str, list[str]]:
    """(rev as given, its commit, the remaining PATHs). The first argument is the revision
    when it names a commit; when it is also a path, git's own rule: refuse the ambiguity."""
    if args:
        commit = git.resolve_commit(root, args[0])
        if commit is not None:
            if (cwd / args[0]).exists():
                raise UsageError(_("{args} is both a revision and a path: write ./{args2} for the path, or "
                                   "{args3}^{{commit}} for the revision").format(
                                   args=repr(args[0]), args2=args[0], args3=args[0]))
            return args[0], commit, args[1:]
    commit = git.resolve_commit(root, "HEAD")
    if commit is None:
        raise UsageError(_("HEAD names no commit yet: commit the collection once, or name a revision"))
    return "HEAD", commit, args


def _prefixes(root: Path, cwd: Path, paths: list[str], old_files: dict[str, str]) -> list[str]:
    """Repository-relative POSIX prefixes of the PATHs ("" = the whole repository)."""
    if not paths:
        return [""]
    out = []
    for p in paths:
        full = Path(os.path.normpath(cwd / p))
        try:
            rel = full.relative_to(root).as_posix()
        except ValueError:
            raise UsageError(_("{p}: outside the repository {root}").format(p=p, root=root)) from None
        rel = "" if rel == "." else rel
        if not full.exists() and rel not in old_files and not any(f.startswith(rel + "/") for f in old_files):
            raise UsageError(_("{p}: neither a revision nor a path in the working tree or at the revision").format(p=p))
        out.append(rel)
    return out


def _selected(path: str, prefixes: list[str]) -> bool:
    """The rule of `kolorsc check`/`iter_story_files`, on repository paths: YAML files below
    the PATH, skipping hidden folders and files, styles/, build/; a PATH naming a file
    selects that file."""
    for prefix in prefixes:
        if path == prefix:
            return True
        if prefix and not path.startswith(prefix + "/"):
            continue
        parts = PurePosixPath(path[len(prefix) + 1:] if prefix else path).parts
        if PurePosixPath(path).suffix not in STORY_SUFFIXES or parts[-1].startswith("."):
            continue
        if any(part.startswith(".") or part in SKIP_DIRS for part in parts[:-1]):
            continue
        return True
    return False


# -- 2. which stories differ ---------------------------------------------------------------


class _Side:
    """One side's files: the revision (blob ids known, files exported into `dir`) or the
    working tree (`dir` is the repository; blob ids computed on demand)."""

    def __init__(self, label: str, blobs: dict[str, str], directory: Path | None, listing: list[str] | None = None):
        self.label, self.blobs, self.dir = label, blobs, directory
        self.listing = set(blobs) if listing is None else set(listing)
        self._roots: set[str] | None = None

    def blob(self, path: str) -> str | None:
        if path not in self.listing:
            return None
        if path not in self.blobs:
            self.blobs[path] = git.blob_id((self.dir / path).read_bytes())
        return self.blobs[path]

    def project_root(self, story: str) -> str:
        """The story's project root as a repository prefix ("" = the repository): the nearest
        folder holding styles/ or kolorsc.toml (the loader's rule; the repository has .git)."""
        if self._roots is None:
            self._roots = set()
            for p in self.listing:
                parts = p.split("/")
                if parts[-1] == "kolorsc.toml":
                    self._roots.add("/".join(parts[:-1]))
                for i, part in enumerate(parts[:-1]):
                    if part == "styles":
                        self._roots.add("/".join(parts[:i]))
        folder = PurePosixPath(story).parent
        for candidate in (folder, *folder.parents):
            name = "" if str(candidate) == "." else candidate.as_posix()
            if name in self._roots:
                return name
        return ""

    def root_files(self, root: str) -> list[str]:
        """styles/ files and kolorsc.toml of a project root."""
        base = f"{root}/" if root else ""
        return sorted(p for p in self.listing
                      if p.startswith(base + "styles/") or p == base + "kolorsc.toml")


def _lock_of(story: str) -> str:
    return str(PurePosixPath(story).with_suffix(".lock"))


def _same_story(path: str, old: _Side, new: _Side, root: Path) -> bool:
    """Byte-identical story, lock file and project styles on both sides."""
    if old.blob(path) != new.blob(path) or old.blob(_lock_of(path)) != new.blob(_lock_of(path)):
        return False
    r_old, r_new = old.project_root(path), new.project_root(path)
    if r_old != r_new:
        return False
    files_old, files_new = old.root_files(r_old), new.root_files(r_new)
    return files_old == files_new and all(old.blob(f) == new.blob(f) for f in files_old)


# -- 3. export and 4. load -----------------------------------------------------------------


def _export(root: Path, old: _Side, stories: list[str]) -> None:
    """The revision's copies of `stories`, their locks and project files, under old.dir."""
    wanted = set()
    for story in stories:
        wanted |= {story, _lock_of(story), *old.root_files(old.project_root(story))}
    wanted &= old.listing
    data = git.read_blobs(root, (old.blobs[p] for p in wanted))
    for path in sorted(wanted):
        target = old.dir / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data[old.blobs[path]])
    (old.dir / ".git").mkdir(exist_ok=True)  # the loader's project-root marker, as in the repository


@dataclass
class _Loaded:
    side: _Side
    path: str  # repository-relative
    story: Story | None = None
    panels: list[Panel] | None = None
    diagnostics: list[str] = field(default_factory=list)

    @property
    def id(self) -> str | None:
        return self.story.id if self.story else None

    @property
    def file(self) -> Path:
        return self.side.dir / self.path


def _load(side: _Side, path: str) -> _Loaded:
    from kolorsc.prompts import compile_story
    from kolorsc.spec import load_story

    out = _Loaded(side, path)
    name = path if side.label == "working tree" else f"{side.label}:{path}"
    try:
        out.story = load_story(out.file, name=name)
        out.panels = compile_story(out.story)
    except SpecError as exc:
        out.story, out.panels = None, None
        out.diagnostics = [d.format() for d in exc.diagnostics]
    return out


# -- 5. pairing ----------------------------------------------------------------------------


def _pair(old: list[_Loaded], new: list[_Loaded]) -> list[tuple[_Loaded | None, _Loaded | None]]:
    """Pairs by story id (a rename keeps its id); files that do not load pair by path."""
    pairs = []
    new_by_id = {}
    for n in new:
        if n.id is not None:
            new_by_id.setdefault(n.id, n)
    used: set[int] = set()
    for o in old:
        match = new_by_id.get(o.id) if o.id is not None else None
        if match is None or id(match) in used:
            match = next((n for n in new if n.path == o.path and id(n) not in used), None)
        if match is not None:
            used.add(id(match))
        pairs.append((o, match))
    pairs += [(None, n) for n in new if id(n) not in used]
    return pairs


# -- 6. comparing --------------------------------------------------------------------------


@dataclass
class _Context:
    cache: Cache
    engine: str | None
    cache_dir: Path | None
    models_dir: Path | None
    engines: dict = field(default_factory=dict)


def _story_diff(old: _Loaded | None, new: _Loaded | None, ctx: _Context) -> StoryDiff:
    either = new if new is not None else old
    sid = (new.id if new and new.id else None) or (old.id if old and old.id else None) or PurePosixPath(either.path).stem
    out = StoryDiff(sid, MODIFIED, old.path if old else None, new.path if new else None)
    invalid = [s for s in (old, new) if s is not None and s.story is None]
    if invalid:
        out.status = INVALID
        for s in invalid:
            where = "at " + s.side.label if s.side.label != "working tree" else "in the working tree"
            out.notes.append(_("{path} is not a valid story {where}").format(path=s.path, where=where))
            out.diagnostics += s.diagnostics
        return out
    out.engine = _engine_name(old, new, ctx)
    old_keys = _side_keys(old, out, ctx, reuse_lora_of=new) if old else {}
    new_keys = _side_keys(new, out, ctx) if new else {}
    if old is None:
        out.status = ADDED
    elif new is None:
        out.status = REMOVED
    else:
        out.status = RENAMED if old.path != new.path else MODIFIED
        out.changes = story_changes(old.story, new.story) + _engine_change(old, new)
    out.panels = _panels(old, new, old_keys, new_keys)
    if out.status == MODIFIED and not out.changes and not out.changed_panels:
        out.status = UNCHANGED  # e.g. a comment edited, or a lock file rewritten with the same keys
    return out


def _engine_name(old: _Loaded | None, new: _Loaded | None, ctx: _Context) -> str:
    if ctx.engine:
        return ctx.engine
    for side in (new, old):
        if side is not None:
            name = keys.lock_engine(keys.story_lock_path(side.file))
            if name:
                return name
    return "preview"


def _engine_change(old: _Loaded, new: _Loaded) -> list[Change]:
    """The engines the two lock files were built with, when they differ."""
    a = keys.lock_engine(keys.story_lock_path(old.file))
    b = keys.lock_engine(keys.story_lock_path(new.file))
    return [Change("engine", a, b)] if a and b and a != b else []


def _side_keys(side: _Loaded, out: StoryDiff, ctx: _Context, reuse_lora_of: _Loaded | None = None) -> dict | None:
    """Render keys of one side: computed, else from its lock file, else None (unknown)."""
    where = side.path if side.side.label == "working tree" else f"{side.side.label}:{side.path}"
    try:
        eng = ctx.engines.get(out.engine)
        if eng is None:
            eng = ctx.engines[out.engine] = _make_engine(out.engine, ctx)
        lora = None if eng.preview else _lora(side, ctx, reuse_lora_of)
        computed = keys.render_keys(side.story, side.panels, eng, ctx.cache, lora)
    except KeysUnavailable as exc:
        recorded = keys.lock_render_keys(keys.story_lock_path(side.file), ctx.cache)
        if recorded is not None and recorded[0] == out.engine:
            out.notes.append(_("{where}: render keys taken from its lock file: {problem}").format(where=where, problem=exc))
            return _unbuilt(side, recorded[1], out, where)
        out.notes.append(_("{where}: render keys unknown: {problem}").format(where=where, problem=exc))
        return None
    _check_engine_identity(side, out, ctx, computed, where)
    return computed


def _unbuilt(side: _Loaded, recorded: dict, out: StoryDiff, where: str) -> dict:
    """The lock file's keys, except for renders the story has changed since it was written:
    those have an unknown key ("") and the story's current digests, so they count as new."""
    intent = keys.intent_digests(side.story, side.panels)
    result, stale = {}, 0
    for ps, digests in intent.items():
        rec = recorded.get(ps)
        if rec is not None and all(rec.inputs.get(k) == v for k, v in digests.items()):
            result[ps] = rec
        else:
            stale += 1
            result[ps] = RenderKey(ps[0], ps[1], "", {**(rec.inputs if rec else {}), **digests})
    if stale:
        out.notes.append(_("{where}: {stale} render(s) changed since its lock file was written: keys unknown until "
                           "built").format(
                           where=where, stale=stale))
    return result


def _same_render(a: RenderKey, b: RenderKey) -> bool:
    return a.key == b.key if a.key and b.key else a.inputs == b.inputs


def _check_engine_identity(side: _Loaded, out: StoryDiff, ctx: _Context, computed: dict, where: str) -> None:
    """Say so when this machine's engine is not the one the side's lock file was built with
    (other weights, precision, version): then every render looks new for that reason."""
    recorded = keys.lock_render_keys(keys.story_lock_path(side.file), ctx.cache)
    if recorded is None or recorded[0] != out.engine:
        return
    mine = {digest(k.inputs.get("engine")) for k in computed.values()}
    theirs = {digest(k.inputs.get("engine")) for k in recorded[1].values()}
    if theirs and mine and not (mine & theirs):
        out.notes.append(_("{where}: the {engine} engine here differs from the one its lock file was built with "
                           "(weights, precision or version): renders may show as new for that reason").format(
                           where=where, engine=out.engine))


def _make_engine(name: str, ctx: _Context):
    try:
        return keys.engine(name, ctx.models_dir, ctx.cache_dir)
    except ImportError as exc:
        raise KeysUnavailable(f"the {name} engine is not installed here ({exc})") from None
    except UsageError as exc:  # a lock file naming an engine this kolorsc does not have
        raise KeysUnavailable(str(exc)) from None


def _lora(side: _Loaded, ctx: _Context, reuse_of: _Loaded | None):
    """The revision's LoRA is keyed like the working tree's when its spec is the same (its
    file or dataset is not in the temporary export); else computed, if it can be."""
    if reuse_of is not None and reuse_of.story is not None and lora_view(side.story) == lora_view(reuse_of.story):
        return keys.lora_source(reuse_of.story, ctx.cache, ctx.models_dir)
    return keys.lora_source(side.story, ctx.cache, ctx.models_dir)


def _panels(old: _Loaded | None, new: _Loaded | None, old_keys: dict | None,
            new_keys: dict | None) -> list[PanelDiff]:
    old_panels = {p.index: p for p in (old.panels if old else [])}
    new_panels = {p.index: p for p in (new.panels if new else [])}
    old_all = {k.key for k in (old_keys or {}).values() if k.key}
    out = []
    for index in sorted(set(old_panels) | set(new_panels)):
        a, b = old_panels.get(index), new_panels.get(index)
        pd = PanelDiff(index, (b or a).caption)
        if a is not None and b is not None:
            pd.changes = panel_changes(a, b)
        if old_keys is not None and new_keys is not None:
            pd.renders = _renders(index, old_keys, new_keys, old_all, old is None, new is None)
        pd.reasons = _reasons(pd)
        out.append(pd)
    return out


def _renders(index: int, old_keys: dict, new_keys: dict, old_all: set[str], added: bool,
             removed: bool) -> list[RenderChange]:
    seeds = sorted({s for p, s in old_keys if p == index} | {s for p, s in new_keys if p == index})
    out = []
    for seed in seeds:
        a, b = old_keys.get((index, seed)), new_keys.get((index, seed))
        if b is None:
            why = "story removed" if removed else "candidate no longer rendered"
            out.append(RenderChange(index, seed, a, None, DROPPED, [why]))
        elif a is not None and _same_render(a, b):
            out.append(RenderChange(index, seed, a, b, SAME))
        else:
            status = REUSED if b.key in old_all else NEW
            out.append(RenderChange(index, seed, a, b, status, _why(a, b, added)))
    return out


def _why(old: RenderKey | None, new: RenderKey, added: bool) -> list[str]:
    if added:
        return ["new story"]
    if old is None:
        return ["new candidate"]
    names = sorted(n for n in set(old.inputs) | set(new.inputs) if old.inputs.get(n) != new.inputs.get(n))
    reasons: list[str] = []
    for name in names:
        text = _WHY_BY_INPUT.get(name, f"{name} changed")
        if text not in reasons:
            reasons.append(text)
    return reasons or ["inputs changed"]


def _reasons(pd: PanelDiff) -> list[str]:
    reasons: list[str] = []
    for c in pd.changes:
        text = "caption changed (no re-render)" if c.field == "caption" else f"{c.field} changed"
        if c.field in ("steps", "cfg", "size", "refine"):
            text = "settings changed (steps, cfg, size or refine)"
        if c.field == "seed":
            text = "seed changed"
        if text not in reasons:
            reasons.append(text)
    for r in pd.renders:
        for text in r.reasons:
            if text not in reasons:
                reasons.append(text)
    return reasons
