"""The Data-Juicer operators kolorsc runs on a style's dataset, and what each needs.

The one list: `kolorsc check` refuses any other operator at its line in the style file
(before, a mistyped operator passed the pattern check and failed an hour into a build), and
kolorsc.data.juicer runs exactly these. Values: the Python modules an operator needs beyond
Data-Juicer's own requirements (declared in the `models` extra, never installed at run time).
"""

from __future__ import annotations

SUPPORTED_OPS: dict[str, tuple[str, ...]] = {
    "image_shape_filter": (),
    "image_aspect_ratio_filter": (),
    "image_size_filter": (),
    "image_deduplicator": ("imagededup",),
    "image_aesthetics_filter": ("aesthetics_predictor",),
}
