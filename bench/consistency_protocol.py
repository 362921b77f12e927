"""The consistency evaluation protocol (run by hand on a GPU; unchanged wherever it runs).

    python bench/consistency_protocol.py --out /data/protocol [--models-dir DIR] [--device cuda]
    python bench/consistency_protocol.py --out /tmp/p --engine preview --models-dir <tiny models>   # plumbing only

For each example story (stories/*.yaml: classroom-dream, hero-dragon, idol-diary) it writes
four variants into a scratch project beside copies of styles/ and data/:

    plain    the story as it is (consistency through the shared `look` text only)
    ip       every character gets `reference: generate` (its character sheet), ip_adapter on
    shared   shared_attention on (defaults: identity 2, group 4, rate 0.5, up blocks)
    both     ip + shared

builds them all with `kolorsc build --engine kolors` (one cache: the LoRA trains once, the
plain panels are reused), and measures each built storyboard as 1Prompt1Story (Liu et al.,
ICLR 2025, Table 1) reports methods:

    CLIP-I  per character, the mean pairwise cosine similarity of the CLIP image embeddings of
            the panels whose prompt names it; averaged over the story's characters, then over
            stories. (kolorsc's scorer embeddings: CLIP ViT-L/14 of the aesthetic predictor.)
    CLIP-T  the mean cosine similarity of each panel with its own prompt, Chinese-CLIP
            (the prompts are Chinese; 1Prompt1Story uses an English CLIP on English prompts,
            so compare differences between variants, not absolute values with the paper).
    plus the challenge's aesthetic mean, and CLIP-I with the reference picture where there
    is one (the character sheet).

Differences from the paper's protocol, on purpose: no background removal before CLIP-I (the
paper segments the subject with CarveKit; kolorsc has no segmentation model), and 3 stories x
8 panels instead of their benchmark set: the numbers say whether kolorsc's switches move
consistency the way the papers report (IP-Adapter: CLIP-I up, CLIP-T down; shared attention:
CLIP-I up, CLIP-T about the same), not the papers' absolute values.

Output: <out>/protocol.json (every number) and <out>/protocol.md (the table).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
VARIANTS = ("plain", "ip", "shared", "both")


def variant_text(text: str, variant: str) -> str:
    import yaml

    data = yaml.safe_load(text)
    data["id"] = f"{data['id']}-{variant}"
    if variant in ("ip", "both"):
        chars = {}
        for key, value in data.get("characters", {}).items():
            value = {"look": value} if isinstance(value, str) else dict(value)
            value["reference"] = "generate"
            chars[key] = value
        data["characters"] = chars
        data.setdefault("consistency", {})["ip_adapter"] = True
    if variant in ("shared", "both"):
        data.setdefault("consistency", {})["shared_attention"] = True
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False)


def write_project(out: Path, stories: list[Path]) -> list[Path]:
    project = out / "project"
    if project.exists():
        shutil.rmtree(project)
    (project / "stories").mkdir(parents=True)
    for folder in ("styles", "data"):
        if (REPO / folder).is_dir():
            shutil.copytree(REPO / folder, project / folder)
    written = []
    for story in stories:
        for variant in VARIANTS:
            path = project / "stories" / f"{story.stem}-{variant}.yaml"
            path.write_text(variant_text(story.read_text(encoding="utf-8"), variant), encoding="utf-8")
            written.append(path)
    return written


def build(paths: list[Path], args) -> None:
    cmd = [sys.executable, "-m", "kolorsc.cli", "build", *map(str, paths), "--engine", args.engine,
           "--out", str(args.out / "build"), "--cache-dir", str(args.out / "cache"), "--keep-going"]
    if args.models_dir:
        cmd += ["--models-dir", str(args.models_dir)]
    if args.device:
        cmd += ["--device", args.device]
    subprocess.run(cmd, check=False)  # a failed story is reported in the table, the others still count


def measure(paths: list[Path], args) -> list[dict]:
    from PIL import Image

    from kolorsc import paths as kpaths
    from kolorsc.consistency import scene_characters
    from kolorsc.errors import ModelMissingError
    from kolorsc.prompts import compile_story
    from kolorsc.scoring import character_scores, load_scorers
    from kolorsc.scoring.report import score_one_batch
    from kolorsc.spec import load_story

    try:
        scorers = load_scorers(kpaths.models_dir(args.models_dir), args.device)
    except ModelMissingError as exc:
        sys.exit(f"cannot measure: {exc}")
    rows = []
    for path in paths:
        story = load_story(path)
        panels = compile_story(story)
        folder = args.out / "build" / story.id / "panels"
        files = [folder / f"{p.index:02d}.png" for p in panels]
        row = {"story": path.stem.rsplit("-", 1)[0], "variant": path.stem.rsplit("-", 1)[1], "id": story.id}
        if not all(f.is_file() for f in files):
            rows.append({**row, "error": "not built"})
            continue
        images = [Image.open(f).convert("RGB") for f in files]
        results = score_one_batch(images, [p.prompt for p in panels], scorers)
        embeddings = {p.index: r.embedding for p, r in zip(panels, results)}
        by_character: dict[str, list[int]] = {}
        for scene in story.scenes:
            for key in scene_characters(story, scene):
                by_character.setdefault(key, []).append(scene.index + 1)
        refs = {}
        for key in by_character:
            sheet = args.out / "build" / story.id / "characters" / f"{key}.png"  # where the build shows sheets, if it keeps them
            if sheet.is_file():
                refs[key] = score_one_batch([Image.open(sheet).convert("RGB")], None, scorers)[0].embedding
        chars = character_scores(embeddings, by_character, refs)
        clip_i = [c.mean for c in chars if c.mean is not None]
        clip_ref = [c.reference for c in chars if c.reference is not None]
        alignment = [r.alignment for r in results]
        rows.append({
            **row,
            "clip_i": sum(clip_i) / len(clip_i) if clip_i else None,
            "clip_t": sum(alignment) / len(alignment) if all(a is not None for a in alignment) else None,
            "clip_i_reference": sum(clip_ref) / len(clip_ref) if clip_ref else None,
            "aesthetic": sum(r.aesthetic for r in results) / len(results),
            "characters": [{"character": c.character, "panels": list(c.panels), "mean": c.mean, "min": c.min,
                            "reference": c.reference} for c in chars],
        })
    return rows


def table(rows: list[dict]) -> str:
    def fmt(v):
        return "-" if v is None else f"{v:.4f}"

    lines = ["| story | variant | CLIP-I | CLIP-T | CLIP-I vs reference | aesthetic |", "|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['story']} | {r['variant']} | {r['error']} | | | |")
        else:
            lines.append(f"| {r['story']} | {r['variant']} | {fmt(r['clip_i'])} | {fmt(r['clip_t'])} | "
                         f"{fmt(r['clip_i_reference'])} | {fmt(r['aesthetic'])} |")
    for variant in VARIANTS:
        done = [r for r in rows if r["variant"] == variant and "error" not in r]

        def mean(key, done=done):
            vals = [r[key] for r in done if r.get(key) is not None]
            return sum(vals) / len(vals) if vals else None

        lines.append(f"| **mean** | {variant} | {fmt(mean('clip_i'))} | {fmt(mean('clip_t'))} | "
                     f"{fmt(mean('clip_i_reference'))} | {fmt(mean('aesthetic'))} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--stories", type=Path, nargs="*", default=sorted((REPO / "stories").glob("*.yaml")))
    parser.add_argument("--engine", default="kolors")
    parser.add_argument("--device", default=None)
    parser.add_argument("--models-dir", type=Path, default=None)
    parser.add_argument("--skip-build", action="store_true", help="measure what an earlier run built")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    paths = write_project(args.out, args.stories)
    if not args.skip_build:
        build(paths, args)
    rows = measure(paths, args)
    (args.out / "protocol.json").write_text(json.dumps(rows, indent=2, ensure_ascii=False))
    (args.out / "protocol.md").write_text(table(rows), encoding="utf-8")
    print(table(rows))


if __name__ == "__main__":
    main()
