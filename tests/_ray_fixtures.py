"""Helpers for the Ray executor's tests: the runtime environment of the tests' own Ray cluster
(kolorsc plus the fixture modules its engines come from), a worker set-up hook, and the
collection every Ray build is compared with.

The cluster is a real local Ray (`ray.init(num_cpus=2)`, no dashboard, a small object store):
the driver is this test process; workers are Ray's own processes, which import kolorsc from
the package Ray uploads (py_modules), not from this checkout."""

from __future__ import annotations

from pathlib import Path

from _build_fixtures import STORY, make_project, tree_bytes

TESTS = Path(__file__).resolve().parent
COPY = "classroom-copy"  # the example story under another id: same prompts, seeds and style
OBJECT_STORE = 100 * 1024**2  # the machine is shared: Ray's minimum-sized object store


def cluster_env() -> dict:
    """The job's runtime env: kolorsc and the fixture modules (engines pickled from them)."""
    from kolorsc.build.executors.ray import runtime_env

    files = ["_build_fixtures.py", "_ray_fixtures.py", "_kolors_fixtures.py", "_train_fixtures.py"]
    env = runtime_env([TESTS / name for name in files])
    env["worker_process_setup_hook"] = "_ray_fixtures.setup_worker"
    return env


def setup_worker() -> None:
    """Every worker of the tests' cluster trains with the tiny stand-in models, as the local
    training tests do by monkeypatching kolorsc.train in their own process. (The stand-ins,
    and torch with them, are imported when a training starts, not in every worker.)"""
    import kolorsc.train

    kolorsc.train.default_model_loader = _tiny_loader


def _tiny_loader(models_dir, device, dtype):
    from _train_fixtures import TinyLoader

    return TinyLoader()(models_dir, device, dtype)


def collection(dest: Path) -> Path:
    """A project with two example stories and a third that is the first under another id:
    its eight renders are the first story's (same keys), its outputs are its own."""
    project = make_project(dest, stories=(STORY, "hero-dragon"))
    text = (project / "stories" / f"{STORY}.yaml").read_text("utf-8")
    (project / "stories" / f"{COPY}.yaml").write_text(text.replace(f"id: {STORY}", f"id: {COPY}"), "utf-8")
    return project


def outputs(project: Path) -> dict[str, bytes]:
    """Every file a build wrote: build/ (panels, storyboards, PDFs, bundles, pages) and locks."""
    files = {f"build/{k}": v for k, v in tree_bytes(project / "build").items()}
    files.update({f"stories/{p.name}": p.read_bytes() for p in sorted((project / "stories").glob("*.lock"))})
    return files

