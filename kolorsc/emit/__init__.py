"""Outputs of a build: panel PNGs with parameters, storyboard PNG/PDF, scores.json, the
submission bundle (with model card and ComfyUI workflow), the HTML gallery, and `bundle verify`.

Pure functions: a StoryResult (plus image bytes) in, deterministic bytes out. The build's
stages (kolorsc.build.stages) call them and store what they return; nothing here touches
the cache. Each name below is imported from its module on first use (PEP 562), so that
importing one emitter (the gallery, say) does not load reportlab for the others.

Per story, `emit_story` makes every output with each panel decoded once; or call
`prepare_panels` once and pass the result to `storyboard_png` and `storyboard_pdf`.
"""

from __future__ import annotations

import importlib

_WHERE = {
    "bundle_entries": "bundle", "bundle_filename": "bundle", "bundle_zip": "bundle", "prompts_json": "bundle",
    "comfyui_workflow": "comfyui",
    "PREVIEW_MARKER": "modelcard", "model_card": "modelcard", "prompts_md": "modelcard",
    "storyboard_pdf": "pdf",
    "panel_png": "pngmeta", "read_png_text": "pngmeta",
    "scores_json": "scores",
    "PreparedPanels": "prepared", "prepare_panels": "prepared",
    "emit_story": "story", "output_ids": "story",
    "storyboard_png": "storyboard",
    "Finding": "verify", "VerifyReport": "verify", "verify_bundle": "verify",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
