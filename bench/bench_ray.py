"""Benchmark: the Ray executor (issue 15). Run by hand (not a test):

    python bench/bench_ray.py throughput [--seconds 1.0] [--panels 64]
    python bench/bench_ray.py collection [--stories 50] [--old /tmp/old] [--repeat 3]
    (--append adds the tables to bench/RESULTS.md)

throughput  A stand-in engine whose render sleeps a fixed time (a GPU: the CPU is free while
            it "renders") and returns a 1024² picture (a ~1.7 MB PNG, encoded by the render
            stage as for Kolors). 64 panels (8 stories x 8, distinct seeds), built by the
            local executor, then on a local Ray cluster (2 CPUs) with 1 and 2 render workers.
            From the driver's commit times: steady-state seconds per panel (first to last
            commit) and the time to the first panel (worker start-up). The executor's own
            overhead per panel = steady-state interval on Ray with 1 worker - local interval;
            measured again with a 0 s render (nothing to hide the overhead behind).
            Target: 2 workers >= 1.8x the throughput of 1; overhead <= 50 ms per panel.
collection  The 50-story collection of bench_build.py (copies of the example story under
            other ids: renders shared through the cache; the old checkout's story and styles,
            which both codes read), renders cached, outputs cold. Side by
            side in one run, each in its own process: the code at --old (a `git worktree add
            /tmp/old b42847f`, the pre-rebuild main), this code with the local executor, this
            code on a local Ray cluster (2 CPUs). Then which output files are the same bytes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from bench_build import make_project  # bench/ is on sys.path when a bench script runs

REPO = Path(__file__).resolve().parents[1]
STORY = "classroom-dream"
OBJECT_STORE = 512 * 1024**2


# -- throughput ------------------------------------------------------------------------------


def sleep_engine(seconds: float):
    """A preview-flagged engine (one candidate per panel, no scores) that sleeps `seconds` per
    render and returns a 1024² picture that compresses like a real one."""
    from kolorsc.engines.preview import PreviewEngine

    class SleepEngine(PreviewEngine):
        name = "sleep"

        def __init__(self, seconds: float):
            super().__init__(long_side=1024)
            self.seconds = seconds

        def identity(self) -> dict:
            return {**super().identity(), "name": self.name, "seconds": self.seconds}

        def render(self, jobs, lora, progress=None):
            import numpy as np
            from PIL import Image

            for job in jobs:
                time.sleep(self.seconds)
                rng = np.random.default_rng(job.seed * 1000 + job.panel.index)
                small = Image.fromarray(rng.integers(0, 255, (96, 96, 3), dtype=np.uint8))
                yield job, small.resize((1024, 1024), Image.Resampling.BICUBIC)

    return SleepEngine(seconds)


def distinct_stories(root: Path, count: int) -> Path:
    """`count` copies of the example story with other seeds: every panel a distinct render."""
    shutil.copytree(REPO / "styles", root / "styles")
    (root / "stories").mkdir(parents=True)
    text = (REPO / "stories" / f"{STORY}.yaml").read_text("utf-8")
    for i in range(count):
        body = text.replace(f"id: {STORY}", f"id: s{i:02d}")
        body = re.sub(r"(?m)^  seed: 0$", f"  seed: {1000 * (i + 1)}", body)
        (root / "stories" / f"s{i:02d}.yaml").write_text(body, "utf-8")
    return root / "stories"


def timed_build(stories: Path, cache: Path, seconds: float, executor: str, workers: int | None) -> dict:
    from kolorsc import api

    commits = []

    def progress(stage, done, total, label):
        if stage == "render" and label.startswith("render/"):  # the driver's commits, not the stage's own
            commits.append(time.perf_counter())

    start = time.perf_counter()
    summary = api.build([stories], engine=sleep_engine(seconds), cache_dir=cache, executor=executor,
                        ray_workers=workers, progress=progress)
    assert summary.exit_code == 0, summary.to_json()
    n = len(commits)
    return {"panels": n, "first": commits[0] - start, "interval": (commits[-1] - commits[0]) / (n - 1),
            "wall": time.perf_counter() - start}


def throughput(args) -> list[str]:
    import ray

    from kolorsc.build.executors.ray import runtime_env

    t = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=OBJECT_STORE, log_to_driver=False,
             runtime_env=runtime_env())
    started = time.perf_counter() - t
    rows = {}
    with tempfile.TemporaryDirectory(prefix="kolorsc-bench-ray-") as tmp:
        for name, executor, workers in (("local", "local", None), ("ray, 1 worker", "ray", 1),
                                        ("ray, 2 workers", "ray", 2)):
            root = Path(tmp) / name.replace(" ", "").replace(",", "")
            stories = distinct_stories(root, args.panels // 8)
            rows[name] = timed_build(stories, root / "cache", args.seconds, executor, workers)
            print(name, rows[name], flush=True)
        call, commit = serial_costs(ray, Path(tmp) / "serial", args.panels)
    ray.shutdown()
    s = args.seconds
    local, one, two = rows["local"], rows["ray, 1 worker"], rows["ray, 2 workers"]
    speedup = one["interval"] / two["interval"]
    overhead = one["interval"] - local["interval"]
    table = [f"| {name} | {r['panels']} | {r['interval'] * 1000:.0f} ms | {r['first']:.2f} s | {r['wall']:.1f} s |"
             for name, r in rows.items()]
    return [
        f"## Ray executor (issue 15): throughput — `python bench/bench_ray.py throughput`, {time.strftime('%Y-%m-%d')}",
        "",
        _machine(),
        (f"Local Ray cluster started in this process (`ray.init(num_cpus=2)`, {OBJECT_STORE // 1024**2} MB object "
        f"store): {started:.1f} s. Render = sleep (a GPU) + a 1024² picture, PNG-encoded by the render stage "
        "(~1.7 MB) in the worker. Interval = steady-state seconds per committed panel (first to last commit);"),
        "first = build start to the first commit (planning, worker start-up, first render).",
        "",
        f"| executor ({s:.1f} s render) | panels | interval | first | wall |",
        "|---|---|---|---|---|",
        *table,
        "",
        "| measurement | value | target |",
        "|---|---|---|",
        f"| throughput, 2 workers / 1 worker | {speedup:.2f}x | >= 1.8x |",
        f"| added per panel on Ray, 1 worker (interval - local interval) | {overhead * 1000:+.0f} ms | <= 50 ms |",
        (f"| serial cost per panel: actor call + 1.7 MB PNG to the driver (median of {args.panels}) | "
        f"{call * 1000:.1f} ms |  |"),
        (f"| serial cost per panel: driver checks the sha256 and commits to the cache (same locally) | "
        f"{commit * 1000:.1f} ms |  |"),
        (f"| executor's own overhead per panel: driver + Ray + transfer, one after the other | "
        f"{(call + commit) * 1000:.1f} ms | <= 50 ms |"),
        "",
        "The added time per panel is smaller than the serial cost: a worker keeps two `next` calls queued, so",
        "it starts the next image while the driver receives and commits the last one.",
        "",
    ]


def serial_costs(ray, folder: Path, n: int) -> tuple[float, float]:
    """Medians, one panel at a time with nothing overlapping: an actor call returning a reply
    as the pool's workers send it (a 1024² PNG), and the driver's check + commit of it."""
    import io

    from kolorsc.build.executors.ray_worker import item
    from kolorsc.cache import Cache
    from kolorsc.hashing import sha256_bytes

    engine = sleep_engine(0.0)
    png = io.BytesIO()
    from kolorsc.engines.base import RenderJob
    from kolorsc.prompts import Panel

    job = RenderJob(Panel(index=1, caption="c", prompt="p", negative="n", seed=1, steps=1, cfg=1.0, width=1024,
                          height=1024), 1)
    next(engine.render([job], None))[1].convert("RGB").save(png, format="PNG", compress_level=6)
    data = png.getvalue()

    @ray.remote(num_cpus=1)
    class Echo:
        def next(self, key):
            return item(key, data)

    echo = Echo.remote()
    ray.get(echo.next.remote("warm-up"))
    cache = Cache(folder)
    calls, commits = [], []
    for i in range(n):
        t = time.perf_counter()
        _, key, got, sha = ray.get(echo.next.remote(f"{i:064x}"))
        calls.append(time.perf_counter() - t)
        t = time.perf_counter()
        assert sha256_bytes(got) == sha
        cache.put_bytes(key, got, f"render/{i}", "render")
        commits.append(time.perf_counter() - t)
    ray.kill(echo)
    return statistics.median(calls), statistics.median(commits)


# -- collection ------------------------------------------------------------------------------

SIDE = textwrap.dedent('''
    import json, sys, time
    from pathlib import Path
    story, collection, cache, executor = sys.argv[1:5]
    started = 0.0
    if executor == "ray":
        import ray
        from kolorsc.build.executors.ray import runtime_env
        t = time.perf_counter()
        ray.init(num_cpus=2, include_dashboard=False, object_store_memory={store}, log_to_driver=False,
                 runtime_env=runtime_env())
        started = time.perf_counter() - t
    from kolorsc import api
    extra = {{"executor": executor}} if executor != "old" else {{}}
    assert api.build([Path(story)], cache_dir=Path(cache), **extra).exit_code == 0  # the renders, cached
    t = time.perf_counter()
    summary = api.build([Path(collection)], cache_dir=Path(cache), **extra)
    seconds = time.perf_counter() - t
    assert summary.exit_code == 0
    print(json.dumps({{"seconds": seconds, "ray_start": started}}))
''').format(store=OBJECT_STORE)


def collection(args) -> list[str]:
    sides = {"old (b42847f), local": ("old", Path(args.old)), "new, local executor": ("local", REPO),
             "new, Ray (2 CPUs)": ("ray", REPO)}
    times: dict[str, list[dict]] = {name: [] for name in sides}
    trees = {}
    with tempfile.TemporaryDirectory(prefix="kolorsc-bench-coll-") as tmp:
        for round_ in range(args.repeat):  # the sides alternate: a burst of load hits all alike
            for name, (executor, code) in sides.items():
                root = Path(tmp) / f"{executor}-{round_}"
                root.mkdir()
                # both codes read the old checkout's styles and story: today's example styles generate
                # their datasets, which the old code cannot parse (the preview engine skips them anyway)
                story, coll = make_project(root, args.stories, Path(args.old))
                env = {**os.environ, "PYTHONPATH": str(code)}
                out = subprocess.run([sys.executable, "-c", SIDE, str(story), str(coll), str(root / "cache"),
                                      executor], env=env, capture_output=True, text=True, cwd=root, check=False)
                assert out.returncode == 0, out.stderr[-3000:]
                times[name].append(json.loads(out.stdout.strip().splitlines()[-1]))
                print(name, times[name][-1], flush=True)
                trees[name] = {p.relative_to(root / "build").as_posix(): p.read_bytes()
                               for p in sorted((root / "build").rglob("*")) if p.is_file()}
                shutil.rmtree(root)
    best = {n: min(t["seconds"] for t in ts) for n, ts in times.items()}
    old, local, _ = best.values()
    names = list(sides)
    same = _same_files(trees[names[0]], trees[names[1]])
    rows = []
    for n, ts in times.items():
        every = ", ".join(f"{t['seconds']:.1f}" for t in ts)
        rows.append(f"| {n} | {best[n]:.1f} s | {every} | {old / best[n]:.2f}x | {local / best[n]:.2f}x | "
                    f"{min(t['ray_start'] for t in ts):.1f} s |")
    ray_same = trees[names[1]] == trees[names[2]]
    return [
        (f"## Ray executor (issue 15): {args.stories}-story collection, renders cached, outputs cold — "
         f"`python bench/bench_ray.py collection --repeat {args.repeat}`, {time.strftime('%Y-%m-%d')}"),
        "",
        _machine(),
        "Each side in its own process; the three sides alternate, best of the rounds kept; preview engine.",
        "",
        "| code | collection build (best) | every round | speed-up vs old | vs new local | + starting Ray first |",
        "|---|---|---|---|---|---|",
        *rows,
        "",
        (f"Outputs, new local vs new Ray: {'every file the same bytes' if ray_same else 'DIFFERENT'} "
         f"({len(trees[names[1]])} files). Old vs new local, by kind of file: {same}."),
        "",
    ]


def _same_files(a: dict, b: dict) -> str:
    kinds: dict[str, list[int]] = {}
    for name in sorted(set(a) | set(b)):
        kind = re.sub(r"^[^/]+/", "", name)
        kind = re.sub(r"\d\d\.png$", "NN.png", kind)
        kind = "bundle .zip" if kind.endswith(".zip") else kind
        same, total = kinds.setdefault(kind, [0, 0])
        kinds[kind] = [same + (name in a and name in b and a[name] == b[name]), total + 1]
    return "; ".join(f"{k} {s}/{t}" for k, (s, t) in kinds.items())


def _machine() -> str:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"Machine: {platform.machine()}, {os.cpu_count()} cores shared with other jobs (load average "
            f"{load:.1f} at the end), Python {platform.python_version()}.")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["throughput", "collection"])
    ap.add_argument("--seconds", type=float, default=1.0)
    ap.add_argument("--panels", type=int, default=64)
    ap.add_argument("--stories", type=int, default=50)
    ap.add_argument("--old", default="/tmp/old")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--append", action="store_true")
    args = ap.parse_args()
    sys.path.insert(0, str(REPO))
    lines = throughput(args) if args.what == "throughput" else collection(args)
    text = "\n".join(["", *lines])
    print(text)
    if args.append:
        with open(REPO / "bench" / "RESULTS.md", "a", encoding="utf-8") as f:
            f.write(text)


if __name__ == "__main__":
    main()
