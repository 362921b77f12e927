"""Benchmark of the story front end (run by hand: `python bench/bench_check.py`).

1. `kolorsc --help` start-up: several runs, median wall time. Target < 0.3 s.
2. `kolorsc check DIR` over 200 generated stories in a temporary project, one process,
   median of 3 runs. Target < 2 s on the 2-core machine.
3. The same check in-process (no interpreter start-up), to show where time goes.

Prints a Markdown table to paste into bench/RESULTS.md.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
N_STORIES = 200


def kolorsc_cmd() -> list[str]:
    script = Path(sys.executable).with_name("kolorsc")
    return [str(script)] if script.exists() else [sys.executable, "-m", "kolorsc.cli"]


def wall(cmd: list[str], cwd: Path, expect: int = 0) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    took = time.perf_counter() - start
    if proc.returncode != expect:
        raise SystemExit(f"{cmd} exited {proc.returncode}: {proc.stdout[-500:]}{proc.stderr[-500:]}")
    return took


def make_project(root: Path) -> Path:
    shutil.copytree(REPO / "styles", root / "styles")
    stories = root / "stories"
    stories.mkdir()
    sources = sorted((REPO / "stories").glob("*.yaml"))
    for i in range(N_STORIES):
        text = sources[i % len(sources)].read_text(encoding="utf-8")
        story_id = f"story-{i:03d}"
        text = text.replace(f"id: {sources[i % len(sources)].stem}", f"id: {story_id}", 1)
        text = text.replace("  seed: ", f"  seed: {i}", 1)  # every story a little different
        (stories / f"{story_id}.yaml").write_text(text, encoding="utf-8")
    return stories


def main() -> None:
    cmd = kolorsc_cmd()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_project(root)
        wall(cmd + ["--help"], root)  # warm the file cache
        helps = [wall(cmd + ["--help"], root) for _ in range(7)]
        bare = [wall([sys.executable, "-c", "pass"], root) for _ in range(7)]  # interpreter + site alone
        checks = [wall(cmd + ["check", "stories"], root) for _ in range(3)]

        sys.path.insert(0, str(REPO))
        os.chdir(root)
        t0 = time.perf_counter()
        from kolorsc.spec import check_paths

        t1 = time.perf_counter()
        report = check_paths([Path("stories")])
        t2 = time.perf_counter()
        assert report.ok and len(report.files) == N_STORIES, report.summary()

    help_med, check_med = statistics.median(helps), statistics.median(checks)
    print(f"| `kolorsc --help` start-up (median of 7) | {help_med:.3f} s | < 0.3 s | {'ok' if help_med < 0.3 else 'MISSED'} |")
    print(f"| bare `python -c pass` in the same venv (median of 7) | {statistics.median(bare):.3f} s | | |")
    print(f"| `kolorsc check` of {N_STORIES} stories, one process (median of 3) | {check_med:.2f} s | < 2 s |"
          f" {'ok' if check_med < 2 else 'MISSED'} |")
    print(f"| in-process: import kolorsc.spec / check_paths of {N_STORIES} | {t1 - t0:.3f} s / {t2 - t1:.2f} s"
          f" ({(t2 - t1) / N_STORIES * 1000:.1f} ms per story) | | |")
    print(f"runs: help {[round(h, 3) for h in helps]}, check {[round(c, 2) for c in checks]}")


if __name__ == "__main__":
    main()
