"""Character consistency, resolved per panel: which characters a scene shows, which reference
pictures condition it and with what scale, and how it shares attention. Pure functions of the
typed story (no files read, no models): the build core turns them into render keys and
render jobs, `kolorsc prompts` could show them.

- A scene shows the characters its prompt template names (`{{ girl }}`, `{{ girl.look }}`,
  ... found by Jinja's static analysis, kolorsc.spec.templates.referenced_names), in the
  order the story lists its characters.
- IP-Adapter scale of character c in scene s: s's `characters: {c: x}`, else s's `scale`,
  else the story's `characters: {c: x}`, else the story's `scale` (0.5 by default). A scale
  of 0 drops the reference: the panel renders (and is keyed) exactly as without it.
- Shared attention: every scene takes part unless it says `shared_attention: false`; the
  identity panels are the listed scenes or the first N sharing ones; a scene may set its rate.
- `reference: generate` makes a character sheet: one square render of the character alone
  (style trigger, look, pose), its own seed, the story's steps and cfg (character_sheet_panel).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

from kolorsc.prompts import Panel, merge_negatives, normalise
from kolorsc.spec.consistency import identity_scenes, sharing_scenes
from kolorsc.spec.model import IpAdapter, Scene, Story

SHEET_INDEX = 0  # a character sheet is not one of the eight panels (1..8)


@dataclass(frozen=True)
class ReferenceUse:
    character: str
    scale: float  # > 0
    path: Path | None  # the picture; None when the character sheet provides it
    generate: bool = False

    def as_dict(self) -> dict:
        """Plain data without the file's location (keys use the picture's content hash)."""
        return {"character": self.character, "scale": self.scale, "generate": self.generate}


@dataclass(frozen=True)
class Sharing:
    identity: tuple[int, ...]  # panel numbers (1-based) whose first candidate every panel attends to
    group: int  # images per batch, identity panels included
    rate: float  # this panel's sampling rate of each identity panel's tokens
    layers: str
    from_step: int

    def as_dict(self) -> dict:
        return {"identity": list(self.identity), "group": self.group, "rate": self.rate,
                "layers": self.layers, "from_step": self.from_step}


@dataclass(frozen=True)
class PanelConsistency:
    index: int  # 1..8
    characters: tuple[str, ...]  # named by the scene's prompt, in story order
    references: tuple[ReferenceUse, ...] = ()  # the pictures that condition this panel (scale > 0)
    sharing: Sharing | None = None

    @property
    def on(self) -> bool:
        return bool(self.references) or self.sharing is not None

    def is_identity(self, seed: int, first_seed: int) -> bool:
        """Is this render (panel seed `seed`, the panel's first candidate `first_seed`) an identity image?"""
        return self.sharing is not None and self.index in self.sharing.identity and seed == first_seed


def scene_characters(story: Story, scene: Scene) -> tuple[str, ...]:
    """Keys of the characters the scene's prompt template names, in the story's order."""
    from kolorsc.spec.templates import referenced_names

    named = referenced_names(scene.prompt)
    return tuple(key for key in story.characters if key in named)


def panel_consistency(story: Story) -> list[PanelConsistency]:
    """One PanelConsistency per scene (index 1..8), in order."""
    shared = story.consistency.shared_attention
    scene_settings = [s.consistency for s in story.scenes]
    sharing_idx = sharing_scenes(shared, scene_settings)
    identity = tuple(i + 1 for i in identity_scenes(shared, sharing_idx)) if shared else ()
    out = []
    for scene in story.scenes:
        characters = scene_characters(story, scene)
        refs = _references(story, scene, characters)
        sharing = None
        if scene.index in sharing_idx:
            rate = scene.consistency.shared_rate if scene.consistency and scene.consistency.shared_rate is not None else shared.rate
            sharing = Sharing(identity, shared.group, rate, shared.layers, shared.from_step)
        out.append(PanelConsistency(scene.index + 1, characters, refs, sharing))
    return out


def _ip_settings(story: Story, scene: Scene) -> tuple[IpAdapter | None, dict[str, float], float | None]:
    """(story-level settings in force, scene per-character scales, scene scale) or (None, ...) when off."""
    base = story.consistency.ip_adapter
    sc = scene.consistency
    if sc is not None and sc.ip_adapter is False:
        return None, {}, None
    if base is None and not (sc is not None and sc.ip_adapter):
        return None, {}, None
    return base or IpAdapter(), (sc.ip_characters if sc else {}), (sc.ip_scale if sc else None)


def _references(story: Story, scene: Scene, characters: tuple[str, ...]) -> tuple[ReferenceUse, ...]:
    base, scene_chars, scene_scale = _ip_settings(story, scene)
    if base is None:
        return ()
    out = []
    for key in characters:
        ref = story.characters[key].reference
        if ref is None:
            continue
        if key in scene_chars:
            scale = scene_chars[key]
        elif scene_scale is not None:
            scale = scene_scale
        else:
            scale = base.characters.get(key, base.scale)
        if scale > 0:
            out.append(ReferenceUse(key, float(scale), ref.path, ref.generate))
    return tuple(out)


def sheet_seed(story: Story, key: str) -> int:
    """The sheet's `seed:`, else the story's base seed plus a number derived from the key
    (stable when characters are added or reordered)."""
    ref = story.characters[key].reference
    if ref is not None and ref.seed is not None:
        return ref.seed
    return (story.defaults.seed + zlib.crc32(key.encode("utf-8")) % 100_000) % 2**32


def character_sheet_panel(story: Story, key: str) -> Panel:
    """The render behind `reference: generate`: the character alone in the story's style.

    Prompt: style trigger, the character's look, the pose (the character's `sheet.pose`, else
    `consistency.sheet.pose`). Negative: the style's and the story's. Square (the smaller side
    of defaults.size): the image encoder crops a centred square, so a square sheet keeps all
    of the character. Steps and cfg from defaults; no refine, one candidate."""
    character = story.characters[key]
    ref = character.reference
    pose = (ref.pose if ref is not None and ref.pose else None) or story.consistency.sheet_pose
    d = story.defaults
    side = min(d.size)
    return Panel(
        index=SHEET_INDEX,
        caption=character.name or key,
        prompt=normalise(f"{story.style.trigger}\n{character.look}\n{pose}"),
        negative=merge_negatives(story.style.negative, d.negative),
        seed=sheet_seed(story, key),
        steps=d.steps,
        cfg=float(d.cfg),
        width=side,
        height=side,
    )


def generated_characters(story: Story) -> list[str]:
    """Characters whose reference is a character sheet, and that some panel uses."""
    used = {r.character for pc in panel_consistency(story) for r in pc.references}
    return [k for k, c in story.characters.items() if c.reference is not None and c.reference.generate and k in used]


def panels_showing(story: Story, consistency: list[PanelConsistency] | None = None) -> dict[str, list[int]]:
    """character -> the panels (1-based) whose prompt names it, for every character some panel
    shows, in the story's order: what per-character consistency compares."""
    pcs = panel_consistency(story) if consistency is None else consistency
    out = {c: [pc.index for pc in pcs if c in pc.characters] for c in story.characters}
    return {c: panels for c, panels in out.items() if panels}


def render_key_inputs(pc: PanelConsistency, panels: dict[int, Panel], consistency: dict[int, PanelConsistency],
                      picture_sha256: dict[str, str] | None) -> dict | None:
    """What consistency adds to the inputs of panel `pc.index`'s render keys (every
    candidate), or None when it is off for the panel (the key then stays as without it).

    - references: character, scale and the picture's sha256 (the file's, or the character
      sheet's PNG) of each reference; a new picture re-renders exactly the panels using it.
    - sharing: the settings, this panel's rate, and for every identity panel what decides its
      image (prompt, negative, seed and settings of its first candidate, its references, its
      rate): a panel that shares attends to those images. Whether a candidate is an identity
      image follows from its seed and is not an input.
    `panels`/`consistency` by panel index; `picture_sha256` by character key, or None when
    the caller keys the pictures on their own (the build core: one `pictures` input naming
    each picture once, so a plan can say which one changed; kolorsc.build.graph)."""
    if not pc.on:
        return None

    def refs(uses: tuple[ReferenceUse, ...]) -> list[dict]:
        if picture_sha256 is None:
            return [r.as_dict() for r in uses]
        return [{**r.as_dict(), "sha256": picture_sha256[r.character]} for r in uses]

    out: dict = {}
    if pc.references:
        out["references"] = refs(pc.references)
    if pc.sharing is not None:
        identity = []
        for i in pc.sharing.identity:
            member = consistency[i]
            identity.append({
                "panel": i,
                "settings": panels[i].settings(),
                "references": refs(member.references),
                "rate": member.sharing.rate,
            })
        out["sharing"] = {**pc.sharing.as_dict(), "identity": identity}
    return out


def pictures_used(pc: PanelConsistency, consistency: dict[int, PanelConsistency]) -> list[str]:
    """Characters whose reference picture decides this panel's images: its own references and,
    when it shares attention, the identity panels' (their images are in its batch). Empty:
    the adapter is not involved (its files stay out of the key). In story order of first use."""
    keys = [r.character for r in pc.references]
    if pc.sharing is not None:
        keys += [r.character for i in pc.sharing.identity for r in consistency[i].references]
    return list(dict.fromkeys(keys))
