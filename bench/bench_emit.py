"""Benchmark of the emit stage: a 50-story collection whose renders exist, outputs cold,
today's emitters ("old", checked out from git into a temporary folder) against this tree's
("new"), side by side in one run, on the same input PNGs.

Run by hand (not a test):
    python bench/bench_emit.py [--stories 50] [--photo-stories 10] [--old b42847f] [--repeat 2]

Per story each side makes what a build emits: eight panel PNGs, storyboard PNG, storyboard
PDF, scores.json and the bundle zip. The old side calls the emitters one by one with the
panels' bytes, as runner.emit_stage does; the new side calls `emit_story` once per story.
Two collections:
  preview - 512 px preview drafts (what `bench/bench_build.py`'s 72 s collection emits);
  photo   - 1024x1024 noisy gradients, compressed like real Kolors renders.
Every story has its own captions, prompts, seeds and images (nothing shared between
stories, so no cache can help either side). Each side runs in its own process; sides
alternate `--repeat` times and the best time of each is kept. The new side also runs with
two worker processes (what a process pool or Ray gives on these 2 cores), and once more
in another process to check that its bytes do not change between processes.
Prints a Markdown table for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OLD_DEFAULT = "b42847f"  # the code before the emitters shared their work (issue 15)
PANELS = 8


# --- inputs (made once, with this tree's code, read by both sides) ---------------------------


def photo_like(seed: int, size: int = 1024) -> bytes:
    """A smooth gradient plus noise: compresses like a rendered image, unlike flat test colours."""
    from PIL import Image, ImageFilter

    noise = Image.effect_noise((size, size), 30 + seed % 40).convert("RGB")
    grad = Image.linear_gradient("L").rotate(seed * 37 % 360).resize((size, size)).convert("RGB")
    image = Image.blend(grad, noise, 0.35).filter(ImageFilter.GaussianBlur(1))
    return _png(image)


def _png(image) -> bytes:
    out = io.BytesIO()
    image.convert("RGB").save(out, format="PNG", compress_level=6)  # as the runner stores renders
    return out.getvalue()


def story_texts(n: int) -> list[dict]:
    """Distinct captions, prompts and seeds per story, from the example stories' scenes."""
    sys.path.insert(0, str(REPO))
    from kolorsc.prompts import compile_story
    from kolorsc.spec import load_story

    panels = [p for path in sorted((REPO / "stories").glob("*.yaml")) for p in compile_story(load_story(path))]
    out = []
    for s in range(n):
        out.append({
            "panels": [
                {"caption": f"{panels[(s + i) % len(panels)].caption}（第{s + 1}集）",
                 "prompt": f"{panels[(s * 3 + i) % len(panels)].prompt}，第{s + 1}集",
                 "negative": panels[i].negative, "seed": 1000 * s + i}
                for i in range(PANELS)
            ],
        })
    return out


def make_inputs(root: Path, stories: int, photo_stories: int) -> None:
    """root/{preview,photo}/NN/{01..08}.png and root/texts.json."""
    sys.path.insert(0, str(REPO))
    from kolorsc.engines.base import RenderJob
    from kolorsc.engines.preview import PreviewEngine
    from kolorsc.prompts import Panel

    texts = story_texts(stories)
    root.mkdir(parents=True, exist_ok=True)
    (root / "texts.json").write_text(json.dumps(texts, ensure_ascii=False), encoding="utf-8")
    engine = PreviewEngine()
    for s, story in enumerate(texts):
        folder = root / "preview" / f"{s:02d}"
        folder.mkdir(parents=True)
        jobs = [RenderJob(Panel(i + 1, p["caption"], p["prompt"], p["negative"], p["seed"], 30, 4.0, 1024, 1024), p["seed"])
                for i, p in enumerate(story["panels"])]
        for job, image in engine.render(jobs, None):
            (folder / f"{job.panel.index:02d}.png").write_bytes(_png(image))
    for s in range(photo_stories):
        folder = root / "photo" / f"{s:02d}"
        folder.mkdir(parents=True)
        for i in range(PANELS):
            (folder / f"{i + 1:02d}.png").write_bytes(photo_like(s * PANELS + i))


# --- one side: runs in its own process with a kolorsc tree first on sys.path ----------------


def results(tree: Path, root: Path, kind: str, tmp: Path):
    """(StoryResult, [png bytes]) per story of the `kind` collection, built with `tree`'s code."""
    from dataclasses import replace

    from _emit_fixtures import make_result  # the tree's own test fixture: a real StoryResult

    texts = json.loads((root / "texts.json").read_text(encoding="utf-8"))
    out = []
    for s, folder in enumerate(sorted((root / kind).iterdir())):
        (tmp / f"{kind}-{s}").mkdir()
        base = make_result(tmp / f"{kind}-{s}", preview=kind == "preview",
                           aesthetic=None if kind == "preview" else [6.0 + (s + i) % 7 / 10 for i in range(PANELS)])
        panels = tuple(
            replace(pr, panel=replace(pr.panel, caption=t["caption"], prompt=t["prompt"], negative=t["negative"],
                                      seed=t["seed"]))
            for pr, t in zip(base.panels, texts[s]["panels"])
        )
        result = replace(base, panels=panels, story=replace(base.story, id=f"story-{s:02d}"))
        out.append((result, [(folder / f"{i + 1:02d}.png").read_bytes() for i in range(PANELS)]))
    return out


def emit_old(result, images) -> dict[str, bytes]:
    """What runner.emit_stage does today: each emitter on its own, given bytes."""
    from kolorsc.emit import bundle_zip, panel_png, scores_json, storyboard_pdf, storyboard_png

    out = {f"panel/{i + 1:02d}": panel_png(png, pr, result) for i, (png, pr) in enumerate(zip(images, result.panels))}
    out["storyboard"] = storyboard_png(result, images)
    out["pdf"] = storyboard_pdf(result, images)
    out["scores"] = scores_json(result)
    out["bundle"] = bundle_zip(result, [out[f"panel/{i + 1:02d}"] for i in range(PANELS)], result.lora.path if result.lora else None)
    return out


def emit_new(result, images) -> dict[str, bytes]:
    from kolorsc.emit import emit_story

    return emit_story(result, images, result.lora.path if result.lora else None)


def _emit_one(args):
    side, result, images = args
    outputs = (emit_new if side == "new" else emit_old)(result, images)
    return {k: hashlib.sha256(v).hexdigest() for k, v in outputs.items()}, sum(map(len, outputs.values()))


def worker(tree: Path, root: Path, kind: str, side: str, jobs: int) -> dict:
    sys.path[:0] = [str(tree), str(tree / "tests")]
    import kolorsc

    assert Path(kolorsc.__file__).resolve().is_relative_to(tree.resolve()), kolorsc.__file__
    with tempfile.TemporaryDirectory() as tmp:
        stories = results(tree, root, kind, Path(tmp))
        import kolorsc.fonts

        kolorsc.fonts.pil_font(20)  # font loading is a one-time start-up cost on both sides
        start = time.perf_counter()
        if jobs == 1:
            done = [_emit_one((side, r, imgs)) for r, imgs in stories]
        else:
            from concurrent.futures import ProcessPoolExecutor

            with ProcessPoolExecutor(jobs) as pool:
                done = list(pool.map(_emit_one, [(side, r, imgs) for r, imgs in stories], chunksize=1))
        took = time.perf_counter() - start
    hashes = {f"{s:02d}/{k}": h for s, (hs, _) in enumerate(done) for k, h in hs.items()}
    return {"seconds": took, "bytes": sum(b for _, b in done), "hashes": hashes, "stories": len(stories)}


# --- the driver -------------------------------------------------------------------------------


def checkout(rev: str, into: Path) -> Path:
    """The kolorsc package and tests of `rev`, extracted from git (no work tree is touched)."""
    data = subprocess.run(["git", "-C", str(REPO), "archive", rev, "kolorsc", "tests"], capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(into, filter="data")
    return into


def run_side(tree: Path, root: Path, kind: str, side: str, jobs: int = 1) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run(
        [sys.executable, __file__, "--worker", str(tree), str(root), kind, side, str(jobs)],
        capture_output=True, text=True, env=env, cwd=tree,
    )
    if out.returncode:
        raise SystemExit(f"{side} {kind} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.splitlines()[-1])


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        tree, root, kind, side, jobs = sys.argv[2:7]
        print(json.dumps(worker(Path(tree), Path(root), kind, side, int(jobs))))
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("--stories", type=int, default=50)
    ap.add_argument("--photo-stories", type=int, default=10)
    ap.add_argument("--old", default=OLD_DEFAULT)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="kolorsc-bench-emit-") as tmp:
        tmp = Path(tmp)
        old_tree = checkout(args.old, tmp / "old")
        t = time.perf_counter()
        make_inputs(tmp / "inputs", args.stories, args.photo_stories)
        print(f"inputs made in {time.perf_counter() - t:.0f} s", file=sys.stderr)
        rows = []
        for kind, n in (("preview", args.stories), ("photo", args.photo_stories)):
            if not n:
                continue
            best: dict[str, dict] = {}
            for _ in range(args.repeat):  # alternate the sides: load on the machine hits both alike
                for side, tree, jobs in (("old", old_tree, 1), ("new", REPO, 1), ("new x2", REPO, 2)):
                    r = run_side(tree, tmp / "inputs", kind, side.split()[0], jobs)
                    print(f"{kind} {side}: {r['seconds']:.1f} s", file=sys.stderr)
                    if side not in best or r["seconds"] < best[side]["seconds"]:
                        best[side] = r
            again = run_side(REPO, tmp / "inputs", kind, "new")
            rows.append((kind, n, best, again))
        print(report(rows, args.old))
        print(f"load average at the end (1/5/15 min): {' / '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} cores")


def report(rows, old: str) -> str:
    lines = [
        f"| collection | stories | old ({old}) | new | speed-up | new, 2 processes | speed-up | output MB old → new |",
        "|---|---|---|---|---|---|---|---|",
    ]
    notes = []
    for kind, n, best, again in rows:
        o, nw, n2 = best["old"], best["new"], best["new x2"]
        lines.append(
            f"| {kind} | {n} | {o['seconds']:.1f} s | {nw['seconds']:.1f} s | {o['seconds'] / nw['seconds']:.1f}x | "
            f"{n2['seconds']:.1f} s | {o['seconds'] / n2['seconds']:.1f}x | {o['bytes'] / 1e6:.1f} → {nw['bytes'] / 1e6:.1f} |"
        )
        same = sorted({k.split("/", 1)[1].split("/")[0] for k, h in nw["hashes"].items() if o["hashes"].get(k) == h})
        stable = nw["hashes"] == again["hashes"] == n2["hashes"]
        notes.append(f"{kind}: new bytes identical across processes and with 2 workers: {stable}; "
                     f"outputs byte-identical to old: {', '.join(same) or 'none'}")
    return "\n".join(lines + [""] + notes)


if __name__ == "__main__":
    main()
