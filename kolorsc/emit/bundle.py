"""The submission bundle `{team}-可图Kolors训练-{id}.zip`, byte-for-byte reproducible.

Layout (at the zip root):
  images/01.png … 08.png      exactly the eight panels: the official scorer averages every
                              file in the folder, so nothing else may go there
  lora/<style>.safetensors    the LoRA, when there is one
  README.md                   model card
  prompts.json, prompts.md    everything needed to reproduce each panel (chosen seeds)
  scores.json
  workflow_comfyui.json
  PREVIEW-NOT-A-SUBMISSION.txt   only in preview bundles
Determinism: fixed timestamps (1980-01-01), sorted entries, fixed permissions and creator
system, UTF-8 names (zipfile sets flag bit 11 for non-ASCII names).
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

from kolorsc.emit.comfyui import comfyui_workflow
from kolorsc.emit.common import canonical_json, image_name, lora_filename, lora_record, panel_record
from kolorsc.emit.modelcard import PREVIEW_MARKER, PREVIEW_TEXT, model_card, prompts_md
from kolorsc.emit.scores import scores_json
from kolorsc.errors import BuildError
from kolorsc.i18n import _
from kolorsc.results import StoryResult
from kolorsc.spec.model import SCENE_COUNT

ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
PROMPTS_FORMAT = 1


def bundle_filename(result: StoryResult) -> str:
    return f"{result.story.bundle_name}.zip"


def prompts_json(result: StoryResult) -> bytes:
    data = {
        "format": PROMPTS_FORMAT,
        "story": result.story.id,
        "title": result.story.title,
        "team": result.story.team,
        "base_model": result.story.style.base_model,
        "engine": result.engine,
        "preview": result.preview,
        "lora": lora_record(result),
        "panels": [panel_record(pr, result) for pr in result.panels],
    }
    return canonical_json(data).encode("utf-8")


def bundle_entries(result: StoryResult, panel_pngs: list[bytes], lora_path: Path | None) -> dict[str, bytes]:
    """Every file of the bundle by its name in the zip."""
    if len(panel_pngs) != len(result.panels) or len(panel_pngs) != SCENE_COUNT:
        raise BuildError(
            _("bundle {bundle_filename}: {n} panel images for {n2} panels; a submission has exactly "
              "{scene_count}").format(
              bundle_filename=bundle_filename(result), n=len(panel_pngs), n2=len(result.panels), scene_count=SCENE_COUNT)
        )
    entries: dict[str, bytes] = {}
    for pr, png in zip(result.panels, panel_pngs):
        entries[f"images/{image_name(pr.panel.index)}"] = png
    if lora_path is not None:
        if result.lora is None:
            raise BuildError(_("bundle {bundle_filename}: a LoRA file was given but the result has no LoRA").format(
                               bundle_filename=bundle_filename(result)))
        try:
            entries[f"lora/{lora_filename(result)}"] = Path(lora_path).read_bytes()
        except OSError as exc:
            raise BuildError(_("bundle {bundle_filename}: cannot read the LoRA {lora_path}: {problem}").format(
                               bundle_filename=bundle_filename(result), lora_path=lora_path, problem=exc)) from exc
    entries["README.md"] = model_card(result).encode("utf-8")
    entries["prompts.json"] = prompts_json(result)
    entries["prompts.md"] = prompts_md(result).encode("utf-8")
    entries["scores.json"] = scores_json(result)
    workflow = json.dumps(comfyui_workflow(result), ensure_ascii=False, sort_keys=True, indent=2) + "\n"
    entries["workflow_comfyui.json"] = workflow.encode("utf-8")
    if result.preview:
        entries[PREVIEW_MARKER] = PREVIEW_TEXT.encode("utf-8")
    return entries


def deterministic_zip(entries: dict[str, bytes]) -> bytes:
    """A zip of `entries` whose bytes depend only on names and contents."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name in sorted(entries):
            info = zipfile.ZipInfo(name, date_time=ZIP_EPOCH)
            info.create_system = 3  # Unix, whatever machine builds it
            info.external_attr = (0o100644 & 0xFFFF) << 16  # regular file, rw-r--r--
            # PNG and safetensors barely compress; storing them keeps the build fast.
            compressible = not name.endswith((".png", ".safetensors"))
            info.compress_type = zipfile.ZIP_DEFLATED if compressible else zipfile.ZIP_STORED
            zf.writestr(info, entries[name], compresslevel=6 if compressible else None)
    return buf.getvalue()


def bundle_zip(result: StoryResult, panel_pngs: list[bytes], lora_path: Path | None) -> bytes:
    """The bundle as zip bytes (the caller writes it atomically as bundle_filename(result))."""
    return deterministic_zip(bundle_entries(result, panel_pngs, lora_path))
