"""Every output of one story in one call, sharing one decode of its panels.

This is what a build core calls per story (in the build process, or as one CPU task per
story on a cluster): the panels' PNG bytes go in once, each panel is decoded once, each
thumbnail and JPEG made once (prepared.py), and the panel PNGs get their text chunks
without re-encoding (pngmeta.py). `want` names the outputs to make, by node id, so a build
that has some of them cached asks only for the rest; the bytes of each output are the same
as its own emitter's.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from pathlib import Path

from kolorsc.emit.bundle import bundle_zip
from kolorsc.emit.common import image_name
from kolorsc.emit.pdf import storyboard_pdf
from kolorsc.emit.pngmeta import panel_png
from kolorsc.emit.prepared import prepare_panels
from kolorsc.emit.scores import scores_json
from kolorsc.emit.storyboard import storyboard_png
from kolorsc.errors import BuildError
from kolorsc.i18n import _
from kolorsc.results import StoryResult


def panel_id(index: int) -> str:
    """The node id of panel `index`'s PNG: "panel/01"."""
    return f"panel/{image_name(index)[:-4]}"


def output_ids(result: StoryResult) -> list[str]:
    return [panel_id(pr.panel.index) for pr in result.panels] + ["storyboard", "pdf", "scores", "bundle"]


def emit_story(
    result: StoryResult,
    images: Sequence[bytes],
    lora_path: Path | None,
    want: Collection[str] | None = None,
    sheets: Sequence[bytes] = (),
) -> dict[str, bytes]:
    """The outputs of `result` named in `want` (all when None) by node id: "panel/01" …
    "panel/08", "storyboard", "pdf", "scores", "bundle". `images` are the chosen renders'
    PNG bytes in panel order; `lora_path` the LoRA file for the bundle (None: no LoRA);
    `sheets` the character sheets' PNG bytes (one per `result.sheets`)."""
    if len(images) != len(result.panels):
        raise BuildError(_("{id}: {n} images for {n2} panels").format(
                           id=result.story.id, n=len(images), n2=len(result.panels)))
    wanted = set(output_ids(result) if want is None else want)
    unknown = wanted - set(output_ids(result))
    if unknown:
        raise BuildError(_("{id}: no such output: {unknown}").format(id=result.story.id, unknown=', '.join(sorted(unknown))))
    out: dict[str, bytes] = {}
    # 1. Panel PNGs: also the bundle's images/, so made whenever the bundle is wanted
    if "bundle" in wanted or any(i.startswith("panel/") for i in wanted):
        pngs = [panel_png(png, pr, result) for png, pr in zip(images, result.panels)]
        out.update({panel_id(pr.panel.index): png for pr, png in zip(result.panels, pngs)})
    # 2. Storyboard and PDF from the same decoded panels
    if "storyboard" in wanted or "pdf" in wanted:
        panels = prepare_panels(images)
        if "storyboard" in wanted:
            out["storyboard"] = storyboard_png(result, panels, sheets)
        if "pdf" in wanted:
            out["pdf"] = storyboard_pdf(result, panels, sheets)
    if "scores" in wanted:
        out["scores"] = scores_json(result)
    if "bundle" in wanted:
        out["bundle"] = bundle_zip(result, pngs, lora_path)
    return {k: v for k, v in out.items() if k in wanted}
