"""Benchmark: preview build from a cold cache, the no-op rebuild, and a 50-story no-op.

Run by hand (not a test):  python bench/bench_build.py [--stories 50] [--append]
Targets (issue 3): no-op rebuild of one story < 0.5 s; 50-story collection no-op < 5 s.
`--append` adds the numbers to bench/RESULTS.md under "Build (issue 3)".
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STORY = "classroom-dream"


def make_project(root: Path, copies: int) -> list[Path]:
    shutil.copytree(REPO / "styles", root / "styles")
    (root / "stories").mkdir()
    text = (REPO / "stories" / f"{STORY}.yaml").read_text("utf-8")
    one = root / "stories" / f"{STORY}.yaml"
    one.write_text(text, "utf-8")
    (root / "collection").mkdir()
    for i in range(copies):
        # different ids, same scenes: renders are shared through the cache, outputs are not
        body = text.replace(f"id: {STORY}", f"id: story-{i:02d}")
        (root / "collection" / f"story-{i:02d}.yaml").write_text(body, "utf-8")
    return [one, root / "collection"]


def timed(fn, repeat: int = 1) -> list[float]:
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--stories", type=int, default=50)
    ap.add_argument("--append", action="store_true")
    args = ap.parse_args()

    sys.path.insert(0, str(REPO))
    from kolorsc import api

    with tempfile.TemporaryDirectory(prefix="kolorsc-bench-") as tmp:
        root = Path(tmp)
        story, collection = make_project(root, args.stories)
        cache = root / "cache"

        def build(paths):
            summary = api.build(paths, cache_dir=cache)
            assert summary.exit_code == 0, summary.to_json()
            return summary

        cold = timed(lambda: build([story]))[0]
        noop = timed(lambda: build([story]), repeat=5)
        coll_cold = timed(lambda: build([collection]))[0]
        coll_noop = timed(lambda: build([collection]), repeat=3)
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        cli = [sys.executable, "-m", "kolorsc.cli", "build", str(collection), "--cache-dir", str(cache), "--quiet"]
        cli_noop = timed(lambda: subprocess.run(cli, check=True, env=env), repeat=3)
        cli_one = [sys.executable, "-m", "kolorsc.cli", "build", str(story), "--cache-dir", str(cache), "--quiet"]
        cli_one_noop = timed(lambda: subprocess.run(cli_one, check=True, env=env), repeat=3)

    rows = [
        ("preview build, 1 story, cold cache", f"{cold:.2f} s", ""),
        ("no-op rebuild, 1 story (API, median of 5)", f"{statistics.median(noop):.3f} s", "< 0.5 s"),
        ("no-op rebuild, 1 story (`kolorsc build`, incl. Python start-up, median of 3)",
         f"{statistics.median(cli_one_noop):.3f} s", "< 0.5 s"),
        (f"{args.stories}-story collection, renders cached, outputs cold", f"{coll_cold:.1f} s", ""),
        (f"{args.stories}-story collection no-op (API, median of 3)", f"{statistics.median(coll_noop):.2f} s", "< 5 s"),
        (f"{args.stories}-story collection no-op (`kolorsc build DIR`, median of 3)",
         f"{statistics.median(cli_noop):.2f} s", "< 5 s"),
    ]
    lines = [
        "",
        f"## Build (issue 3) — bench/bench_build.py, {time.strftime('%Y-%m-%d')}",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores (shared with other jobs), Python "
        f"{platform.python_version()}. Preview engine (512 px drafts), example story `{STORY}`.",
        "",
        "| measurement | time | target |",
        "|---|---|---|",
        *[f"| {a} | {b} | {c} |" for a, b, c in rows],
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if args.append:
        with open(REPO / "bench" / "RESULTS.md", "a", encoding="utf-8") as f:
            f.write(text)


if __name__ == "__main__":
    main()
