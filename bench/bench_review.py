"""Benchmark of review and gallery (run by hand: `python bench/bench_review.py`).

1. `kolorsc diff` on the three example stories in a git repository (built with the preview
   engine, lock files committed) with one scene changed: one CLI process, median of 5.
   Target < 1 s without --html. Also in-process, and with --html.
2. The gallery of a 50-story collection whose storyboards exist: `write_gallery` cold
   (it makes the thumbnails) and warm (each story's build made its thumbnail), median of 3.
   Target < 2 s. Storyboards are 1672x1176 PNGs of noise-textured gradients, ~1 MB like the
   storyboards of rendered panels (bench_emit: 1.1 MB).
   Reports the index page's total size (HTML + the thumbnails it loads).

Prints Markdown to paste into bench/RESULTS.md.
"""

from __future__ import annotations

import io
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from kolorsc import api  # noqa: E402
from kolorsc.emit.gallery import GalleryEntry, write_gallery  # noqa: E402

STORIES = ("classroom-dream", "hero-dragon", "idol-diary")
GIT_ENV = {**os.environ, "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@e.org", "GIT_COMMITTER_NAME": "b",
           "GIT_COMMITTER_EMAIL": "b@e.org"}


def kolorsc_cmd() -> list[str]:
    script = Path(sys.executable).with_name("kolorsc")
    return [str(script)] if script.exists() else [sys.executable, "-m", "kolorsc.cli"]


def timed(fn, runs: int) -> float:
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return statistics.median(out)


def bench_diff(tmp: Path) -> list[str]:
    repo, cache = tmp / "repo", tmp / "cache"
    shutil.copytree(REPO / "styles", repo / "styles")
    (repo / "stories").mkdir()
    for s in STORIES:
        shutil.copy(REPO / "stories" / f"{s}.yaml", repo / "stories")
    (repo / ".gitignore").write_text("build/\n")
    assert api.build([repo / "stories"], cache_dir=cache).exit_code == 0
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "x"]):
        subprocess.run(cmd, cwd=repo, check=True, env=GIT_ENV)
    story = repo / "stories" / "classroom-dream.yaml"
    story.write_text(story.read_text("utf-8").replace("站在路边", "站在河边"), "utf-8")
    env = {**os.environ, "KOLORSC_CACHE": str(cache)}
    cmd = kolorsc_cmd() + ["diff"]
    check = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True)
    assert check.returncode == 0 and "1 new render" in check.stdout, check.stdout + check.stderr
    cli = timed(lambda: subprocess.run(cmd, cwd=repo, env=env, capture_output=True, check=True), 5)
    html = timed(lambda: subprocess.run(cmd + ["--html", str(tmp / "html")], cwd=repo, env=env,
                                        capture_output=True, check=True), 3)
    from kolorsc.review.diff import diff

    inproc = timed(lambda: diff(cwd=repo, cache_dir=cache), 5)
    help_ = timed(lambda: subprocess.run(kolorsc_cmd() + ["--help"], capture_output=True, check=True), 5)
    return [
        "| step | median |",
        "|---|---|",
        f"| `kolorsc diff` (CLI process, 3 stories, 1 scene changed) | {cli:.2f} s |",
        f"| `kolorsc diff --html DIR` (CLI process, 2 images copied) | {html:.2f} s |",
        f"| `diff()` in-process | {inproc * 1000:.0f} ms |",
        f"| (`kolorsc --help`, interpreter start-up for reference) | {help_:.2f} s |",
    ]


def storyboard_png(seed: int) -> bytes:
    """A 1672x1176 storyboard-sized PNG that compresses like rendered panels (~1 MB)."""
    from PIL import Image

    rng = __import__("random").Random(seed)
    base = Image.linear_gradient("L").resize((1672, 1176)).convert("RGB")
    noise = Image.frombytes("RGB", (418, 294), bytes(rng.randrange(256) for _ in range(418 * 294 * 3)))
    image = Image.blend(base, noise.resize((1672, 1176), Image.Resampling.BILINEAR), 0.04)
    out = io.BytesIO()
    image.save(out, format="PNG", compress_level=6)
    return out.getvalue()


def bench_gallery(tmp: Path) -> list[str]:
    out = tmp / "build"
    boards = [storyboard_png(i) for i in range(5)]
    entries = []
    for i in range(50):
        sid = f"story-{i:02d}"
        folder = out / sid
        folder.mkdir(parents=True)
        (folder / "storyboard.png").write_bytes(boards[i % 5])
        for name in ("storyboard.pdf", "scores.json", "index.html", f"team-可图Kolors训练-{sid}.zip"):
            (folder / name).write_bytes(b"x" * 100)
        entries.append(GalleryEntry(sid, f"故事 {i}", sid, gate="PASS" if i % 3 else "FAIL", mean=5.5 + (i % 10) / 10,
                                    threshold=6.0, bundle=f"team-可图Kolors训练-{sid}.zip"))
    storyboard_mb = sum(len(b) for b in boards) / len(boards) / 1e6

    def cold():
        for p in out.glob("*/storyboard-thumb.jpg"):
            p.unlink()
        (out / "index.html").unlink(missing_ok=True)
        write_gallery(out, entries)

    cold_s = timed(cold, 3)
    warm_s = timed(lambda: write_gallery(out, entries), 3)
    index = (out / "index.html").stat().st_size
    thumbs = sum(p.stat().st_size for p in out.glob("*/storyboard-thumb.jpg"))
    return [
        "| step | median |",
        "|---|---|",
        f"| `write_gallery`, 50 stories, thumbnails made here (storyboards {storyboard_mb:.2f} MB each) | {cold_s:.2f} s |",
        f"| `write_gallery`, 50 stories, thumbnails already made by each story's build | {warm_s * 1000:.0f} ms |",
        "",
        (f"Index page: HTML {index / 1024:.1f} KB + 50 thumbnails {thumbs / 1e6:.2f} MB "
         f"(avg {thumbs / 50 / 1024:.0f} KB, 640 px JPEG q82) = {(index + thumbs) / 1e6:.2f} MB in total; "
         "thumbnails below the first screen load lazily."),
    ]


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        diff_rows = bench_diff(Path(tmp) / "d")
        gallery_rows = bench_gallery(Path(tmp) / "g")
    print("### kolorsc diff\n")
    print("\n".join(diff_rows))
    print("\n### gallery\n")
    print("\n".join(gallery_rows))


if __name__ == "__main__":
    main()
