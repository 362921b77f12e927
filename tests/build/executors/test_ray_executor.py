"""`--executor ray` on a real local Ray cluster (2 CPUs, no GPU): the same bytes as the local
executor, renders made once across stories, a killed worker replaced without committing a
node twice, a killed driver resumed, the tiny Kolors engine and LoRA training on workers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from kolorsc import api
from kolorsc.build.executors.ray import RayExecutor
from kolorsc.build.executors.ray_worker import WorkerSpec
from kolorsc.build.graph import Node
from kolorsc.build.stages.base import Env, Task, Work
from kolorsc.cache import Cache
from kolorsc.engines import EngineSpec

from _build_fixtures import STORY, CountingEngine, edit, make_project, story_path, use_lora_file_style
from _extras import require_models
from _ray_fixtures import COPY, OBJECT_STORE, TESTS, cluster_env, collection, outputs

ray = pytest.importorskip("ray")

RENDERS = 16  # classroom-dream 8 + hero-dragon 8; the copy's 8 are classroom-dream's


@pytest.fixture(scope="module")
def cluster():
    """A local Ray cluster for the module; yields its address (for a second driver)."""
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=OBJECT_STORE, log_to_driver=False,
             runtime_env=cluster_env())
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The collection built by the local executor: what every Ray build must reproduce."""
    base = tmp_path_factory.mktemp("local")
    project = collection(base / "project")
    summary = api.build([project / "stories"], engine=CountingEngine(), cache_dir=base / "cache")
    assert summary.exit_code == 0, summary.to_json()
    return outputs(project)


def markers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_workers_run_the_uploaded_kolorsc_not_this_checkout(cluster):
    @ray.remote
    def where_is_kolorsc():
        import kolorsc

        return kolorsc.__file__

    path = Path(ray.get(where_is_kolorsc.remote()))
    assert "runtime_resources" in path.parts and not path.is_relative_to(TESTS.parent)


def test_collection_on_ray_is_byte_identical_and_shared_renders_are_made_once(cluster, reference, tmp_path):
    project = collection(tmp_path / "project")
    made = tmp_path / "markers"
    made.mkdir()
    summary = api.build([project / "stories"], engine=CountingEngine(marker_dir=made), cache_dir=tmp_path / "cache",
                        executor="ray")
    assert summary.exit_code == 0, summary.to_json()
    assert outputs(project) == reference  # panels, storyboards, PDFs, bundles, pages, locks

    rendered = markers(made)
    assert len(rendered) == RENDERS  # the copy's renders were the original's: one render each
    assert str(os.getpid()) not in {name.split("-")[2] for name in rendered}  # made by workers
    stories = {o.story_id: o.to_json() for o in summary.outcomes}
    ran_on = {n["id"]: n["ran_on"] for n in stories[COPY]["nodes"]}
    assert ran_on["render/01/seed-1"].startswith("ray:") and ran_on["pdf"].startswith("ray:")
    assert ran_on["render/01/seed-1"] == {n["id"]: n["ran_on"] for n in stories[STORY]["nodes"]}["render/01/seed-1"]


def test_a_killed_render_worker_is_replaced_and_no_node_is_committed_twice(cluster, reference, tmp_path,
                                                                            monkeypatch):
    project = collection(tmp_path / "project")
    made = tmp_path / "markers"
    made.mkdir()
    engine = CountingEngine(marker_dir=made, delay=0.25)
    executor = RayExecutor.connect(Env(engine, tmp_path / "models"), WorkerSpec(EngineSpec.of(engine)), workers=2)
    commits = Counter()
    put = Cache.put_bytes

    def counted(self, key, *args, **kwargs):
        commits[key] += 1
        return put(self, key, *args, **kwargs)

    monkeypatch.setattr(Cache, "put_bytes", counted)
    killed = []

    def kill_a_busy_worker():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            pool = executor.pool
            busy = [s for s in (pool.slots if pool else []) if s.running and len(s.running.left) > 2]
            if busy and len(list(made.iterdir())) >= 3:
                ray.kill(busy[0].handle)  # the actor dies mid-piece; Ray does not restart it
                killed.append(busy[0].name)
                return
            time.sleep(0.02)

    thread = threading.Thread(target=kill_a_busy_worker, daemon=True)
    thread.start()
    summary = api.build([project / "stories"], engine=engine, cache_dir=tmp_path / "cache", executor=executor)
    thread.join(10)
    assert killed, "no worker was busy long enough to be killed"
    assert summary.exit_code == 0, summary.to_json()
    assert outputs(project) == reference  # every panel rendered, the same bytes
    assert commits and max(commits.values()) == 1  # no node committed twice
    assert len(markers(made)) >= RENDERS  # what the dead worker had in hand was made again
    ran_on = set(summary.outcomes[0].report.where.values())
    assert not any(w.endswith("/" + killed[0]) for w in ran_on) or len(ran_on) > 1


DRIVER = """
import sys
from pathlib import Path
from kolorsc import api
from _build_fixtures import CountingEngine
stories, cache, made, address = sys.argv[1:5]
api.build([Path(stories)], engine=CountingEngine(marker_dir=Path(made), delay=0.3), cache_dir=Path(cache),
          executor="ray", ray_address=address)
"""


def test_a_driver_killed_mid_build_leaves_a_consistent_cache_and_the_next_build_resumes(cluster, reference,
                                                                                       tmp_path):
    project = collection(tmp_path / "project")
    cache, made = tmp_path / "cache", tmp_path / "markers"
    made.mkdir()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS.parent), str(TESTS)])}
    driver = subprocess.Popen([sys.executable, "-c", DRIVER, str(project / "stories"), str(cache), str(made), cluster],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    def committed() -> int:  # renders the driver stored (they are the first nodes to run)
        return len([p for p in cache.glob("objects/*/*") if p.suffix != ".json"])

    deadline = time.monotonic() + 120
    while committed() < 3 and driver.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert driver.poll() is None, driver.stderr.read().decode()[-2000:]
    driver.send_signal(signal.SIGKILL)
    driver.wait()

    assert not list((project / "stories").glob("*.lock"))  # no story finished: no lock file
    plans = [api.plan(story_path(project, name), engine=CountingEngine(), cache_dir=cache)
             for name in (STORY, "hero-dragon")]
    kept = sum(1 for p in plans for n in p.of_kind("render") if n.status == "cached")
    assert 0 < kept < RENDERS  # what was committed before the kill is in the cache, verified

    again = tmp_path / "markers-2"
    again.mkdir()
    summary = api.build([project / "stories"], engine=CountingEngine(marker_dir=again), cache_dir=cache,
                        executor="ray")
    assert summary.exit_code == 0, summary.to_json()
    assert outputs(project) == reference
    assert len(markers(again)) == RENDERS - kept  # resumed: only what was not committed


def test_a_failing_stage_on_a_worker_fails_its_story_like_the_local_executor(cluster, tmp_path):
    project = make_project(tmp_path / "project")
    summary = api.build([story_path(project)], engine=CountingEngine(fail_after=2), cache_dir=tmp_path / "cache",
                        executor="ray", ray_workers=1)
    outcome = summary.outcomes[0]
    assert summary.exit_code == 1 and outcome.status == "failed"
    assert "simulated crash inside the render stage" in outcome.error
    assert not (project / "stories" / f"{STORY}.lock").exists()
    assert outcome.report.ran.get("render") == 2  # what the worker made before failing is kept


def emit_task(report, node_id: str, **changed) -> Task:
    """The emitter node `node_id` of a built story, its inputs from that build's outputs;
    `changed` inputs make a node whose key promises something else (another code identity)."""
    node = report.plan.node(node_id).node
    if changed:
        node = Node(node.id, {**node.inputs, **changed}, node.deps, node.loc, node.output, node.skipped)
    graph = report.plan.graph
    upstream = {graph.node(dep).key: report.outputs[dep] for dep in node.deps if dep in report.outputs}
    return Task(node.kind, (Work(node, graph),), upstream)


def test_emitters_go_several_to_a_ray_task_and_a_failing_one_fails_alone(cluster, tmp_path):
    project = make_project(tmp_path / "project")
    summary = api.build([story_path(project)], engine=CountingEngine(), cache_dir=tmp_path / "cache")
    report = summary.outcomes[0].report
    ids = ["storyboard", "pdf", "scores", "page", "panel/01", "panel/02"]
    bad = emit_task(report, "pdf", code="0123456789abcdef")
    tasks = [emit_task(report, i) for i in ids[:3]] + [bad] + [emit_task(report, i) for i in ids[3:]]
    engine = CountingEngine()
    executor = RayExecutor(ray, Env(engine, tmp_path / "models"), WorkerSpec(EngineSpec.of(engine)), workers=1)
    calls = []
    fn = executor.tasks.fn

    class Counted:  # counts the Ray tasks the executor starts
        def options(self, **kw):
            remote = fn.options(**kw)
            return type("R", (), {"remote": lambda _, *a: calls.append(len(a[1])) or remote.remote(*a)})()

    executor.tasks.fn = Counted()
    try:
        results = {r.key: r for r in executor.run(tasks)}
    finally:
        executor.close()
    assert len(calls) < len(tasks) and sum(calls) == len(tasks)  # batched, every task sent once
    assert "other kolorsc code for pdf" in str(results[bad.keys[0]].error)
    for task in tasks:
        if task is not bad:  # the bad node's batch-mates were made, the same bytes as locally
            (key,) = task.keys
            made = results[key]
            assert made.error is None and made.where.startswith("ray:")
            assert made.data == report.outputs[task.work[0].node.id].read()


def test_a_worker_speaks_the_drivers_language(cluster, tmp_path):
    project = make_project(tmp_path / "project")
    summary = api.build([story_path(project)], engine=CountingEngine(), cache_dir=tmp_path / "cache")
    bad = emit_task(summary.outcomes[0].report, "pdf", code="0123456789abcdef")
    engine = CountingEngine()
    errors = {}
    for lang in ("zh", "en"):  # the workers' own environment says nothing (English)
        spec = WorkerSpec(EngineSpec.of(engine), lang=lang)
        executor = RayExecutor(ray, Env(engine, tmp_path / "models"), spec, workers=1)
        try:
            (result,) = executor.run([bad])
        finally:
            executor.close()
        errors[lang] = str(result.error)
    assert "pdf 的 kolorsc 代码" in errors["zh"] and "不同" in errors["zh"]
    assert "other kolorsc code for pdf" in errors["en"]


def test_renders_that_share_attention_go_whole_to_one_worker(cluster, tmp_path, monkeypatch):
    """A story sharing attention: its 8 renders are one unsplittable task. Two workers would
    each get half of any other task of 8 (an even share); this one goes whole to one actor."""
    from kolorsc.build.executors.ray_pool import ActorPool

    pieces = []  # what the pool was given
    add = ActorPool.add
    monkeypatch.setattr(ActorPool, "add", lambda pool, new: pieces.extend(new) or add(pool, new))
    built = {}
    for side in ("local", "ray"):
        project = make_project(tmp_path / side)
        edit(story_path(project), "defaults:\n", "consistency:\n  shared_attention: {identity: 2}\ndefaults:\n")
        summary = api.build([story_path(project)], engine=CountingEngine(), cache_dir=tmp_path / side / "cache",
                            executor=side, ray_workers=2)
        assert summary.exit_code == 0, summary.to_json()
        built[side] = outputs(project), summary.outcomes[0].report.where
    (local, _), (remote, where) = built["local"], built["ray"]
    assert remote == local
    renders = [p for p in pieces if p.task.kind == "render"]
    assert [(p.size, p.task.unsplittable) for p in renders] == [(8, True)]
    made_by = {w for node, w in where.items() if node.startswith("render/")}
    assert len(made_by) == 1 and made_by.pop().startswith("ray:")


def test_character_pictures_sheets_and_references_on_ray_give_the_local_bytes(cluster, tmp_path):
    """hero-dragon with a reference picture file (read by the driver), a generated character
    sheet (rendered by a pool worker) and the IP-Adapter on, on a non-preview engine."""
    import io

    from PIL import Image

    from _build_fixtures import RealishEngine

    built = {}
    for side in ("local", "ray"):
        project = make_project(tmp_path / side, stories=("hero-dragon",))
        use_lora_file_style(project).write_bytes(b"lora weights" * 100)
        story = story_path(project, "hero-dragon")
        png = io.BytesIO()
        Image.new("RGB", (40, 40), (200, 30, 30)).save(png, format="PNG")
        (project / "stories" / "dragon.png").write_bytes(png.getvalue())
        edit(story, "    look: 巨大的守护龙，鳞片闪耀\n", "    look: 巨大的守护龙，鳞片闪耀\n    reference: dragon.png\n")
        edit(story, "    look: 公主，穿着破旧的礼服\n", "    look: 公主，穿着破旧的礼服\n    reference: generate\n")
        edit(story, "defaults:\n", "consistency:\n  ip_adapter: {scale: 0.5}\ndefaults:\n")
        summary = api.build([story], engine=RealishEngine(), cache_dir=tmp_path / side / "cache",
                            models_dir=tmp_path / "models", executor=side, ray_workers=2)
        assert summary.exit_code == 0, summary.to_json()
        built[side] = outputs(project), summary.outcomes[0].report.where
    assert built["ray"][0] == built["local"][0]
    assert "build/hero-dragon/characters/princess.png" in built["ray"][0]  # the sheet
    where = built["ray"][1]
    assert where["picture/dragon"] == "local"  # the project's file, read where the project is
    assert where["sheet/princess"].startswith("ray:") and where["reference/dragon"].startswith("ray:")


def test_cli_builds_on_ray_from_the_environment_and_reports_where_nodes_ran(cluster, tmp_path):
    from click.testing import CliRunner

    from kolorsc.cli import main

    project = make_project(tmp_path / "project")
    result = CliRunner().invoke(main, ["build", str(story_path(project)), "--cache-dir", str(tmp_path / "cache"),
                                       "--json"], env={"KOLORSC_EXECUTOR": "ray"}, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    nodes = json.loads(result.output)["stories"][0]["nodes"]
    assert {n["ran_on"].split("/")[0] for n in nodes if n["status"] == "to-run"} == {
        f"ray:{ray.util.get_node_ip_address()}"}
    assert (project / "build" / STORY / "storyboard.pdf").is_file()


# -- the model path: tiny Kolors with a LoRA, and LoRA training, on workers -----------------


def test_tiny_kolors_with_a_lora_renders_the_same_bytes_on_ray(cluster, tmp_path):
    require_models()
    from _kolors_fixtures import TinyKolorsUNet, make_engine, write_kolors_layout, write_lora

    models = tmp_path / "models"
    write_kolors_layout(models)
    built = {}
    for side in ("local", "ray"):
        project = make_project(tmp_path / side, stories=("hero-dragon",))
        story = story_path(project, "hero-dragon")
        edit(story, "steps: 50", "steps: 2")
        edit(story, "size: [1024, 1024]", "size: [256, 256]")
        write_lora(use_lora_file_style(project), TinyKolorsUNet(), ("blocks.1.transformer_blocks.0.attn1.to_q",))
        engine = make_engine(models, tmp_path / side / "cache")
        # one worker: each worker process imports torch and loads the models (~15 s here)
        summary = api.build([story], engine=engine, cache_dir=tmp_path / side / "cache", models_dir=models,
                            executor=side, ray_workers=1)
        assert summary.exit_code == 0, summary.outcomes[0].error
        built[side] = outputs(project), summary.outcomes[0].report.where
    assert built["ray"][0] == built["local"][0]
    where = built["ray"][1]
    assert where["lora"] == "local"  # the style's LoRA file is read by the driver
    made_by = {node.split("/")[0]: w for node, w in where.items()}
    assert made_by["render"].startswith("ray:") and made_by["score"].startswith("ray:")


TINY_TRAINING = """  train:
    rank: 4
    alpha: 2
    epochs: 1
    steps_per_epoch: 2
    precision: "32"
    gradient_checkpointing: false
    center_crop: true
    resolution: 256
    accelerator: cpu
    devices: 1
  dataset:
    source: generate
    generate:
      count: 3
      steps: 2
      prompts: [山水, 竹林, 小桥]
"""


def tiny_training_project(dest: Path) -> Path:
    """classroom-dream with its style (ink-wash) distilled from three images the engine renders
    (`source: generate`) into a LoRA trained on the tiny stand-in models."""
    project = make_project(dest)
    style = project / "styles" / "ink-wash.yaml"
    text = style.read_text("utf-8")
    style.write_text(text[: text.index("  train:")] + TINY_TRAINING, "utf-8")
    return project


def test_a_generated_dataset_and_lora_training_run_as_ray_tasks(cluster, tmp_path, monkeypatch):
    require_models("lightning")
    import torch

    import kolorsc.train
    from _build_fixtures import RealishEngine
    from _train_fixtures import TinyLoader

    monkeypatch.setattr(kolorsc.train, "default_model_loader", TinyLoader())  # the workers: setup_worker
    threads = torch.get_num_threads()
    built = {}
    for side in ("local", "ray"):
        # Ray runs a 1-CPU task with OMP_NUM_THREADS=1; with more threads here the sums of the
        # training come out in another order and the weights differ by float rounding (1e-3
        # relative after two steps, measured): train here on one thread too.
        torch.set_num_threads(1)
        project = tiny_training_project(tmp_path / side)
        try:
            summary = api.build([story_path(project)], engine=RealishEngine(), cache_dir=tmp_path / side / "cache",
                                models_dir=tmp_path / "models", executor=side)
        finally:
            torch.set_num_threads(threads)
        assert summary.exit_code == 0, summary.outcomes[0].error
        built[side] = outputs(project), summary.outcomes[0].report
    where = built["ray"][1].where
    assert where["dataset"].startswith("ray:") and where["lora"].startswith("ray:")  # rendered, trained there
    # Two local builds differ too in the dataset tar (its report.json holds temporary paths) and
    # in the LoRA file (safetensors writes the metadata in a per-process order), hence in the
    # bundle and the lock's output hashes: compare what those hold, and every other file whole.
    local, remote = built["local"][0], built["ray"][0]
    same = [name for name in local if not name.endswith((".zip", ".lock"))]
    assert {n: remote[n] for n in same} == {n: local[n] for n in same}
    mine, theirs = lora_tensors(built["local"][1]), lora_tensors(built["ray"][1])
    assert mine.keys() == theirs.keys() and all(torch.equal(mine[k], theirs[k]) for k in mine)


def lora_tensors(report) -> dict:
    from safetensors.torch import load

    return load(report.outputs[report.plan.node("lora").id].read())
