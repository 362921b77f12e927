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
# A render's consistency inputs (part: a character's scale; a sharing setting) -> where the
# value in effect is written, in kolorsc.consistency's order of precedence: the scene's
# `consistency:` first, then the story's. "{c}" is the part. The identity panels (part
# "identity") change when those scenes change: no one line says so.
_CONSISTENCY = {
    "ip_adapter": ("{s}.ip_adapter.characters.{c}", "{s}.ip_adapter.scale", "consistency.ip_adapter.characters.{c}",
                   "consistency.ip_adapter.scale", "{s}.ip_adapter", "consistency.ip_adapter"),
    "shared_attention": ("{s}.shared_attention.{c}", "consistency.shared_attention.{c}",
                         "consistency.shared_attention"),
}


def input_loc(story: Story, node_id: NodeId, name: str, part: str | None = None) -> Loc | None:
    """The line of the story or style field that input `name` (part `part`) of the node comes from."""
    if name == "story":
        return story.locs.get(part) if part in _STORY_PARTS else None
    if name == "pictures" and part:  # a render's reference picture: the character's `reference:`
        return story.locs.get(f"characters.{part}.reference")
    if name in ("picture_sha256", "picture") and node_id.name:  # picture/C, reference/C
        return story.locs.get(f"characters.{node_id.name}.reference")
    if name in _CONSISTENCY:
        return _consistency_loc(story, node_id, name, part)
    if node_id.kind == "sheet":  # a character sheet comes from its character's `reference` (and `sheet`)
        c = node_id.name
        return story.locs.get(f"characters.{c}.sheet.{part or name}") or story.locs.get(f"characters.{c}.sheet") \
            or story.locs.get(f"characters.{c}.reference")
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


def _consistency_loc(story: Story, node_id: NodeId, name: str, part: str | None) -> Loc | None:
    if name == "shared_attention" and part == "identity":
        return None
    scene = f"scenes[{node_id.panel - 1}].consistency" if node_id.panel else None
    for f in _CONSISTENCY[name]:
        if ("{s}" in f and scene is None) or ("{c}" in f and not part):
            continue
        loc = story.locs.get(f.format(s=scene, c=part))
        if loc is not None:
            return loc
    return None
