"""Read a folder of images the way the challenge's evaluation script does.

The official `evaluate(folder)` averages EVERY file directly in the folder (os.listdir +
isfile; subfolders are ignored) and opens each with PIL: a stray README or .DS_Store makes it
crash, and a ninth image changes the mean. kolorsc scores the same set of files, and warns
about everything that would make the official number differ from what the author expects.

Images come from anyone: each file's size is read from its header and checked against the
pixel budget (kolorsc.images) before anything is decoded; a file over it is left out with
a warning naming it, like a file that is not an image.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from kolorsc.errors import UsageError, one_line
from kolorsc.images import MAX_PIXELS, header_problem
from kolorsc.i18n import _

EXPECTED_IMAGES = 8


@dataclass(frozen=True)
class FolderScan:
    images: tuple[Path, ...]  # files PIL can open within the pixel budget, sorted by name
    not_images: tuple[Path, ...]  # files PIL cannot open: the official script fails on them
    warnings: tuple[str, ...]
    too_large: tuple[Path, ...] = ()  # images over the pixel budget: left out, never decoded


def scan_folder(folder: Path, max_pixels: int = MAX_PIXELS) -> FolderScan:
    folder = Path(folder)
    if not folder.is_dir():
        raise UsageError(_("{folder}: not a folder of images").format(folder=folder))
    files = sorted(p for p in folder.iterdir() if p.is_file())
    problems = {p: header_problem(p, max_pixels) for p in files}
    images = tuple(p for p in files if problems[p] is None)
    too_large = tuple(p for p in files if problems[p] is not None and problems[p].too_large)
    not_images = tuple(p for p in files if problems[p] is not None and not problems[p].too_large)
    warnings = []
    for p in too_large:
        warnings.append(f"{one_line(p.name)}: {problems[p]}")
    for p in not_images:
        warnings.append(
            _("{name}: not an image; the challenge's script averages every file in the folder and "
              "would fail on it: remove it from the submission folder").format(
              name=one_line(p.name))
        )
    if images and len(images) != EXPECTED_IMAGES:
        warnings.append(
            _("{n} images in {folder}: the challenge scores exactly the {expected_images} submitted "
              "panels, and its script averages every file in the folder").format(
              n=len(images), folder=folder, expected_images=EXPECTED_IMAGES)
        )
    return FolderScan(images=images, not_images=not_images, warnings=tuple(warnings), too_large=too_large)


def read_prompts(path: Path, images: tuple[Path, ...]) -> list[str]:
    """Prompts for alignment: a JSON object {file name: prompt}, or one prompt per line in the
    images' name order."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(_("{path}: cannot read prompts ({strerror})").format(path=path, strerror=exc.strerror)) from exc
    if path.suffix.lower() == ".json":
        try:
            mapping = json.loads(text)
        except json.JSONDecodeError as exc:
            raise UsageError(_("{path}:{lineno}:{colno}: invalid JSON: {msg}").format(
                               path=path, lineno=exc.lineno, colno=exc.colno, msg=exc.msg)) from exc
        if not isinstance(mapping, dict):
            raise UsageError(_("{path}: expected a JSON object mapping image file names to prompts").format(path=path))
        absent = [p.name for p in images if p.name not in mapping]
        if absent:
            raise UsageError(_("{path}: no prompt for {absent}").format(path=path, absent=', '.join(absent)))
        return [str(mapping[p.name]) for p in images]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) != len(images):
        raise UsageError(
            _("{path}: {n} prompts for {n2} images (one non-empty line per image, in file-name order)").format(
              path=path, n=len(lines), n2=len(images))
        )
    return lines
