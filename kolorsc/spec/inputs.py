"""Can a story be built from this checkout? The local files its style names must exist.

`kolorsc check --inputs` adds these to the usual checks, so a collection's CI fails on a
story whose LoRA file or dataset folder is not in the repository (a fresh clone could not
build it), instead of the GPU machine failing an hour into a build:

- `lora.path`: the file exists;
- `lora.dataset` with `source: local`: the folder exists and holds at least one image.

Remote inputs (`lora.modelscope`, `source: modelscope`) are fetched by the build and cannot
be checked offline; `source: generate` needs only the base model (`kolorsc models pull`).
"""

from __future__ import annotations

from pathlib import Path

from kolorsc.errors import Diagnostic
from kolorsc.i18n import N_, _
from kolorsc.spec.loader import display_name
from kolorsc.spec.model import DATASET_IMAGE_SUFFIXES, Style
from kolorsc.spec.yamlsource import read_source

LORA_HINT = N_("put the file there, reuse a LoRA published on ModelScope (lora.modelscope), or train one (lora.train)")
DATASET_HINT = N_("add the images there (x.jpg with a caption in x.txt), or use source: modelscope (a dataset id) "
                "or source: generate (rendered by the base model)")


def input_problems(style: Style, story_file: Path | None = None) -> list[Diagnostic]:
    """Missing local inputs of `style`, pointing at the lines that name them (in the style
    file, or in `story_file` for a style written inline in a story)."""
    lora = style.lora
    if lora is None:
        return []
    missing = []
    if lora.path is not None and not Path(lora.path).is_file():
        missing.append((("lora", "path"), _("the LoRA file {file} does not exist").format(file=display_name(lora.path)),
                        _(LORA_HINT)))
    dataset = lora.dataset
    if dataset is not None and dataset.source == "local" and dataset.path is not None:
        folder = Path(dataset.path)
        if not folder.is_dir():
            missing.append((("lora", "dataset", "path"), _("the dataset folder {folder} does not exist").format(
                folder=display_name(folder)), _(DATASET_HINT)))
        elif not any(p.suffix.lower() in DATASET_IMAGE_SUFFIXES and p.is_file() for p in folder.rglob("*")):
            missing.append((("lora", "dataset", "path"), _("the dataset folder {folder} holds no images ({suffixes})").format(
                folder=display_name(folder), suffixes=" ".join(DATASET_IMAGE_SUFFIXES)), _(DATASET_HINT)))
    if not missing:
        return []
    if style.source is not None:
        src, prefix = read_source(style.source, display_name(style.source)), ()
    else:
        src, prefix = read_source(story_file, display_name(story_file)), ("style",)
    return [src.diag(prefix + path, message, hint) for path, message, hint in missing]
