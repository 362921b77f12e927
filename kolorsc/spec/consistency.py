"""The story's `consistency:` settings, character `reference:` pictures and the scenes'
overrides: read from schema-valid data into the typed model, with the checks a schema cannot
express (files, character names, scenes that must render together).

Rules (kolorsc/spec/README.md "Consistency"):
- `reference:` is a picture relative to the story file, inside the project, that Pillow
  reads as PNG, JPEG or WebP (at most MAX_PIXELS); or the word `generate` (a file of that
  name is written `./generate`).
- `ip_adapter` on (story or scene) needs at least one character with a reference, and its
  `characters:` scales name characters of the story.
- `shared_attention` renders the sharing scenes in batches, so they share one size and one
  number of steps; the identity panels are sharing scenes, fewer than all of them and fewer
  than `group`. A scene can turn sharing off, not on (the identity panels are the story's).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path

from kolorsc.errors import Diagnostic
from kolorsc.i18n import _
from kolorsc.spec.model import (
    DEFAULT_SHEET_POSE,
    Consistency,
    IpAdapter,
    Reference,
    SceneConsistency,
    SharedAttention,
)
from kolorsc.spec.yamlsource import Source, quote

GENERATE = "generate"
IMAGE_FORMATS = ("PNG", "JPEG", "WEBP")
MAX_PIXELS = 40_000_000  # the encoder sees 336x336; anything this big is a mistake (or a bomb)


@dataclass
class Parsed:
    consistency: Consistency = field(default_factory=Consistency)
    references: dict[str, Reference] = field(default_factory=dict)  # character key -> reference
    scenes: list[SceneConsistency | None] = field(default_factory=list)  # one per scene


def read_consistency(src: Source, story_path: Path, root: Path, inside) -> tuple[Parsed, list[Diagnostic]]:
    """Everything about consistency in a schema-valid story. `inside(value, base_file, root)`
    resolves a path and returns None when it leaves the project (the loader's rule)."""
    data = src.data
    diags: list[Diagnostic] = []
    parsed = Parsed()
    characters = data.get("characters", {})
    for key, value in characters.items():
        if isinstance(value, dict):
            ref, ref_diags = _reference(src, key, value, story_path, root, inside)
            diags += ref_diags
            if ref is not None:
                parsed.references[key] = ref
    block = data.get("consistency", {})
    ip = _ip_adapter(block.get("ip_adapter"))
    shared = _shared(block.get("shared_attention"))
    pose = block.get("sheet", {}).get("pose", DEFAULT_SHEET_POSE)
    parsed.consistency = Consistency(ip_adapter=ip, shared_attention=shared, sheet_pose=pose)
    parsed.scenes = [_scene(s.get("consistency")) for s in data.get("scenes", [])]

    names = list(characters)
    if ip is not None:
        diags += _unknown_characters(src, ("consistency", "ip_adapter", "characters"), ip.characters, names)
    for i, scene in enumerate(parsed.scenes):
        if scene is not None:
            diags += _unknown_characters(src, ("scenes", i, "consistency", "ip_adapter", "characters"), scene.ip_characters, names)
    diags += _ip_needs_references(src, parsed)
    diags += _sharing_problems(src, parsed)
    return parsed, diags


# -- reading -----------------------------------------------------------------------------


def _reference(src, key, value, story_path, root, inside):
    where = ("characters", key)
    sheet = value.get("sheet")
    if "reference" not in value:
        if sheet is not None:
            return None, [src.diag((*where, "sheet"), _("sheet is only used with `reference: generate`"),
                                   _("add `reference: generate` to this character, or remove sheet"))]
        return None, []
    text = value["reference"]
    if text == GENERATE:
        sheet = sheet or {}
        return Reference(generate=True, pose=sheet.get("pose"), seed=sheet.get("seed")), []
    if sheet is not None:
        return None, [src.diag((*where, "sheet"), _("sheet is only used with `reference: generate`"),
                               _("this character's reference is the picture {path}").format(path=quote(text)))]
    path = inside(text, story_path, root)
    if path is None:
        return None, [src.diag((*where, "reference"),
                               _("path {path} leaves the project folder").format(path=quote(text)),
                               _("keep reference pictures inside the project root {root}").format(root=root))]
    problem = picture_problem(path)
    if problem:
        return None, [src.diag((*where, "reference"),
                               _("reference {path} {problem}").format(path=quote(text), problem=problem),
                               _("a PNG, JPEG or WebP picture of the character, relative to this story file, "
                                 "or `generate`"))]
    return Reference(path=path), []


def picture_problem(path: Path) -> str | None:
    """None when Pillow reads `path` as a PNG/JPEG/WebP picture of sane size, else what is wrong."""
    if not path.is_file():
        return _("does not exist")
    import warnings

    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                fmt, (w, h) = im.format, im.size
                if fmt not in IMAGE_FORMATS:
                    return _("is a {format} picture, not PNG, JPEG or WebP").format(format=fmt)
                if w * h > MAX_PIXELS:
                    return _("is {w}x{h} pixels, more than {limit} (it is shrunk to 336 px anyway)").format(
                        w=w, h=h, limit=f"{MAX_PIXELS:,}")
                im.verify()  # reads the data: a truncated file fails here
    except (UnidentifiedImageError, Image.DecompressionBombWarning, Image.DecompressionBombError):
        return _("is not a picture Pillow can read")
    except (OSError, SyntaxError, ValueError) as exc:  # truncated/corrupt data
        return _("cannot be read ({problem})").format(problem=exc)
    return None


def _ip_adapter(value) -> IpAdapter | None:
    if value is None or value is False:
        return None
    if value is True:
        return IpAdapter()
    return IpAdapter(scale=float(value.get("scale", 0.5)),
                     characters={k: float(v) for k, v in value.get("characters", {}).items()})


def _shared(value) -> SharedAttention | None:
    if value is None or value is False:
        return None
    if value is True:
        return SharedAttention()
    identity = value.get("identity", 2)
    return SharedAttention(
        identity=tuple(identity) if isinstance(identity, list) else identity,
        group=value.get("group", 8),
        rate=float(value.get("rate", 0.5)),
        layers=value.get("layers", "up"),
        from_step=value.get("from_step", 1),
    )


def _scene(value) -> SceneConsistency | None:
    if value is None:
        return None
    ip, share = value.get("ip_adapter"), value.get("shared_attention")
    ip_map = ip if isinstance(ip, dict) else {}
    share_map = share if isinstance(share, dict) else {}
    return SceneConsistency(
        ip_adapter=None if ip is None else (ip is not False),
        ip_scale=None if "scale" not in ip_map else float(ip_map["scale"]),
        ip_characters={k: float(v) for k, v in ip_map.get("characters", {}).items()},
        shared_attention=None if share is None else (share is not False),
        shared_rate=None if "rate" not in share_map else float(share_map["rate"]),
    )


# -- checks ------------------------------------------------------------------------------


def _unknown_characters(src, path, scales: dict, names: list[str]) -> list[Diagnostic]:
    out = []
    for key in (k for k in scales if k not in names):
        close = difflib.get_close_matches(key, names, n=1)
        hint = (_("did you mean \"{name}\"?").format(name=close[0]) if close
                else _("characters: {names}").format(names=", ".join(names) or _("none")))
        out.append(src.diag((*path, key), _("unknown character \"{name}\"").format(name=key), hint, at_key=True))
    return out


def _ip_needs_references(src, parsed: Parsed) -> list[Diagnostic]:
    declared = any(isinstance(c, dict) and "reference" in c for c in src.data.get("characters", {}).values())
    if declared:  # a reference that failed its own check has said so already
        return []
    out = []
    if parsed.consistency.ip_adapter is not None:
        out.append(src.diag(("consistency", "ip_adapter"),
                            _("ip_adapter is on but no character has a reference picture"),
                            _("add `reference: refs/<name>.png` (or `reference: generate`) to a character")))
    for i, scene in enumerate(parsed.scenes):
        if scene is not None and scene.ip_adapter:
            out.append(src.diag(("scenes", i, "consistency", "ip_adapter"),
                                _("ip_adapter is on but no character has a reference picture"),
                                _("add `reference: refs/<name>.png` (or `reference: generate`) to a character")))
    return out


def sharing_scenes(shared: SharedAttention | None, scenes: list[SceneConsistency | None]) -> list[int]:
    """0-based indices of the scenes that take part in shared attention."""
    if shared is None:
        return []
    return [i for i, s in enumerate(scenes) if s is None or s.shared_attention is not False]


def identity_scenes(shared: SharedAttention, sharing: list[int]) -> list[int]:
    """0-based indices of the identity scenes: the listed scene numbers, or the first N sharing scenes."""
    if isinstance(shared.identity, int):
        return sharing[: shared.identity]
    return sorted(n - 1 for n in shared.identity)


def _sharing_problems(src, parsed: Parsed) -> list[Diagnostic]:
    shared = parsed.consistency.shared_attention
    scenes = parsed.scenes
    out = []
    if shared is None:
        for i, scene in enumerate(scenes):
            if scene is not None and (scene.shared_attention or scene.shared_rate is not None):
                out.append(src.diag(("scenes", i, "consistency", "shared_attention"),
                                    _("shared_attention is off for the story, so a scene cannot turn it on"),
                                    _("set consistency.shared_attention at the top of the story (it chooses "
                                      "the identity panels)")))
        return out
    where = ("consistency", "shared_attention")
    sharing = sharing_scenes(shared, scenes)
    if isinstance(shared.identity, int):
        count = shared.identity
        if count >= len(sharing):
            out.append(src.diag((*where, "identity"),
                                _("{n} identity panels but only {sharing} scenes share attention").format(
                                    n=count, sharing=len(sharing)),
                                _("use fewer identity panels than sharing scenes")))
    else:
        count = len(shared.identity)
        for n in shared.identity:
            if n - 1 not in sharing:
                out.append(src.diag((*where, "identity"),
                                    _("scene {n} is an identity panel but does not share attention").format(n=n),
                                    _("remove `shared_attention: false` from scene {n}, or pick another "
                                      "scene").format(n=n)))
        if count >= len(sharing):
            out.append(src.diag((*where, "identity"), _("every sharing scene is an identity panel"),
                                _("leave at least one sharing scene out of the identity list")))
    if count >= shared.group:
        out.append(src.diag((*where, "group"), _("group {group} leaves no room beside {n} identity panels").format(
            group=shared.group, n=count), _("use a group of at least {n}").format(n=count + 1)))
    out += _same_size_and_steps(src, sharing)
    return out


def _same_size_and_steps(src, sharing: list[int]) -> list[Diagnostic]:
    """The batch runs one scheduler over one latent size: every sharing scene needs both equal."""
    data = src.data
    defaults = data.get("defaults", {})
    out = []
    first = None
    for i in sharing:
        scene = data["scenes"][i]
        size = list(scene.get("size", defaults.get("size", [1024, 1024])))
        steps = scene.get("steps", defaults.get("steps", 50))
        if first is None:
            first = (i, size, steps)
            continue
        j, size0, steps0 = first
        hint = _("give it scene {n}'s value, or set `consistency: {{shared_attention: false}}` on this "
                 "scene").format(n=j + 1)
        if size != size0:
            out.append(src.diag(("scenes", i, "size") if "size" in scene else ("scenes", i),
                                _("shared attention renders panels together: size {size} differs from scene "
                                  "{n}'s {first}").format(size=size, n=j + 1, first=size0), hint))
        if steps != steps0:
            out.append(src.diag(("scenes", i, "steps") if "steps" in scene else ("scenes", i),
                                _("shared attention renders panels together: {steps} steps differ from scene "
                                  "{n}'s {first}").format(steps=steps, n=j + 1, first=steps0), hint))
    return out
