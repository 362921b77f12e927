"""Outputs of a build: panel PNGs with parameters, storyboard PNG/PDF, scores.json, the
submission bundle (with model card and ComfyUI workflow), and `bundle verify`.

Pure functions: a StoryResult (plus image bytes) in, deterministic bytes out. The runner
writes the files; nothing here touches the cache. Pillow and reportlab are imported inside
the functions that draw, so importing this package stays cheap.

Per story, call `emit_story` (every output, each panel decoded once), or `prepare_panels`
once and pass the result to `storyboard_png` and `storyboard_pdf`.
"""

from kolorsc.emit.bundle import bundle_entries, bundle_filename, bundle_zip, prompts_json
from kolorsc.emit.comfyui import comfyui_workflow
from kolorsc.emit.modelcard import PREVIEW_MARKER, model_card, prompts_md
from kolorsc.emit.pdf import storyboard_pdf
from kolorsc.emit.pngmeta import panel_png, read_png_text
from kolorsc.emit.prepared import PreparedPanels, prepare_panels
from kolorsc.emit.scores import scores_json
from kolorsc.emit.story import emit_story, output_ids
from kolorsc.emit.storyboard import storyboard_png
from kolorsc.emit.verify import Finding, VerifyReport, verify_bundle

__all__ = [
    "PREVIEW_MARKER",
    "PreparedPanels",
    "Finding",
    "VerifyReport",
    "bundle_entries",
    "bundle_filename",
    "bundle_zip",
    "comfyui_workflow",
    "emit_story",
    "model_card",
    "output_ids",
    "panel_png",
    "prepare_panels",
    "prompts_json",
    "prompts_md",
    "read_png_text",
    "scores_json",
    "storyboard_pdf",
    "storyboard_png",
    "verify_bundle",
]
