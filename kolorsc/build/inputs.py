"""Everything outside the story that keys depend on, resolved before the graph is built.

    identities(story, engine, cache, models_dir, lock) -> graph.Identities

The engine's identity (its code, model files, precision), the code identity of every stage,
the fonts, the scorers' weights, the style's LoRA: the sha256 of a reused `lora.path`
file, or what a training dataset depends on (its files' hashes; for ModelScope the hub's
listing of the revision); and for a story with character consistency on a real engine, the
sha256 of every reference picture a render uses and the engine's consistency identity —
which requires the IP-Adapter's files, so a story that needs them and lacks them fails here,
at planning, before anything renders ("missing, `kolorsc models pull ip-adapter`"). Read-only: file hashes come through the cache's memo, which only
the run saves; ModelScope is asked without downloading anything, and when it cannot be
asked (offline) the listing recorded in the lock file stands, with a warning.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from kolorsc import paths
from kolorsc.build import stages
from kolorsc.build.graph import DATASET, Identities, LoraSource
from kolorsc.build.lockfile import LockFile
from kolorsc.cache import Cache
from kolorsc.errors import InputError, UsageError
from kolorsc.i18n import _
from kolorsc.spec.model import Story


@dataclass
class Resolved:
    identities: Identities
    warnings: list[str] = field(default_factory=list)


def identities(story: Story, engine, cache: Cache, models_dir: Path | None = None,
               lock: LockFile | None = None, fetch: bool = False) -> Resolved:
    """The identities `make_graph` needs for `story` built with `engine`. `fetch`: a LoRA the
    style reuses from ModelScope is downloaded into the models directory when missing (a
    build does that; `plan` and `--dry-run` only look)."""
    models = paths.models_dir(models_dir)
    warnings: list[str] = []
    preview = bool(engine.preview)
    engine_identity = engine.identity()
    lora = None if preview else lora_source(story, cache, models, lock, warnings, engine_identity, fetch)
    pictures, consistency_engine = ({}, {}) if preview else consistency(story, engine, cache)
    ids = Identities(
        engine=engine_identity,
        preview=preview,
        code=stages.code_identities(),
        fonts=_fonts(),
        scorer=None if preview else _scorer(models),
        lora=lora,
        pictures=pictures,
        consistency=consistency_engine,
    )
    return Resolved(ids, warnings)


def consistency(story: Story, engine, cache: Cache) -> tuple[dict[str, str], dict[str, dict]]:
    """(sha256 of each reference picture file a render uses, by character; the engine's
    consistency identity for renders with pictures "references" and renders that only share
    attention "sharing") — only the parts the story needs, nothing for a story without
    consistency. The files are hashed through the cache's memo, like a reused LoRA."""
    from kolorsc.consistency import panel_consistency, pictures_used

    pcs = {pc.index: pc for pc in panel_consistency(story)}
    used = {i: pictures_used(pc, pcs) for i, pc in pcs.items() if pc.on}
    pictures = {}
    for c in dict.fromkeys(c for chars in used.values() for c in chars):
        ref = story.characters[c].reference
        if not ref.generate:
            pictures[c] = _picture_hash(story, c, ref.path, cache)
    engine_ids = {}
    if any(used.values()):
        engine_ids["references"] = engine.consistency_identity(references=True)  # the adapter's files, or fail now
    if any(not chars for chars in used.values()):
        engine_ids["sharing"] = engine.consistency_identity(references=False)
    return pictures, engine_ids


def _picture_hash(story: Story, character: str, path: Path, cache: Cache) -> str:
    try:
        return cache.hashes.sha256(Path(path))
    except OSError as exc:
        raise InputError(_("{story}: characters.{character}.reference: cannot read {path}: {problem}").format(
            story=story.path, character=character, path=path, problem=exc)) from None


def _fonts() -> dict:
    from kolorsc import fonts

    return fonts.identity()


def _scorer(models_dir: Path) -> dict:
    from kolorsc.scoring.loader import scorer_identity

    return scorer_identity(models_dir)


def lora_source(story: Story, cache: Cache, models_dir: Path, lock: LockFile | None, warnings: list[str],
                engine_identity: dict | None = None, fetch: bool = False) -> LoraSource | None:
    spec = story.style.lora
    if spec is None:
        return None
    where = story.style.source or story.path
    if spec.path is not None:
        return LoraSource("file", spec.scale, file_sha256=_file_hash(Path(spec.path), cache, f"{where}: lora.path"))
    if spec.modelscope:
        return LoraSource("file", spec.scale, file_sha256=_file_hash(_modelscope_file(spec, models_dir, fetch), cache,
                                                                   f"{where}: lora.modelscope"))
    if spec.training is not None and spec.dataset is not None:
        from kolorsc.data import dataset_facts, modelscope_listing

        listing = None
        if spec.dataset.source == "modelscope":
            listing = modelscope_listing(spec.dataset)
            if listing is None:
                listing = _recorded_listing(lock)
                warnings.append(
                    _("{where}: ModelScope dataset {id} could not be checked (offline?): ").format(
                        where=where, id=spec.dataset.id)
                    + (_("using the revision's listing recorded in the lock file") if listing else
                       _("its content is unknown, so a change upstream would not be noticed"))
                )
        try:
            facts = dataset_facts(spec.dataset, story.root, hashes=cache.hashes, models_dir=models_dir, listing=listing,
                                  style=story.style, engine_identity=engine_identity)
        except OSError as exc:
            raise UsageError(_("{where}: lora.dataset: cannot read {path}: {problem}").format(
                where=where, path=spec.dataset.path, problem=exc)) from None
        return LoraSource("train", spec.scale, dataset=facts)
    return None


def _modelscope_file(spec, models_dir: Path, fetch: bool) -> Path:
    """The local file of a `lora.modelscope` LoRA; downloaded first when `fetch`."""
    from kolorsc import models
    from kolorsc.errors import ModelMissingError

    if fetch:
        return models.modelscope_lora_path(spec, models_dir)
    folder = models.modelscope_lora_folder(spec, models_dir)
    chosen = models.choose_lora(folder, spec)
    if chosen is None:
        raise ModelMissingError(_("LoRA {repo} is not in {folder} yet: `kolorsc build` downloads it (planning only "
                                  "looks)").format(repo=spec.modelscope, folder=folder), missing=[str(folder)])
    return folder / chosen


def _file_hash(path: Path, cache: Cache, what: str) -> str:
    try:
        return cache.hashes.sha256(path)
    except FileNotFoundError:
        raise InputError(_("{what}: the LoRA file {path} does not exist (put it there, or train one with lora.train)"
                           ).format(what=what, path=path)) from None


def _recorded_listing(lock: LockFile | None) -> str | None:
    entry = lock.nodes.get(DATASET) if lock else None
    source = entry.inputs.get("source") if entry else None
    listing = source.get("listing") if isinstance(source, dict) else None
    return listing if isinstance(listing, str) and not listing.startswith("#") else None
