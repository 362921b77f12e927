"""Load story and style files into the typed model, collecting every diagnostic.

Order of work for one file: read (size cap, UTF-8) -> parse with positions (duplicate keys,
alias bombs) -> validate against the schema -> resolve the style and paths -> build the
dataclasses. Every stage adds to one list of diagnostics; the file fails with all of them.

Project root rule (`find_project_root`): the nearest folder, starting at the story's own
folder and walking up, that holds a `styles/` folder, a `.git` or a `kolorsc.toml`; if none
does, the story's folder. Paths written in a file are relative to that file's folder and
must stay inside the project root (after resolving symlinks).
"""

from __future__ import annotations

import dataclasses
import difflib
import os
from pathlib import Path

from kolorsc.errors import Diagnostic, SpecError
from kolorsc.i18n import _, language
from kolorsc.spec.consistency import Parsed, read_consistency
from kolorsc.spec.model import (
    BASE_MODEL,
    Character,
    DataFilter,
    Dataset,
    Defaults,
    Generate,
    Loc,
    Lora,
    Refine,
    Scene,
    Story,
    Style,
    Training,
)
from kolorsc.spec.validate import describe, validate
from kolorsc.spec.yamlhelp import lint, merge
from kolorsc.spec.yamlsource import Source, SourceError, format_path, quote, read_source

ROOT_MARKERS = ("styles", ".git", "kolorsc.toml")
STYLES_DIR = "styles"


def find_project_root(path: Path) -> Path:
    """The project root of a story or style file (see the module docstring for the rule)."""
    path = Path(path).absolute()
    start = path if path.is_dir() else path.parent
    for folder in (start, *start.parents):
        for marker in ROOT_MARKERS:
            candidate = folder / marker
            if (marker == STYLES_DIR and candidate.is_dir()) or (marker != STYLES_DIR and candidate.exists()):
                return folder.resolve()
    return start.resolve()


def display_name(path: Path) -> str:
    """How to name a file we found ourselves (a style): relative to the working folder if inside it."""
    path = Path(path).absolute()
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:  # outside the working folder: a path full of ../ helps nobody
        return str(path)


def load_story(path: Path, *, name: str | None = None) -> Story:
    """Load, validate and resolve a story file. Raises SpecError with every diagnostic found
    in the story and in the style file it names."""
    path = Path(path)
    name = name if name is not None else str(path)
    src = _read(path, name)
    root = find_project_root(path)
    diags = _suggest_style(merge(lint(src), validate(src, "story")), src, root)
    style = None
    if not _touches(diags, ("style",)):
        style, style_diags = _story_style(src, path, root)
        diags += style_diags
    consistency = None
    if not any(_touches(diags, (part,)) for part in ("characters", "consistency", "scenes", "defaults")):
        consistency, consistency_diags = read_consistency(src, path, root, _inside)
        diags += consistency_diags
    if diags:
        raise SpecError(diags)
    return _story(src, path.absolute(), root, style, consistency)


def load_style(path: Path, *, name: str | None = None, root: Path | None = None) -> Style:
    """Load and validate a style file (styles/<id>.yaml)."""
    path = Path(path)
    name = name if name is not None else str(path)
    src = _read(path, name)
    root = root or find_project_root(path)
    style, diags = _style_from_source(src, path, root)
    if diags:
        raise SpecError(diags)
    return style


# ---------------------------------------------------------------------------------------


def _read(path: Path, name: str) -> Source:
    try:
        src = read_source(path, name)
    except SourceError as exc:
        raise SpecError([exc.diagnostic]) from None
    if not isinstance(src.data, dict):
        raise SpecError([src.diag((), _("expected a mapping of fields at the top, got {value}").format(value=describe(src.data)))])
    return src


def _suggest_style(diags: list[Diagnostic], src: Source, root: Path) -> list[Diagnostic]:
    """`style: 水墨` is not a slug, but it is the display name of ink-wash: say so."""
    value = src.data.get("style")
    if not isinstance(value, str) or not any(d.path == "style" for d in diags):
        return diags
    from kolorsc.spec.suggest import style_hint, suggest_style

    meant = suggest_style(value, root / STYLES_DIR)
    if meant is None:
        return diags
    return [dataclasses.replace(d, hint=style_hint(*meant)) if d.path == "style" else d for d in diags]


def _touches(diags: list[Diagnostic], prefix: tuple) -> bool:
    dotted = ".".join(prefix)
    return any(d.path == dotted or d.path.startswith(dotted + ".") or d.path.startswith(dotted + "[") for d in diags)


def _story_style(src: Source, story_path: Path, root: Path) -> tuple[Style | None, list[Diagnostic]]:
    value = src.data.get("style")
    if isinstance(value, dict):  # inline style: positions are in the story file itself
        return _style_from_source(src.part(("style",)), story_path, root, inline_id=f"{src.data.get('id', 'story')}-style")
    if not isinstance(value, str):
        return None, []
    styles = root / STYLES_DIR
    style_path = styles / f"{value}.yaml"
    if not style_path.is_file() and (styles / f"{value}.yml").is_file():
        style_path = styles / f"{value}.yml"
    if not style_path.is_file():
        from kolorsc.spec.suggest import style_hint, suggest_style

        known = sorted(p.stem for p in styles.glob("*.y*ml")) if styles.is_dir() else []
        meant = suggest_style(value, styles)  # by display name too: `style: 水墨` -> ink-wash (水墨)
        if meant:
            hint = style_hint(*meant)
        elif known:
            hint = _("styles here: {names}").format(names=", ".join(known))
        else:
            hint = _("no styles/ folder in the project root {root}").format(root=root)
        return None, [src.diag(("style",), _("unknown style {name}: no {file}").format(
            name=quote(value), file=display_name(style_path)), hint)]
    if _inside(str(style_path), root / "x", root) is None:  # styles/x.yaml links out of the project
        return None, [src.diag(("style",), _("{file} leaves the project folder").format(file=display_name(style_path)),
                               _("keep style files inside the project root {root}").format(root=root))]
    try:
        return _cached_style(style_path, display_name(style_path), root), []
    except SpecError as exc:
        return None, [*exc.diagnostics, src.diag(("style",), _("style {name} is invalid (see above)").format(name=quote(value)))]


_STYLE_CACHE: dict = {}


def _cached_style(path: Path, name: str, root: Path) -> Style:
    """load_style, remembered while the file is unchanged: a collection of 200 stories
    shares a handful of styles. Styles are frozen dataclasses, safe to share."""
    st = path.stat()
    key = (str(path.resolve()), st.st_mtime_ns, st.st_size, name, str(root), language())  # messages are translated
    hit = _STYLE_CACHE.get(key)
    if isinstance(hit, SpecError):
        raise SpecError(hit.diagnostics)
    if hit is None:
        try:
            hit = load_style(path, name=name, root=root)
        except SpecError as exc:
            hit = exc
        if len(_STYLE_CACHE) > 64:
            _STYLE_CACHE.clear()
        _STYLE_CACHE[key] = hit
        if isinstance(hit, SpecError):
            raise SpecError(hit.diagnostics)
    return hit


def _style_from_source(src: Source, path: Path, root: Path, inline_id: str | None = None):
    """(Style, []) or (None, diagnostics). `inline_id` is set for a style written inside a
    story: the story schema validated it already, and it gets that id unless it has one."""
    if inline_id is None:
        diags = merge(lint(src), validate(src, "style"))
        if diags:
            return None, diags
    diags = []
    data = src.data
    diag = src.diag
    style_id = data.get("id")
    if inline_id is None:
        stem = path.stem
        if style_id is None:
            style_id = stem
        elif style_id != stem:
            diags.append(diag(("id",), _("style id {id} does not match the file name {file}").format(
                id=quote(style_id), file=path.name),
                _("rename the file to {id}.yaml or set id: {stem}").format(id=style_id, stem=stem)))
    else:
        style_id = style_id or inline_id
    lora = None
    if "lora" in data:
        lora, lora_diags = _lora(data["lora"], path, root, diag)
        diags += lora_diags
    if diags:
        return None, diags
    style = Style(
        id=style_id,
        name=data["name"],
        trigger=data["trigger"],
        negative=data.get("negative", ""),
        base_model=data.get("base_model", BASE_MODEL),
        lora=lora,
        source=None if inline_id is not None else path.absolute(),
        description=data.get("description", ""),
        locs={format_path(p): Loc(src.name, line, col) for p, (line, col) in src.positions.items() if p},
    )
    return style, []


def _inside(value: str, base_file: Path, root: Path) -> Path | None:
    """Resolve `value` relative to the file's folder; None when it leaves the project root."""
    target = (base_file.absolute().parent / Path(os.path.expanduser(value))).resolve()
    root = root.resolve()
    if target == root or root in target.parents:
        return target
    return None


def _lora(data: dict, path: Path, root: Path, diag) -> tuple[Lora | None, list[Diagnostic]]:
    diags = []
    lora_path = None
    if "path" in data:
        lora_path = _inside(data["path"], path, root)
        if lora_path is None:
            diags.append(diag(("lora", "path"), _("path {path} leaves the project folder").format(path=quote(data["path"])),
                              _("keep LoRA files inside the project root {root}").format(root=root)))
    training = dataset = None
    if "train" in data:
        t = dict(data["train"])
        if "target_modules" in t:
            t["target_modules"] = tuple(t["target_modules"])
        for key in ("alpha", "learning_rate"):  # YAML `4` is an int; the model says float
            if key in t:
                t[key] = float(t[key])
        training = Training(**t)
    if "dataset" in data:
        d = dict(data["dataset"])
        ds_path = None
        if "path" in d:
            ds_path = _inside(d["path"], path, root)
            if ds_path is None:
                diags.append(diag(("lora", "dataset", "path"), _("path {path} leaves the project folder").format(
                    path=quote(d["path"])), _("keep datasets inside the project root {root}").format(root=root)))
        if d.get("caption") == "template" and "caption_text" in d:
            from kolorsc.spec.templates import caption_template_problems

            for message, _line, hint in caption_template_problems(d["caption_text"]):
                diags.append(diag(("lora", "dataset", "caption_text"), message, hint))
        diags += _unsupported_ops(d.get("filters", ()), diag)
        filters = tuple(
            DataFilter(op=f["op"], args={k: v for k, v in f.items() if k != "op"}) for f in d.get("filters", ())
        )
        dataset = Dataset(
            source=d["source"],
            path=ds_path,
            id=d.get("id"),
            subset=d.get("subset"),
            split=d.get("split", "train"),
            revision=d.get("revision"),
            caption=d.get("caption", "sidecar"),
            caption_text=d.get("caption_text"),
            filters=filters,
            max_images=d.get("max_images"),
            generate=_generate(d) if d["source"] == "generate" else None,
        )
    if diags:
        return None, diags
    return Lora(scale=float(data.get("scale", 2.0)), path=lora_path, modelscope=data.get("modelscope"),
                file=data.get("file"), revision=data.get("revision"), training=training, dataset=dataset), []


def _unsupported_ops(filters, diag) -> list[Diagnostic]:
    """Operators kolorsc does not run would fail the build's dataset stage: refuse them here."""
    from kolorsc.spec.operators import SUPPORTED_OPS

    out = []
    for i, f in enumerate(filters):
        if f["op"] not in SUPPORTED_OPS:
            close = _closest_op(f["op"], SUPPORTED_OPS)
            hint = (_("did you mean {name}?").format(name=quote(close)) if close
                    else _("kolorsc runs {names}").format(names=", ".join(sorted(SUPPORTED_OPS))))
            out.append(diag(("lora", "dataset", "filters", i, "op"),
                            _("unsupported Data-Juicer operator {name}").format(name=quote(f["op"])), hint))
    return out


def _closest_op(op: str, known) -> str | None:
    """Operator names are words joined by _: the one sharing most words (then most letters)."""
    words = set(op.split("_"))

    def score(name: str) -> tuple[float, float]:
        theirs = set(name.split("_"))
        return len(words & theirs) / len(words | theirs), difflib.SequenceMatcher(None, op, name).ratio()

    best = max(known, key=score)
    return best if score(best)[0] >= 0.5 else None


def _generate(d: dict) -> Generate:
    g = dict(d.get("generate", {}))
    if "prompts" in g:
        g["prompts"] = tuple(g["prompts"])
    if "cfg" in g:
        g["cfg"] = float(g["cfg"])
    return Generate(**g)


def _size(value) -> tuple[int, int] | None:
    return None if value is None else (int(value[0]), int(value[1]))


def _story(src: Source, path: Path, root: Path, style: Style, consistency: Parsed) -> Story:
    data = src.data
    d = data.get("defaults", {})
    refine = None
    if "refine" in d:
        r = d["refine"]
        refine = Refine(scale=float(r.get("scale", 2.0)), strength=float(r.get("strength", 0.5)), steps=r.get("steps"))
    defaults = Defaults(
        negative=d.get("negative", ""),
        steps=d.get("steps", 50),
        cfg=float(d.get("cfg", 4.0)),
        size=_size(d.get("size")) or (1024, 1024),
        seed=d.get("seed", 0),
        candidates=d.get("candidates", 1),
        refine=refine,
    )
    characters = {}
    for key, value in data.get("characters", {}).items():
        if isinstance(value, str):
            characters[key] = Character(key=key, look=value)
        else:
            characters[key] = Character(key=key, look=value["look"], name=value.get("name"),
                                        reference=consistency.references.get(key))
    scenes = []
    for i, s in enumerate(data["scenes"]):
        line, col = src.pos(("scenes", i))
        pline, pcol = src.text_start(("scenes", i, "prompt"))
        neg_loc = None
        if "negative" in s:
            nline, ncol = src.text_start(("scenes", i, "negative"))
            neg_loc = Loc(src.name, nline, ncol)
        scenes.append(
            Scene(
                index=i,
                caption=s["caption"],
                prompt=s["prompt"],
                loc=Loc(src.name, line, col),
                prompt_loc=Loc(src.name, pline, pcol),
                shot=s.get("shot"),
                negative=s.get("negative"),
                seed=s.get("seed"),
                steps=s.get("steps"),
                cfg=None if s.get("cfg") is None else float(s["cfg"]),
                size=_size(s.get("size")),
                candidates=s.get("candidates"),
                negative_loc=neg_loc,
                consistency=consistency.scenes[i],
            )
        )
    return Story(
        id=data["id"],
        title=data["title"],
        team=data["team"],
        style=style,
        characters=characters,
        defaults=defaults,
        scenes=tuple(scenes),
        path=path,
        root=root,
        version=data["kolorsc"],
        description=data.get("description", ""),
        threshold=float(data.get("threshold", 6.0)),
        consistency=consistency.consistency,
        locs={format_path(p): Loc(src.name, line, col) for p, (line, col) in src.positions.items() if p},
    )
