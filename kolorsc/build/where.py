"""Where in the story (or its style) a node's input is written, so `plan` can say which line
changed it: "seed 3 → 5 at stories/x.yaml:41", "style ink-wash → anime at stories/x.yaml:9".

    input_loc(story, node_id, name, part=None) -> Loc | None

`name` is a node input (kolorsc.build.graph: "seed", "settings", "story", ...), `part` the
named part of a mapping input ("steps" of settings, "title" of story). A scene's value comes
from the scene when the scene sets it, else from `defaults` (or, for the negative, the style):
the line returned is the one that holds the value in effect. Inputs that are not written in a
file (code, engine, model weights, upstream images) have no line.
"""

from __future__ import annotations

from kolorsc.build.graph import NodeId
from kolorsc.spec.model import Loc, Story

# node input (or part) -> the story fields it comes from, first that is written wins;
# "{s}" is the scene's path ("scenes[2]")
_SCENE_FIELDS = {
    "prompt": ("{s}.prompt",),
    "negative": ("{s}.negative", "defaults.negative", "@negative"),
    "seed": ("{s}.seed", "defaults.seed"),
    "panel_seed": ("{s}.seed", "defaults.seed"),
    "steps": ("{s}.steps", "defaults.steps"),
    "cfg": ("{s}.cfg", "defaults.cfg"),
    "width": ("{s}.size", "defaults.size"),
    "height": ("{s}.size", "defaults.size"),
    "refine": ("defaults.refine",),
    "candidates": ("{s}.candidates", "defaults.candidates"),
    "caption": ("{s}.caption",),
    "shot": ("{s}.shot",),
    "base_model": ("@base_model", "style"),
    "lora_scale": ("@lora.scale", "@lora", "style"),
    "style": ("style",),
    "dataset": ("@lora.dataset.{p}", "@lora.dataset"),
    "training": ("@lora.train.{p}", "@lora.train"),
}
# Not written in a file: the LoRA (its key: upstream), the LoRA file's bytes (file_sha256), a dataset's files or the hub's
# listing of it (source), code, engine and model identities, upstream outputs.
_STORY_PARTS = ("id", "title", "team", "description", "threshold", "style")


def input_loc(story: Story, node_id: NodeId, name: str, part: str | None = None) -> Loc | None:
    """The line of the story or style field that input `name` (part `part`) of the node comes from."""
    if name == "story":
        return story.locs.get(part) if part in _STORY_PARTS else None
    key = part if name in ("settings", "panel") and part else name
    fields = _SCENE_FIELDS.get(key)
    if fields is None:
        return None
    scene = f"scenes[{node_id.panel - 1}]" if node_id.panel else None
    for f in fields:
        if "{p}" in f:
            loc = story.style.locs.get(f[1:].format(p=part)) if part else None
        elif f.startswith("@"):
            loc = story.style.locs.get(f[1:])
        elif "{s}" in f:
            loc = story.locs.get(f.format(s=scene)) if scene else None
        else:
            loc = story.locs.get(f)
        if loc is not None:
            return loc
    return None
