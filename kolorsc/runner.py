"""Walk a plan: run only the to-run nodes, store every output the moment it exists, emit the
outputs, copy them into build/<id>/, and write the lock file last.

    1. plan     keys of every node (plan.make_plan), statuses against cache + lock (plan.resolve)
    2. lora     dataset preparation and training, or the style's LoRA file (kolors engine)
    3. render   the engine yields panel by panel; each PNG goes into the cache at once
    4. score    aesthetic scores (kolors engine; weights missing -> None with a note)
    5. select   best of N per panel (kolorsc.scoring.select_best), else candidate 1
    6. emit     panel PNGs with text chunks, storyboard PNG/PDF, scores.json, bundle
    7. outputs  build/<id>/, each file replaced atomically and only when it differs
    8. lock     <story>.lock, only after everything above succeeded

Crash safety: every cache write is atomic and verified on read, and the lock file is the
last thing written, so a build killed anywhere leaves nothing a later build trusts; what
was stored before the crash (e.g. three of eight panels) is reused.

Concurrency: the store is held shared for the whole build (gc takes it exclusive), and the
keys a stage computes are locked per key; a second build waiting on a lock re-checks the
cache when it gets it and finds the work done.

Outputs computed from scores that could not be computed are not cached ("volatile"), so
they are redone once the scorer weights are there instead of being trusted stale.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from kolorsc import lockfile, paths, safefs
from kolorsc.atomic import atomic_write_bytes
from kolorsc.cache import WORK_DIR, Cache, sha256_bytes, sha256_file
from kolorsc.engines.base import Engine, LoraWeights, RenderJob
from kolorsc.errors import BuildError, EngineError, KolorscError, ModelMissingError
from kolorsc.lockfile import LockEntry, LockFile, lock_path
from kolorsc.plan import CACHED, SKIPPED, LoraSource, Node, Plan, make_plan, resolve
from kolorsc.prompts import Panel
from kolorsc.results import Candidate, LoraResult, PanelResult, Scores, StoryResult
from kolorsc.spec.model import Story

# progress(stage, done, total, label): the CLI turns it into progress bars.
StageProgress = Callable[[str, int, int, str], None]

SCORES_MISSING_NOTE = "not computed: run `kolorsc models pull aesthetic`"
PREVIEW_SCORES_NOTE = "not computed: preview drafts are not scored"


@dataclass
class Options:
    cache_dir: Path | None = None
    out: Path | None = None  # parent of build/<id>/ folders; default <project root>/build
    models_dir: Path | None = None
    device: str | None = None
    keep_going: bool = False  # on a failing node, still run every node that does not need it
    progress: StageProgress | None = None


@dataclass
class Output:
    """A node's output: in the cache (path) or, for volatile nodes, only in memory (data)."""

    sha256: str
    path: Path | None = None
    data: bytes | None = None

    def read(self) -> bytes:
        return self.data if self.data is not None else self.path.read_bytes()


@dataclass
class BuildReport:
    story: Story
    plan: Plan
    out_dir: Path
    result: StoryResult | None = None
    ran: dict[str, int] = field(default_factory=dict)  # kind -> nodes computed
    written: list[str] = field(default_factory=list)  # files (re)written in out_dir
    lock_written: bool = False
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


# -- 1. planning ---------------------------------------------------------------------------


def plan_story(story: Story, panels: list[Panel], engine: Engine, cache: Cache, verify: bool = True,
               models_dir: Path | None = None) -> Plan:
    """The story's plan with every node's status and, for to-run nodes, why."""
    lora = None if engine.preview else lora_source(story, cache, models_dir)
    plan = make_plan(story, panels, engine.identity(), engine.preview, lora)
    return resolve(plan, cache, lockfile.read(lock_path(story.path)), verify=verify)


def lora_source(story: Story, cache: Cache, models_dir: Path | None = None) -> LoraSource | None:
    spec = story.style.lora
    if spec is None:
        return None
    if spec.path is not None:
        where = story.style.source or story.path
        return LoraSource("file", spec.scale, file_sha256=_file_digest(Path(spec.path), cache, f"{where}: lora.path"))
    if spec.training is not None and spec.dataset is not None:
        from kolorsc.data import dataset_fingerprint
        from kolorsc.train import TRAINER_VERSION

        fp = dataset_fingerprint(spec.dataset, story.root, models_dir=paths.models_dir(models_dir))
        return LoraSource("train", spec.scale, dataset_fingerprint=fp, trainer_version=str(TRAINER_VERSION))
    return None


def _file_digest(path: Path, cache: Cache, what: str) -> str:
    """sha256 of a (large) LoRA file, remembered by path, size and mtime so a no-op build
    does not re-read 100 MB (the same trick as DVC's state database)."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise BuildError(f"{what}: the LoRA file {path} does not exist (put it there, or train one with lora.train)") from None
    memo = cache.root / "state" / (sha256_bytes(f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()) + ".sha256")
    try:
        return memo.read_text().strip()
    except FileNotFoundError:
        pass
    value = sha256_file(path)
    atomic_write_bytes(memo, value.encode())
    return value


# -- the walk ------------------------------------------------------------------------------


class _Run:
    def __init__(self, plan: Plan, engine: Engine, cache: Cache, opts: Options):
        self.plan, self.engine, self.cache, self.opts = plan, engine, cache, opts
        self.story = plan.story
        self.nodes = {n.id: n for n in plan.nodes}
        self.outputs: dict[str, Output] = {}
        self.failed: set[str] = set()
        self.volatile: set[str] = set()  # not cached: computed from scores that are missing
        self.not_computed: set[str] = set()  # score nodes without a number (weights missing)
        self.errors: list[str] = []
        self.ran: dict[str, int] = {}
        self.scores_note: str | None = PREVIEW_SCORES_NOTE if plan.preview else None
        self.scorer_identity: dict = {}
        self.image_scores: dict[str, object] = {}  # score node id -> ImageScore

    # helpers ----------------------------------------------------------------------------

    def progress(self, stage: str, done: int, total: int, label: str = "") -> None:
        if self.opts.progress:
            self.opts.progress(stage, done, total, label)

    def adopt(self, node: Node, verify: bool = True) -> bool:
        """Take the node's output from the cache if it is there (verified, unless `plan.resolve`
        verified it moments ago in this build: then a size check, not a second hashing)."""
        found = self.cache.lookup(node.key, verify=verify)
        if found.hit:
            self.outputs[node.id] = Output(found.entry.sha256, path=found.entry.path)
            self.cache.touch(node.key)  # used now: age-based gc keeps it
            return True
        return False

    def store(self, node: Node, data: bytes) -> None:
        if node.id in self.volatile:
            self.outputs[node.id] = Output(sha256_bytes(data), data=data)
        else:
            entry = self.cache.put_bytes(node.key, data, node.id, node.kind)
            self.outputs[node.id] = Output(entry.sha256, path=entry.path)
        self.ran[node.kind] = self.ran.get(node.kind, 0) + 1

    def compute(self, node: Node, make: Callable[[Node], bytes]) -> None:
        """Make and store one node's output under its key's lock; a build that waited for
        the lock finds the output made by the other one and adopts it instead."""
        if node.id in self.volatile:
            self.store(node, make(node))
            return
        with self.cache.lock_keys([node.key]):
            if not self.adopt(node):
                self.store(node, make(node))

    def ready(self, node: Node) -> bool:
        """All inputs exist; else the node is marked failed (upstream failed)."""
        blocked = [
            d for d in node.deps
            if d not in self.outputs and d not in self.not_computed and self.nodes[d].status != SKIPPED
        ]
        if blocked:
            self.failed.add(node.id)
            return False
        return True

    def fail(self, nodes: list[Node], exc: BaseException) -> None:
        self.failed.update(n.id for n in nodes)
        what = ", ".join(n.id for n in nodes[:3]) + (f" and {len(nodes) - 3} more" if len(nodes) > 3 else "")
        message = f"{what}: {exc}"
        self.errors.append(message)
        if not self.opts.keep_going:
            if isinstance(exc, KolorscError):
                raise exc
            raise BuildError(message) from exc

    def stage(self, kind: str) -> list[Node]:
        """Nodes of `kind`; cached ones are adopted, to-run ones returned (when ready)."""
        todo = []
        for node in self.plan.of_kind(kind):
            if node.status == SKIPPED:
                continue
            if node.status == CACHED and node.id not in self.volatile and self.adopt(node, verify=False):
                continue
            if self.ready(node):
                todo.append(node)
        return todo

    # 2. dataset and LoRA ----------------------------------------------------------------

    def lora_stage(self) -> LoraWeights | None:
        if self.plan.preview or "lora" not in self.nodes or self.nodes["lora"].status == SKIPPED:
            return None
        lora = self.nodes["lora"]
        spec = self.story.style.lora
        if lora.status == CACHED and self.adopt(lora, verify=False):
            dataset = self.nodes.get("dataset")
            if dataset is not None and dataset.status == CACHED:
                self.adopt(dataset, verify=False)  # recorded in the lock file, not extracted
            return LoraWeights(self.outputs["lora"].path, spec.scale, lora.key)
        with self.cache.lock_keys([lora.key]):
            if not self.adopt(lora):
                try:
                    self._make_lora(lora, spec)
                except Exception as exc:  # noqa: BLE001 - reported with the node's id
                    self.fail([lora], exc)
                    return None
        return LoraWeights(self.outputs["lora"].path, spec.scale, lora.key)

    def _make_lora(self, lora: Node, spec) -> None:
        if spec.path is not None:
            entry = self.cache.put_file(lora.key, Path(spec.path), lora.id, "lora")
            self.outputs[lora.id] = Output(entry.sha256, path=entry.path)
            self.ran["lora"] = self.ran.get("lora", 0) + 1
            return
        from kolorsc.train import train_lora

        # A work folder named by the LoRA's key, outside objects/: a training run killed
        # half-way resumes from its checkpoints next time (train_lora resumes in the same
        # out_dir); only the finished file enters the cache, and the folder goes.
        work = self.cache.root / WORK_DIR / lora.key[:24]
        dataset_dir = self._dataset(work / "dataset")
        result = train_lora(
            self.story.style,
            dataset_dir,
            work / "lora",
            models_dir=paths.models_dir(self.opts.models_dir),
            device=self.opts.device,
            progress=lambda d, t, label: self.progress("train", d, t, label),
        )
        entry = self.cache.put_file(lora.key, Path(result.path), lora.id, "lora")
        self.outputs[lora.id] = Output(entry.sha256, path=entry.path)
        self.ran["lora"] = self.ran.get("lora", 0) + 1
        shutil.rmtree(work, ignore_errors=True)

    def _dataset(self, folder: Path) -> Path:
        """The prepared dataset in `folder`: from the cache (a tar: the dataset is reused when
        only training settings change), else prepared with Data-Juicer and stored."""
        node = self.nodes["dataset"]
        with self.cache.lock_keys([node.key]):
            if not self.adopt(node):
                from kolorsc.data import prepare_dataset

                with tempfile.TemporaryDirectory(prefix="kolorsc-dataset-") as tmp:
                    prepared = Path(tmp) / "dataset"
                    prepare_dataset(
                        self.story.style.lora.dataset,
                        self.story.root,
                        prepared,
                        lambda d, t, label: self.progress("dataset", d, t, label),
                        models_dir=paths.models_dir(self.opts.models_dir),
                    )
                    self.store(node, deterministic_tar(prepared))
        shutil.rmtree(folder, ignore_errors=True)
        with tarfile.open(fileobj=io.BytesIO(self.outputs[node.id].read())) as tar:
            tar.extractall(folder, filter="data")
        return folder

    # 3. renders -------------------------------------------------------------------------

    def render_stage(self, lora: LoraWeights | None) -> None:
        todo = self.stage("render")
        if not todo:
            return
        panels = {p.index: p for p in self.plan.panels}
        with self.cache.lock_keys(n.key for n in todo):
            todo = [n for n in todo if not self.adopt(n)]  # another build may have made them
            if not todo:
                return
            jobs = {RenderJob(panels[n.panel], n.seed): n for n in todo}
            try:
                for job, image in self.engine.render(
                    list(jobs), lora, lambda d, t, label: self.progress("render", d, t, label)
                ):
                    self.store(jobs[job], encode_png(image))
            except Exception as exc:  # noqa: BLE001 - panels stored so far stay in the cache
                missing = [n for n in todo if n.id not in self.outputs]
                self.fail(missing or todo, exc if isinstance(exc, KolorscError) else EngineError(str(exc)))
            finally:
                self.engine.close()

    # 4. scores --------------------------------------------------------------------------

    def score_stage(self) -> None:
        nodes = [n for n in self.plan.of_kind("score") if self.ready(n)]
        if not nodes:
            return  # preview: no scores, and no import of the scoring package
        from kolorsc.scoring.report import ImageScore

        todo = []
        for node in nodes:
            record = self._cached_score(node, ImageScore)
            if record is None:
                todo.append(node)
        if not todo:
            return
        with self.cache.lock_keys(n.key for n in todo):
            todo = [n for n in todo if self._cached_score(n, ImageScore) is None]
            if todo:
                self._score(todo)

    def _cached_score(self, node: Node, image_score_cls):
        data = self.cache.read_bytes(node.key)
        if data is None:
            return None
        record = json.loads(data)
        # input-addressed key: check the score was computed on the image we have now
        if record.get("image") != self.outputs[node.deps[0]].sha256:
            return None
        self.outputs[node.id] = Output(sha256_bytes(data), path=self.cache.object_path(node.key))
        self.image_scores[node.id] = image_score_cls.from_json(record["score"])
        self.scorer_identity = record.get("scorer", {})
        return record

    def _score(self, todo: list[Node]) -> None:
        from PIL import Image

        from kolorsc.scoring import load_scorers
        from kolorsc.scoring.report import score_one_batch

        try:
            scorers = load_scorers(paths.models_dir(self.opts.models_dir), self.opts.device)
        except ModelMissingError:
            # Never invent a number: the scores stay None and everything made from them is
            # recomputed next time instead of cached.
            self.scores_note = SCORES_MISSING_NOTE
            self.not_computed.update(n.id for n in self.plan.of_kind("score") if n.id not in self.outputs)
            self.volatile.update(n.id for n in self.plan.nodes if n.kind in ("select", "panel", "storyboard", "pdf", "scores", "bundle"))
            return
        self.scorer_identity = scorers.identity
        panels = {p.index: p for p in self.plan.panels}
        images = []
        for node in todo:
            with Image.open(io.BytesIO(self.outputs[node.deps[0]].read())) as im:
                images.append(im.convert("RGB"))
        # one call: the scorer batches on its device
        results = score_one_batch(images, [panels[n.panel].prompt for n in todo], scorers)
        for done, (node, result) in enumerate(zip(todo, results), 1):
            record = {"image": self.outputs[node.deps[0]].sha256, "scorer": scorers.identity, "score": result.to_json()}
            self.store(node, json.dumps(record, sort_keys=True).encode())
            self.image_scores[node.id] = result
            self.progress("score", done, len(todo), node.id)

    # 5. selection -----------------------------------------------------------------------

    def select_stage(self) -> None:
        for node in self.stage("select"):
            self.compute(node, lambda n: json.dumps({"seed": self._choose(n)}).encode())

    def _choose(self, node: Node) -> int:
        """Best of N by the scoring objective; candidate 1 (the scene's seed) without scores."""
        renders = [self.nodes[d] for d in node.deps if self.nodes[d].kind == "render"]
        scored = [self.image_scores.get(f"score/{r.id.split('/', 1)[1]}") for r in renders]
        if len(renders) == 1 or not any(scored):
            return renders[0].seed
        from kolorsc.scoring import CandidateScore, select_best

        # The other panels' first candidates stand for their choices: selection stays per
        # panel and order-independent (a sequential "current choice" would make panel 1's
        # pick depend on panel 8's).
        others = []
        for p in self.plan.panels:
            s = self.image_scores.get(f"score/{p.index:02d}/seed-{p.candidate_seeds()[0]}")
            if p.index != node.panel and s is not None:
                others.append(list(s.embedding))
        cands = [
            CandidateScore(r.seed, s.aesthetic if s else None, s.embedding if s else None, s.alignment if s else None)
            for r, s in zip(renders, scored)
        ]
        return renders[select_best(cands, others or None)].seed

    # 6. result and emit -----------------------------------------------------------------

    def story_result(self) -> StoryResult:
        chosen_seed = {p.index: json.loads(self.outputs[f"select/{p.index:02d}"].read())["seed"] for p in self.plan.panels}
        chosen_score = {i: self.image_scores.get(f"score/{i:02d}/seed-{s}") for i, s in chosen_seed.items()}
        panels = []
        for p in self.plan.panels:
            others = [s.embedding for i, s in chosen_score.items() if i != p.index and s is not None]
            cands = [
                self._candidate(r, self.image_scores.get(f"score/{p.index:02d}/seed-{r.seed}"), others)
                for r in self.plan.of_kind("render")
                if r.panel == p.index and r.id in self.outputs
            ]
            chosen = next(c for c in cands if c.seed == chosen_seed[p.index])
            panels.append(PanelResult(p, chosen, tuple(cands)))
        return StoryResult(
            story=self.story,
            panels=tuple(panels),
            engine=self.plan.engine,
            preview=self.plan.preview,
            scores=self._scores([s for s in chosen_score.values() if s is not None]),
            lora=self._lora_result(),
        )

    def _candidate(self, render: Node, score, others: list) -> Candidate:
        """A rendered candidate with its numbers; coherence = mean similarity to the other
        panels' chosen images (None without scores)."""
        out = self.outputs[render.id]
        if score is None:
            return Candidate(render.seed, out.path, out.sha256)
        from kolorsc.scoring import CandidateScore, candidate_coherence

        coherence = candidate_coherence(CandidateScore(render.seed, score.aesthetic, score.embedding), others) if others else None
        return Candidate(render.seed, out.path, out.sha256, score.aesthetic, coherence, score.alignment)

    def _scores(self, chosen: list) -> Scores:
        if self.plan.preview or len(chosen) != len(self.plan.panels):
            return Scores(threshold=self.story.threshold, note=self.scores_note or SCORES_MISSING_NOTE)
        from kolorsc.scoring import summarize

        return summarize(chosen, scorer=self.scorer_identity, note=self.scores_note).to_scores(self.story.threshold)

    def _lora_result(self) -> LoraResult | None:
        if self.plan.preview or "lora" not in self.outputs:
            return None
        spec = self.story.style.lora
        t = spec.training
        return LoraResult(
            path=self.outputs["lora"].path,
            key=self.nodes["lora"].key,
            rank=t.rank if t else None,
            alpha=t.alpha if t else None,
            scale=spec.scale,
            trained=t is not None,
            info={"base_model": self.story.style.base_model, "inputs": self.nodes["lora"].inputs},
        )

    def emit_stage(self, result: StoryResult) -> None:
        # The emitters (reportlab...) are imported only when something is to be emitted: a
        # no-op build adopts every cached output and imports nothing.
        def emit():
            import kolorsc.emit

            return kolorsc.emit

        def images() -> list[bytes]:
            return [self.outputs[self._chosen_render(pr)].read() for pr in result.panels]

        makers = {
            "panel": lambda n: emit().panel_png(
                self.outputs[self._chosen_render(result.panels[n.panel - 1])].read(), result.panels[n.panel - 1], result
            ),
            "storyboard": lambda n: emit().storyboard_png(result, images()),
            "pdf": lambda n: emit().storyboard_pdf(result, images()),
            "scores": lambda n: emit().scores_json(result),
            "bundle": lambda n: emit().bundle_zip(
                result,
                [self.outputs[f"panel/{pr.panel.index:02d}"].read() for pr in result.panels],
                result.lora.path if result.lora else None,
            ),
        }
        for kind, make in makers.items():
            todo = self.stage(kind)
            for i, node in enumerate(todo, 1):
                try:
                    self.compute(node, make)
                except Exception as exc:  # noqa: BLE001 - reported with the node's id
                    self.fail([node], exc)
                self.progress("emit", i, len(todo), node.id)

    def _chosen_render(self, pr: PanelResult) -> str:
        return f"render/{pr.panel.index:02d}/seed-{pr.chosen.seed}"


def run(plan: Plan, engine: Engine, cache: Cache, opts: Options) -> BuildReport:
    """Run the plan's to-run nodes; write outputs and, only if all went well, the lock file."""
    story = plan.story
    out_dir = output_dir(story, opts.out)
    report = BuildReport(story, plan, out_dir)
    r = _Run(plan, engine, cache, opts)
    try:
        with cache.store_lock():
            lora = r.lora_stage()
            r.render_stage(lora)
            r.score_stage()
            r.select_stage()
            if not r.errors:
                report.result = r.story_result()
                r.emit_stage(report.result)
    finally:
        report.ran, report.errors = r.ran, list(r.errors)
    if report.errors:  # keep-going mode: everything possible is cached; nothing else is trusted
        raise BuildError(f"{story.id}: {len(report.errors)} node(s) failed: " + "; ".join(report.errors))
    lost = [n.id for n in plan.nodes if n.status != SKIPPED and n.id not in r.outputs and n.id not in r.not_computed]
    if lost:  # never record a lock file with a hole in it
        raise BuildError(f"{story.id}: no output for {', '.join(lost[:5])} (internal error, please report)")
    report.written = write_outputs(plan, r.outputs, out_dir)
    report.lock_written = lockfile.write(lock_path(story.path), lock_of(plan, r.outputs))
    return report


def build_story(story: Story, panels: list[Panel], engine: Engine, opts: Options) -> BuildReport:
    cache = Cache(opts.cache_dir)
    plan = plan_story(story, panels, engine, cache, models_dir=opts.models_dir)
    return run(plan, engine, cache, opts)


# -- 7. outputs and 8. lock ----------------------------------------------------------------


def output_dir(story: Story, out: Path | None) -> Path:
    return (Path(out) if out else Path(story.root) / "build") / story.id


def write_outputs(plan: Plan, outputs: dict[str, Output], out_dir: Path) -> list[str]:
    """Put each output file in place, atomically, only when its bytes differ. Folders and
    files are opened without following symlinks (kolorsc.safefs): a planted link is a
    BuildError naming it, and nothing is written or deleted through it."""
    written = []
    with safefs.output_root(out_dir, plan.story.root) as root:
        for node in plan.nodes:
            if node.output is None or node.id not in outputs:
                continue
            out = outputs[node.id]
            folder, name = safefs.folder_of(root, node.output)
            try:
                if folder.sha256(name) == out.sha256:
                    continue
                if out.data is not None:
                    folder.write_bytes(name, out.data)
                else:
                    folder.copy_file(name, out.path)
            finally:
                if folder is not root:
                    folder.close()
            written.append(node.output)
        _remove_stale(plan, root)
    return written


def _remove_stale(plan: Plan, root: safefs.OutputDir) -> None:
    """Remove our own outputs that this build no longer makes: a bundle under an old team
    name, panels beyond the story's count. Nothing else in build/<id>/ is touched, and a
    symlink among them is refused, not followed."""
    current = {n.output for n in plan.nodes if n.output}
    bundle = f"-可图Kolors训练-{plan.story.id}.zip"
    for name in root.names():
        if name.endswith(bundle) and name not in current:
            root.unlink(name)
    if root.kind("panels") is None:
        return
    with root.subdir("panels") as panels:
        for name in panels.names():
            if re.fullmatch(r"[0-9][0-9]\.png", name) and f"panels/{name}" not in current:
                panels.unlink(name)


def lock_of(plan: Plan, outputs: dict[str, Output]) -> LockFile:
    nodes = {
        n.id: LockEntry(n.key, outputs[n.id].sha256 if n.id in outputs else None, n.input_digests())
        for n in plan.nodes
        if n.status != SKIPPED
    }
    return LockFile(plan.story.id, nodes, plan.engine.get("name", ""))


def encode_png(image) -> bytes:
    """PNG bytes of an engine's image: RGB, no metadata, fixed compression -> same bytes each run."""
    buf = io.BytesIO()
    image.convert("RGB").save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


def deterministic_tar(folder: Path) -> bytes:
    """A tar of `folder` with sorted names and zeroed times/owners: same files -> same bytes."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(p for p in Path(folder).rglob("*") if p.is_file()):
            info = tarfile.TarInfo(path.relative_to(folder).as_posix())
            info.size = path.stat().st_size
            info.mtime, info.uid, info.gid, info.uname, info.gname, info.mode = 0, 0, 0, "", "", 0o644
            with open(path, "rb") as f:
                tar.addfile(info, f)
    return buf.getvalue()
