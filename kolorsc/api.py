"""The callable API behind every command: no printing, no exiting.

    build(paths, ...)         -> BuildSummary    stories or collections; a failing story does
                                                 not stop the others
    plan(path, ...)           -> Plan            what a build would do, and why (= build --dry-run)
    cache_info / cache_gc                        the content-addressed cache
    train(style_file, ...)    -> TrainOutcome    a style's LoRA outside a build
    lora_inspect / lora_export                   LoRA files
    score(folder, ...)        -> FolderResult    the challenge's score of any folder of images
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from kolorsc import paths as user_paths
from kolorsc.build import inputs, lockfile
from kolorsc.build.executors import Executor, make_executor
from kolorsc.build.graph import make_graph
from kolorsc.build.outputs import output_dir, write_indexes
from kolorsc.build.run import Options, Progress, StoryRun, run, story_error
from kolorsc.build.stages.base import Env
from kolorsc.build.status import TO_RUN, Plan, plan_of
from kolorsc.cache import Cache, CacheInfo, GcReport
from kolorsc.engines import Engine, EngineSpec, get_engine
from kolorsc.errors import Diagnostic, KolorscError, SpecError, UsageError
from kolorsc.i18n import _
from kolorsc.prompts import Panel
from kolorsc.spec.model import Story

BUILT, UP_TO_DATE, PLANNED, FAILED, INVALID = "built", "up-to-date", "planned", "failed", "invalid"


@dataclass
class StoryOutcome:
    path: Path
    status: str  # built, up-to-date, planned (dry run), failed, invalid
    story_id: str | None = None
    plan: Plan | None = None
    report: StoryRun | None = None
    error: str | None = None
    exit_code: int = 0
    diagnostics: list[Diagnostic] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_json(self, changed_only: bool = False) -> dict:
        from kolorsc.spec.jsonout import diagnostic_json, relative

        plan, report = self.plan, self.report
        return {
            "path": relative(self.path),
            "story": self.story_id,
            "status": self.status,
            "seconds": round(self.seconds, 3),
            "error": self.error,
            "warnings": self.warnings,
            "diagnostics": [diagnostic_json(d) for d in self.diagnostics],
            "nodes": plan_json(plan, report, changed_only) if plan else [],
            "ran": report.ran if report else {},
            "written": report.written if report else [],
            "out_dir": relative(report.out_dir) if report else None,
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
        """2 if a story is invalid (or failed on bad input), else 1 if one failed, else 0."""
        if self.count(INVALID) or any(o.exit_code == 2 for o in self.outcomes):
            return 2
        return 1 if self.count(FAILED) else 0

    def counts(self) -> dict[str, int]:
        return {s: self.count(s) for s in (BUILT, UP_TO_DATE, PLANNED, FAILED, INVALID)}

    def to_json(self, changed_only: bool = False) -> dict:
        """The one JSON shape of `build --json`, `build --dry-run --json` and `plan --json`."""
        return {
            "ok": self.exit_code == 0,
            "counts": self.counts(),
            "stories": [o.to_json(changed_only) for o in self.outcomes],
        }


def plan_json(plan: Plan, report: StoryRun | None = None, changed_only: bool = False) -> list[dict]:
    """Every node (only those to run with `changed_only`): status, why, and each changed input
    with old → new values and the file:line that holds it (paths relative to the project root)."""
    from kolorsc.spec.jsonout import relative

    where = report.where if report else {}
    return [
        {"id": str(n.id), "kind": n.kind, "status": n.status, "why": list(n.why),
         "changes": [c.to_json(relative) for c in n.changes], "key": n.key, "output": n.output,
         "loc": {"file": relative(n.loc.file), "line": n.loc.line, "col": n.loc.col} if n.loc else None,
         "ran_on": where.get(str(n.id))}
        for n in plan.nodes
        if not changed_only or n.status == TO_RUN
    ]


def _scores_json(report: StoryRun | None) -> dict | None:
    if report is None or report.result is None:
        return None
    s = report.result.scores
    return {"aesthetic_mean": s.aesthetic_mean, "threshold": s.threshold, "gate": s.gate, "note": s.note}


# -- loading and planning ------------------------------------------------------------------


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
        raise UsageError(_("no story files found in {paths}").format(paths=", ".join(str(p) for p in paths)))
    return files


def make_engine(name: str, models_dir: Path | None = None, device: str | None = None,
                cache_dir: Path | None = None, low_memory: bool | None = None) -> Engine:
    if name != "preview":
        from kolorsc.extras import require

        require("models", "torch", "diffsynth")
    return get_engine(name, **engine_options(name, models_dir, device, cache_dir, low_memory))


def engine_options(name: str, models_dir: Path | None, device: str | None, cache_dir: Path | None,
                   low_memory: bool | None) -> dict:
    # the kolors engine keeps its prompt-embedding cache inside the build cache folder;
    # low_memory None lets it decide from the device's memory
    if name == "preview":
        return {}
    return {"models_dir": models_dir, "device": device, "cache_dir": cache_dir, "low_memory": low_memory}


def worker_engine(engine: str | Engine, models_dir: Path | None, device: str | None,
                  low_memory: bool | None) -> EngineSpec:
    """How a Ray worker makes the build's engine: a given instance travels pickled; a named
    engine is made there with the same options, except where files live: --models-dir (made
    absolute) on every node, else each node's own; prompt embeddings in the node's own cache."""
    if isinstance(engine, Engine):
        return EngineSpec.of(engine)
    return EngineSpec(engine, engine_options(engine, models_dir, device, None, low_memory))


def plan_story(story: Story, panels: list[Panel], engine: Engine, cache: Cache,
               models_dir: Path | None = None, fetch: bool = False) -> Plan:
    """The story's plan: every node, its key, cached / to-run / skipped and why. Read-only
    for the cache; `fetch` lets a build download a LoRA the style reuses from ModelScope."""
    read = lockfile.read(lockfile.lock_path(story.path))
    resolved = inputs.identities(story, engine, cache, models_dir, read.lock, fetch=fetch)
    plan = plan_of(make_graph(story, panels, resolved.identities), cache, read,
                   lock_name=str(lockfile.lock_path(story.path)))
    plan.warnings += resolved.warnings
    return plan


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


# -- build ---------------------------------------------------------------------------------


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
    progress: Progress | None = None,
    executor: str | Executor | None = None,
    ray_address: str | None = None,
    ray_workers: int | None = None,
    pull: bool = False,
    remote: str | None = None,
    on_story=None,
    on_plan=None,
) -> BuildSummary:
    """Build every story in `paths` (files or collection folders), together: identical
    renders across stories are made once, renders sharing a LoRA go to the engine together.

    `executor`: "local" (default: this process), "ray" (a Ray cluster: `ray_address` None for
    a local one, "auto", "host:port" or "ray://host:10001"; `ray_workers` render workers,
    default one per GPU, or per CPU without GPUs), or an Executor. A Ray cluster that cannot
    be reached raises BuildError before anything runs.
    `pull`: before running, fetch from the team's remote cache (`remote`, else $KOLORSC_REMOTE
    or kolorsc.toml) what the plans need; what it lacks is built here. A story that fails or
    is invalid is recorded and the others still build. `on_story(outcome)` is called for each
    story once its outcome is known; `on_plan(outcome)` once it is planned, before anything runs
    (the CLI prints planning warnings then, such as the placeholder team of a real build)."""
    start = time.perf_counter()
    files = story_files(paths)
    eng = engine if isinstance(engine, Engine) else make_engine(engine, models_dir, device, cache_dir, low_memory)
    cache = Cache(cache_dir)
    outcomes = [_plan_one(path, eng, cache, models_dir, fetch=not dry_run) for path in files]
    _refuse_shared_outputs(outcomes, out)
    for outcome in outcomes if on_plan else ():
        on_plan(outcome)
    if pull and not dry_run:
        _pull(outcomes, cache, remote, files, progress)
        outcomes = [_plan_one(path, eng, cache, models_dir, fetch=True) if o.status == PLANNED else o
                    for path, o in zip(files, outcomes)]
    planned = [o for o in outcomes if o.status == PLANNED]
    if not dry_run and planned:
        env = Env(eng, user_paths.models_dir(models_dir), device, cache.root / user_paths.WORK_DIR, progress)
        if not isinstance(executor, Executor):
            models = user_paths.models_dir(models_dir) if models_dir else None
            executor = make_executor(executor or "local", env, worker_engine(engine, models, device, low_memory),
                                     models_dir=models, device=device, ray_address=ray_address,
                                     ray_workers=ray_workers)
        with executor as ex:
            runs = run([o.plan for o in planned], ex, cache, Options(out=out, keep_going=keep_going, progress=progress))
        for outcome, story_run in zip(planned, runs):
            _record(outcome, story_run)
        if any(o.status != UP_TO_DATE for o in outcomes):  # a no-op build writes nothing
            write_indexes([_index_row(o, out) for o in outcomes])
    seconds = (time.perf_counter() - start) / max(1, len(outcomes))
    for outcome in outcomes:
        outcome.seconds = outcome.seconds or seconds
        if on_story:
            on_story(outcome)
    return BuildSummary(outcomes)


def _refuse_shared_outputs(outcomes: list[StoryOutcome], out: Path | None) -> None:
    """Two stories never write one output folder: stories of this build with the same id (the
    same build/<id>/), or a folder that holds the outputs of another story with that id
    (kolorsc.build.outputs.claim_problem). Each such story becomes invalid, before anything runs."""
    from kolorsc.build.outputs import claim_problem
    from kolorsc.spec.ids import same_id_diagnostic, story_id

    by_dir: dict[Path, list[StoryOutcome]] = {}
    for o in outcomes:
        if o.status == PLANNED:
            by_dir.setdefault(output_dir(o.plan.story, out).resolve(), []).append(o)
    for folder, sharing in by_dir.items():
        # where each `id:` is written: read again from the file, so only when there is a clash
        at = {id(o): story_id(o.path)[1] for o in sharing} if len(sharing) > 1 else {}
        for o in sharing:
            if len(sharing) > 1:
                others = [at[id(x)] for x in sharing if x is not o]
                problem = same_id_diagnostic(o.story_id, at[id(o)], others)
            else:
                problem = claim_problem(o.plan.story, folder, lambda o=o: story_id(o.path)[1])
            if problem is not None:
                o.status, o.plan, o.exit_code, o.diagnostics = INVALID, None, 2, [problem]
                o.error = _("another story writes {folder}/").format(folder=folder.name)


def _pull(outcomes: list[StoryOutcome], cache: Cache, remote: str | None, files: list[Path],
          progress: Progress | None) -> None:
    """Fetch every to-run key of the plans from the remote cache, each checked against the
    output hash its lock file records when the lock has the same key."""
    from kolorsc.remote.commands import project_remote
    from kolorsc.remote.transfer import pull_keys

    wanted: dict[str, str | None] = {}
    for o in outcomes:
        if o.plan is None:
            continue
        recorded = o.plan.lock.nodes if o.plan.lock else {}
        for n in o.plan.to_run():
            entry = recorded.get(str(n.id))
            wanted[n.key] = entry.output if entry is not None and entry.key == n.key else None
    if not wanted:
        return
    spec = project_remote(remote, files)
    report = pull_keys(cache, spec.url, list(wanted), (lambda d, t, label: progress("pull", d, t, label))
                       if progress else None, expected={k: v for k, v in wanted.items() if v}, options=spec.options)
    for o in outcomes:
        o.warnings += [_("remote cache: {key} {why}; built here instead").format(key=key[:16], why=why)
                       for key, why in sorted({**report.refused, **report.failed}.items())]


def _plan_one(path: Path, engine: Engine, cache: Cache, models_dir: Path | None, fetch: bool = False) -> StoryOutcome:
    start = time.perf_counter()
    outcome = StoryOutcome(Path(path), FAILED)
    try:
        story, panels = load(path)
        outcome.story_id = story.id
        if not engine.preview:  # a real build needs the local files the style names (preview draws without)
            from kolorsc.spec.inputs import input_problems

            problems = input_problems(story.style, path)
            if problems:
                raise SpecError(problems)
            from kolorsc.spec.check import placeholder_team_problem

            team = placeholder_team_problem(story)  # said before the GPU work; fixing it later re-emits only
            if team is not None:
                outcome.warnings.append(team.format().replace(_("warning: "), "", 1))
        outcome.plan = plan_story(story, panels, engine, cache, models_dir=models_dir, fetch=fetch)
        outcome.warnings += list(outcome.plan.warnings)
        outcome.status = PLANNED
    except SpecError as exc:
        outcome.status, outcome.diagnostics, outcome.exit_code = INVALID, exc.diagnostics, 2
        outcome.error = _("{n} problem(s) in the story").format(n=len(exc.diagnostics))
    except KolorscError as exc:
        outcome.error, outcome.exit_code = str(exc), exc.exit_code
    except Exception as exc:  # noqa: BLE001 - one broken story must not stop a collection
        outcome.error, outcome.exit_code = f"{type(exc).__name__}: {exc}", 1
    outcome.seconds = time.perf_counter() - start
    return outcome


def _index_row(o: StoryOutcome, out: Path | None) -> tuple:
    """What the collection index shows of a story; an invalid one under its file's name."""
    report = o.report
    if o.plan is not None:
        story = o.plan.story
        status = BUILT if o.status == UP_TO_DATE else o.status  # the page shows outputs, not this run
        return (output_dir(story, out), story.root, o.story_id, story.title, status,
                report.result if report else None, o.error)
    from kolorsc.spec.loader import find_project_root

    name = o.story_id or o.path.stem
    root = find_project_root(o.path.resolve())
    return ((Path(out) if out else root / "build") / name, root, name, None, o.status, None, o.error)


def _record(outcome: StoryOutcome, story_run: StoryRun) -> None:
    outcome.report = story_run
    if story_run.ok:
        changed = story_run.ran or story_run.written or story_run.lock_written
        outcome.status = BUILT if changed else UP_TO_DATE
        return
    error = story_error(story_run)
    outcome.status, outcome.error, outcome.exit_code = FAILED, str(error), error.exit_code


# -- cache ---------------------------------------------------------------------------------


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
        raise UsageError(_("--older-than must be zero or more days"))
    from kolorsc.remote.keys import lock_files

    keys: set[str] = set()
    for lock, found in lock_files(keep):
        read = lockfile.read(lock)
        if read.lock is None and not found:
            raise UsageError(_("{lock}: not a readable kolorsc lock file").format(lock=lock)
                             + (f" ({read.problem})" if read.problem else ""))
        if read.lock is not None:  # other tools' *.lock files found in a folder are ignored
            keys.update(e.key for e in read.lock.nodes.values())
    return Cache(cache_dir).gc(keys, older_than_days, dry_run=dry_run)


# -- training, LoRA files, scoring ---------------------------------------------------------


@dataclass
class TrainOutcome:
    dataset_dir: Path
    dataset_report: object | None  # kolorsc.data.DatasetReport; None when the dataset was unchanged
    result: object | None = None  # kolorsc.train.TrainResult; None with dataset_only
    generated: Path | None = None  # the rendered images of a `source: generate` dataset
    rendered: bool = False  # they were rendered now (not reused)


def train(style_file: Path, *, out_dir: Path | None = None, dataset_only: bool = False,
          models_dir: Path | None = None, device: str | None = None, progress: Progress | None = None,
          lightning_bar: bool = False) -> TrainOutcome:
    """Prepare a style's dataset (skipped when unchanged) and train its LoRA into `out_dir`
    (default build/lora/<style id> in its project; running again resumes)."""
    import json

    from kolorsc.data import dataset_fingerprint, modelscope_listing, prepare_dataset
    from kolorsc.spec.loader import find_project_root, load_style

    from kolorsc.extras import require

    require("models", "data_juicer", *(() if dataset_only else ("torch", "diffsynth", "lightning")))
    path = Path(style_file).resolve()
    root = find_project_root(path)
    style = load_style(path, root=root)
    if style.lora is None or style.lora.training is None or style.lora.dataset is None:
        raise UsageError(_("{style}: the style has no lora.training and lora.dataset to train from").format(
            style=style_file))
    out = Path(out_dir).resolve() if out_dir else root / "build" / "lora" / style.id
    models = user_paths.models_dir(models_dir)
    dataset = style.lora.dataset
    generated, rendered = None, False
    if dataset.source == "generate":  # rendered by the base model first (kolorsc/data/generate.py)
        from kolorsc.data.generate import as_local, ensure_generated

        generated = out / "generated"
        engine = get_engine("kolors", models_dir=models, device=device)
        try:
            rendered = ensure_generated(style, engine, generated,
                                        (lambda d, t, label: progress("generate", d, t, label)) if progress else None)
        finally:
            engine.close()
        dataset = as_local(dataset, generated)
    listing = modelscope_listing(dataset) if dataset.source == "modelscope" else None
    dataset_dir = out / "dataset"
    report_file = dataset_dir / "report.json"
    fingerprint = dataset_fingerprint(dataset, root, models_dir=models, listing=listing)
    report = None
    if not (report_file.is_file() and json.loads(report_file.read_text("utf-8")).get("fingerprint") == fingerprint):
        report = prepare_dataset(dataset, root, dataset_dir,
                                 (lambda d, t, label: progress("dataset", d, t, label)) if progress else None,
                                 models_dir=models, fingerprint=fingerprint)
    if dataset_only:
        return TrainOutcome(dataset_dir, report, None, generated, rendered)
    from kolorsc.train import train_lora

    result = train_lora(style, dataset_dir, out, models_dir=models, device=device, lightning_bar=lightning_bar)
    return TrainOutcome(dataset_dir, report, result, generated, rendered)


def lora_inspect(file: Path, check: bool = True):
    """(LoraFile, problems fitting the Kolors UNet — empty when it fits or unchecked)."""
    from kolorsc.lora import check_fits, kolors_unet_shapes, read_lora

    lora = read_lora(Path(file))
    return lora, (check_fits(lora.layers, kolors_unet_shapes()) if check else [])


def lora_export(source: Path, target: Path, alpha: float | None = None):
    """Convert a LoRA (e.g. diffsynth's epoch=0-step=500.ckpt) to kohya-style safetensors.
    Returns the LoraFile written."""
    from kolorsc.errors import EngineError
    from kolorsc.lora import check_fits, kohya_metadata, kolors_unet_shapes, read_lora, write_kohya

    lora = read_lora(Path(source))
    problems = check_fits(lora.layers, kolors_unet_shapes())
    if problems:
        raise EngineError(_("{source} does not fit the Kolors UNet: {problems}").format(
            source=source, problems="; ".join(problems[:3])))
    for layer in lora.layers.values():
        if layer.alpha is None or alpha is not None:
            layer.alpha = alpha if alpha is not None else float(layer.rank)
    first = next(iter(lora.layers.values()))
    meta = {**lora.metadata, **kohya_metadata(lora.rank, first.alpha, {"kolorsc.converted_from": Path(source).name})}
    write_kohya(Path(target), lora.layers, meta)
    return lora


def score(folder: Path, *, models_dir: Path | None = None, device: str | None = None, threshold: float = 6.0,
          prompts: Path | None = None):
    """Score every image in `folder` like the challenge's script (kolorsc.scoring.present)."""
    from kolorsc.extras import require
    from kolorsc.scoring import present

    require("models", "torch", "transformers")
    return present.score_folder(Path(folder), user_paths.models_dir(models_dir), device=device,
                                threshold=threshold, prompts=Path(prompts) if prompts else None)


def bundle_verify(bundle: Path, *, threshold: float = 6.0, rescore: bool = False,
                  models_dir: Path | None = None, device: str | None = None):
    """Check a bundle against the challenge's rules (and rescore it when asked)."""
    from kolorsc.emit.verify import verify_bundle

    scorer = None
    if rescore:  # torch and the predictor only when asked for
        from kolorsc.extras import require
        from kolorsc.scoring import load_scorers

        require("models", "torch", "transformers")

        scorer = load_scorers(user_paths.models_dir(models_dir), device).aesthetic
    return verify_bundle(Path(bundle), threshold=threshold, scorer=scorer)


__all__ = [
    "BuildSummary",
    "StoryOutcome",
    "build",
    "bundle_verify",
    "cache_gc",
    "cache_info",
    "load",
    "lora_export",
    "lora_inspect",
    "output_dir",
    "plan",
    "plan_story",
    "score",
    "train",
]
