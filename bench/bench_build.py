"""Benchmark: the build's own cost, this code against an older revision side by side.

Run by hand (not a test):  python bench/bench_build.py [--stories 50] [--old b42847f] [--repeat 5]

Both sides run through the CLI in fresh processes (`python -m kolorsc.cli`, PYTHONPATH at
that side's code), each in its own project and cache, the sides alternating so that load
from other jobs falls on both:
- no-op rebuild of one story (`kolorsc build story.yaml`, everything cached);
- a collection of N stories (same scenes, different ids), renders cached, outputs cold;
- its no-op rebuild;
- the code-identity cost of this side (kolorsc.codeid, all stages, fresh process).
Targets (issue 10): no-op rebuilds no slower than the old code; code identity < 20 ms.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STORY = "classroom-dream"


def make_project(root: Path, copies: int, repo: Path = REPO) -> tuple[Path, Path]:
    """A project from `repo`'s own example styles and story (each side's revision)."""
    shutil.copytree(repo / "styles", root / "styles")
    (root / "stories").mkdir()
    text = (repo / "stories" / f"{STORY}.yaml").read_text("utf-8")
    one = root / "stories" / f"{STORY}.yaml"
    one.write_text(text, "utf-8")
    (root / "collection").mkdir()
    for i in range(copies):
        # different ids, same scenes: renders are shared through the cache, outputs are not
        body = text.replace(f"id: {STORY}", f"id: story-{i:02d}")
        (root / "collection" / f"story-{i:02d}.yaml").write_text(body, "utf-8")
    return one, root / "collection"


class Side:
    def __init__(self, name: str, code: Path, root: Path, stories: int):
        self.name, self.code = name, code
        self.story, self.collection = make_project(root / name, stories, code)
        self.cache = root / name / "cache"
        # Bytecode caching on, as on a user's machine (this container sets PYTHONDONTWRITEBYTECODE,
        # which makes every run compile every imported module: ~80 ms of a no-op build).
        self.env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        self.env["PYTHONPATH"] = str(code)
        self.times: dict[str, list[float]] = {}

    def cli(self, path: Path, label: str) -> None:
        """Run one build; record its wall time and its CPU time (user + system of the child:
        far less sensitive than wall time to the other jobs on this shared machine)."""
        cmd = [sys.executable, "-m", "kolorsc.cli", "build", str(path), "--cache-dir", str(self.cache), "--quiet"]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t = time.perf_counter()
        subprocess.run(cmd, check=True, env=self.env, cwd=self.code.parent)
        self.times.setdefault(label, []).append(time.perf_counter() - t)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        self.times.setdefault(label + " cpu", []).append(cpu)

    def code_identity_ms(self) -> float | None:
        # the hashing itself, in a fresh process, after the imports a build makes anyway
        probe = ("import time; from kolorsc.build.stages import code_identities; t = time.perf_counter(); "
                 "code_identities(); print((time.perf_counter() - t) * 1000)")
        out = subprocess.run([sys.executable, "-c", probe], env=self.env, capture_output=True, text=True,
                             cwd=self.code.parent)
        return float(out.stdout) if out.returncode == 0 else None


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--stories", type=int, default=50)
    ap.add_argument("--old", default="b42847f", help="revision to compare with (default: before issue 10)")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="kolorsc-bench-") as tmp:
        root = Path(tmp)
        old_code = root / "old-code"
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(old_code), args.old],
                       check=True, capture_output=True)
        try:
            sides = [Side("old", old_code, root, args.stories), Side("new", REPO, root, args.stories)]
            for side in sides:
                side.cli(side.story, "cold")
                side.cli(side.story, "warm-up")  # writes the bytecode caches
            # A rebuild comes seconds or days after the build, not within the 2 s in which a
            # just-written file's hash is not remembered (kolorsc.cache.RACY_NS): wait that out.
            time.sleep(2.5)
            for _ in range(args.repeat):
                for side in sides:
                    side.cli(side.story, "noop")
            for side in sides:
                side.cli(side.collection, "collection cold")
            time.sleep(2.5)
            for _ in range(max(3, args.repeat // 2)):
                for side in sides:
                    side.cli(side.collection, "collection noop")
            idents = {side.name: [side.code_identity_ms() for _ in range(5)] for side in sides}
        finally:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(old_code)], check=False)

    med = {s.name: {k: statistics.median(v) for k, v in s.times.items()} for s in sides}
    rows = [
        ("preview build, 1 story, cold cache", "cold", ""),
        (f"no-op rebuild, 1 story (median of {args.repeat})", "noop", "no slower"),
        (f"{args.stories}-story collection, renders cached, outputs cold", "collection cold", ""),
        (f"{args.stories}-story collection no-op (median)", "collection noop", "no slower"),
    ]
    new_ident = [x for x in idents["new"] if x is not None]
    lines = [
        f"## Build core (issue 10) — `python bench/bench_build.py --old {args.old}`, {time.strftime('%Y-%m-%d')}",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, load average "
        f"{os.getloadavg()[0]:.1f} at the end (shared with other jobs). Every figure is a `kolorsc build` "
        "process (Python start-up included), preview engine, sides alternating.",
        "",
        f"| measurement | old ({args.old}) | new | target |",
        "|---|---|---|---|",
        *[f"| {label} | {med['old'][k]:.3f} s (CPU {med['old'][k + ' cpu']:.3f} s) | "
          f"{med['new'][k]:.3f} s (CPU {med['new'][k + ' cpu']:.3f} s) | {target} |" for label, k, target in rows],
        f"| code identity of every stage, fresh process (median of 5) | — | "
        f"{statistics.median(new_ident):.1f} ms | < 20 ms |" if new_ident else "| code identity | — | failed | |",
        "",
    ]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
