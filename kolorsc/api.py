"""The callable API behind `kolorsc build`, `plan` and `cache`: no printing, no exiting.

    build(paths, ...) -> BuildSummary    every story of files/collections; one failing story
                                         does not stop the others
    plan(path, ...)   -> Plan            what a build would do, and why (build --dry-run)
    cache_info(cache_dir) -> CacheInfo
    cache_gc(cache_dir, keep, older_than_days, dry_run) -> GcReport
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from kolorsc import lockfile
from kolorsc.cache import Cache, CacheInfo, GcReport
from kolorsc.engines import Engine, get_engine
from kolorsc.errors import Diagnostic, KolorscError, SpecError, UsageError
from kolorsc.plan import Plan
from kolorsc.prompts import Panel
from kolorsc.runner import BuildReport, Options, StageProgress, build_story, output_dir, plan_story
from kolorsc.spec.model import Story

BUILT, UP_TO_DATE, PLANNED, FAILED, INVALID = "built", "up-to-date", "planned", "failed", "invalid"


@dataclass
class StoryOutcome:
    path: Path
    status: str  # built, up-to-date, planned (dry run), failed, invalid
    story_id: str | None = None
    plan: Plan | None = None
    report: BuildReport | None = None
    error: str | None = None
    diagnostics: list[Diagnostic] = field(default_factory=list)
    seconds: float = 0.0

    def to_json(self) -> dict:
        plan, report = self.plan, self.report
        return {
            "path": str(self.path),
            "story": self.story_id,
            "status": self.status,
            "seconds": round(self.seconds, 3),
            "error": self.error,
            "diagnostics": [d.format() for d in self.diagnostics],
            "nodes": plan_json(plan) if plan else [],
            "ran": report.ran if report else {},
            "written": report.written if report else [],
            "out_dir": str(report.out_dir) if report else None,
            "preview": plan.preview if plan else None,
            "scores": _scores_json(report),
        }


@dataclass
class BuildSummary:
    outcomes: list[StoryOutcome]

    def count(self, status: str) -> int:
        return sum(1 for o in self.outcomes if o.status == status)

    @property
    def exit_code(self) -> int:
        """2 if a story is invalid, else 1 if one failed, else 0."""
        if self.count(INVALID):
            return 2
        return 1 if self.count(FAILED) else 0

    def to_json(self) -> dict:
        return {
            "ok": self.exit_code == 0,
            "counts": {s: self.count(s) for s in (BUILT, UP_TO_DATE, PLANNED, FAILED, INVALID)},
            "stories": [o.to_json() for o in self.outcomes],
        }


def plan_json(plan: Plan) -> list[dict]:
    return [
        {"id": n.id, "kind": n.kind, "status": n.status, "why": n.why, "key": n.key,
         "output": n.output, "loc": str(n.loc) if n.loc else None}
        for n in plan.nodes
    ]


def _scores_json(report: BuildReport | None) -> dict | None:
    if report is None or report.result is None:
        return None
    s = report.result.scores
    return {"aesthetic_mean": s.aesthetic_mean, "threshold": s.threshold, "gate": s.gate, "note": s.note}


# -- loading -------------------------------------------------------------------------------


def load(path: Path) -> tuple[Story, list[Panel]]:
    """Load, validate and compile one story (SpecError with every diagnostic)."""
    from kolorsc.prompts import compile_story
    from kolorsc.spec import load_story

    story = load_story(Path(path))
    return story, compile_story(story)


def story_files(paths: Sequence[Path]) -> list[Path]:
    from kolorsc.spec import iter_story_files

    files = iter_story_files([Path(p) for p in paths])
    if not files:
        raise UsageError(f"no story files found in {', '.join(str(p) for p in paths)}")
    return files


def make_engine(name: str, models_dir: Path | None = None, device: str | None = None,
                cache_dir: Path | None = None, low_memory: bool | None = None) -> Engine:
    # the kolors engine keeps its prompt-embedding cache inside the build cache folder;
    # low_memory None lets it decide from the device's memory
    options = {} if name == "preview" else {"models_dir": models_dir, "device": device, "cache_dir": cache_dir,
                                            "low_memory": low_memory}
    return get_engine(name, **options)


# -- commands ------------------------------------------------------------------------------


def plan(
    path: Path,
    *,
    engine: str | Engine = "preview",
    cache_dir: Path | None = None,
    models_dir: Path | None = None,
    device: str | None = None,
    low_memory: bool | None = None,
) -> Plan:
    """What `build` would do for one story: every node, cached / to-run / skipped, and why."""
    story, panels = load(path)
    eng = engine if isinstance(engine, Engine) else make_engine(engine, models_dir, device, cache_dir, low_memory)
    return plan_story(story, panels, eng, Cache(cache_dir), models_dir=models_dir)


def build(
    paths: Sequence[Path],
    *,
    engine: str | Engine = "preview",
    dry_run: bool = False,
    cache_dir: Path | None = None,
    out: Path | None = None,
    models_dir: Path | None = None,
    device: str | None = None,
    low_memory: bool | None = None,
    keep_going: bool = False,
    progress: StageProgress | None = None,
    on_story=None,
) -> BuildSummary:
    """Build every story in `paths` (files or collection folders).

    A story that fails or is invalid is recorded and the next one runs. `on_story(outcome)`
    is called after each story (the CLI prints a line)."""
    files = story_files(paths)
    eng = engine if isinstance(engine, Engine) else make_engine(engine, models_dir, device, cache_dir, low_memory)
    opts = Options(cache_dir=cache_dir, out=out, models_dir=models_dir, device=device,
                   keep_going=keep_going, progress=progress)
    outcomes = []
    for path in files:
        outcome = _one(path, eng, opts, dry_run)
        outcomes.append(outcome)
        if on_story:
            on_story(outcome)
    return BuildSummary(outcomes)


def _one(path: Path, engine: Engine, opts: Options, dry_run: bool) -> StoryOutcome:
    start = time.perf_counter()
    outcome = StoryOutcome(Path(path), FAILED)
    try:
        story, panels = load(path)
        outcome.story_id = story.id
        if dry_run:
            outcome.plan = plan_story(story, panels, engine, Cache(opts.cache_dir), models_dir=opts.models_dir)
            outcome.status = PLANNED
        else:
            report = build_story(story, panels, engine, opts)
            outcome.plan, outcome.report = report.plan, report
            outcome.status = BUILT if report.ran or report.written or report.lock_written else UP_TO_DATE
    except SpecError as exc:
        outcome.status, outcome.diagnostics = INVALID, exc.diagnostics
        outcome.error = f"{len(exc.diagnostics)} problem(s) in the story"
    except KolorscError as exc:
        outcome.status, outcome.error = FAILED, str(exc)
    except Exception as exc:  # noqa: BLE001 - one broken story must not stop a collection
        outcome.status, outcome.error = FAILED, f"{type(exc).__name__}: {exc}"
    outcome.seconds = time.perf_counter() - start
    return outcome


def cache_info(cache_dir: Path | None = None) -> CacheInfo:
    return Cache(cache_dir).info()


def cache_gc(
    cache_dir: Path | None = None,
    keep: Sequence[Path] = (),
    older_than_days: float = 30.0,
    dry_run: bool = False,
) -> GcReport:
    """Remove cache entries that no kept lock file references and that are older than N days.

    `keep`: lock files, or story files / folders whose `<story>.lock` files are kept."""
    if older_than_days < 0:
        raise UsageError("--older-than must be zero or more days")
    keys: set[str] = set()
    for lock, found in _lock_files(keep):
        data = lockfile.read(lock)
        if data is None and not found:
            raise UsageError(f"{lock}: not a readable kolorsc lock file")
        if data is not None:  # other tools' *.lock files found in a folder are ignored
            keys.update(e.key for e in data.nodes.values())
    return Cache(cache_dir).gc(keys, older_than_days, dry_run=dry_run)


def _lock_files(paths: Sequence[Path]) -> list[tuple[Path, bool]]:
    """(lock file, found by scanning a folder) for each path given."""
    out = []
    for p in map(Path, paths):
        if p.is_dir():
            out += [(f, True) for f in sorted(p.rglob("*.lock"))]
        elif p.suffix == ".lock":
            out.append((p, False))
        elif lockfile.lock_path(p).is_file():
            out.append((lockfile.lock_path(p), False))
        else:
            raise UsageError(f"{p}: no lock file (build the story first, or pass its .lock)")
    return out


__all__ = [
    "BuildSummary",
    "StoryOutcome",
    "build",
    "cache_gc",
    "cache_info",
    "load",
    "output_dir",
    "plan",
]
