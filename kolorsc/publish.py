"""`kolorsc publish STORY`: the story's LoRA as a ModelScope model repository, what the
challenge asks for after the build (a model named `{team}-可图Kolors训练-{id}` with the LoRA,
its description, and the eight images with their prompts).

    prepare(story_path, ...) -> Publication    writes the exact folder that is pushed, and
                                               <folder>.json (repository id, name, visibility,
                                               licence, every file's sha256) beside it
    publish(story_path, ..., dry_run) -> Publication   prepare, then upload with modelscope's
                                               HubApi (create_model when the repository is
                                               new, then upload_folder)

What is published is what the lock file records: the bundle whose sha256 is the lock file's
`bundle` output, read from build/<id>/ or the cache; a preview build or a bundle that breaks
the challenge's rules (kolorsc bundle verify) is not published. The folder:

    README.md                 model card: ModelScope metadata (base model, task, tags), the
                              base model, trigger, rank/alpha, dataset, the sample panels and
                              the bundle's name, then the bundle's own card
    <style>.safetensors       the LoRA (kohya keys: ComfyUI, diffusers, DiffSynth)
    images/01.png … 08.png    the sample panels
    prompts.json, prompts.md, scores.json, workflow_comfyui.json   from the bundle
    configuration.json        {"framework", "task"}: what every ModelScope model repository has

Login: MODELSCOPE_API_TOKEN, or the login `modelscope login` saved; without either, a
UsageError says how to get a token (exit 2). modelscope is imported only to upload.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import struct
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from kolorsc.build import lockfile
from kolorsc.atomic import atomic_write_text, replace_dir
from kolorsc.errors import BuildError, UsageError
from kolorsc.i18n import _
from kolorsc.spec.model import Story

TOKEN_ENV = "MODELSCOPE_API_TOKEN"
TOKEN_PAGE = "https://modelscope.cn/my/myaccesstoken"
LICENSE = "Apache License 2.0"
_REPO_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
_FROM_BUNDLE = ("prompts.json", "prompts.md", "scores.json", "workflow_comfyui.json")


@dataclass
class Publication:
    story: str
    repo_id: str  # owner/name on ModelScope
    chinese_name: str  # the bundle's name: {team}-可图Kolors训练-{id}
    folder: Path  # exactly what is uploaded
    metadata_path: Path  # <folder>.json: what create_model and upload_folder are given
    files: dict[str, str] = field(default_factory=dict)  # name in the repository -> sha256
    private: bool = False
    url: str | None = None  # set once uploaded
    warnings: list[str] = field(default_factory=list)


# -- what to publish -----------------------------------------------------------------------


def _slug(text: str) -> str:
    return re.sub(r"-{2,}", "-", re.sub(r"[^A-Za-z0-9_.-]+", "-", text)).strip("-.")


def repo_id(story: Story, owner: str | None, name: str | None) -> str:
    """owner/name of the model repository. The name defaults to `<team>-Kolors-<id>` in the
    characters ModelScope allows (the Chinese bundle name is the repository's display name)."""
    if not owner:
        raise UsageError(_("who owns the model on ModelScope? Pass --owner NAME (your user or organisation name), "
                           "or set owner in the [publish] section of kolorsc.toml"))
    team = _slug(story.team)
    name = name or (f"{team}-Kolors-{story.id}" if team else f"Kolors-{story.id}")
    for part, what in ((owner, "owner"), (name, "repository name")):
        if not _REPO_PART.match(part):
            raise UsageError(_("{what} {part}: ModelScope allows letters, digits, '-', '_' and '.' (up to 100)").format(
                               what=what, part=repr(part)))
    return f"{owner}/{name}"


def _recorded_bundle(story: Story, build_dir: Path, cache_dir: Path | None) -> tuple[bytes, str]:
    """The bundle bytes the lock file records (from build/<id>/ or the cache) and their sha256."""
    lock_file = lockfile.lock_path(story.path)
    lock = lockfile.read(lock_file).lock
    entry = lock.nodes.get("bundle") if lock else None
    if entry is None or not entry.output:
        raise UsageError(_("{name}: no build recorded in {name2}: build it first (kolorsc build {name3} --engine "
                           "kolors)").format(
                           name=story.path.name, name2=lock_file.name, name3=story.path.name))
    if lock.engine == "preview":
        raise UsageError(_("{id}: the last build used the preview engine (drafts, not Kolors renders): build with "
                           "--engine kolors before publishing").format(
                           id=story.id))
    local = build_dir / story.id / f"{story.bundle_name}.zip"
    if local.is_file():
        data = local.read_bytes()
        if hashlib.sha256(data).hexdigest() == entry.output:
            return data, entry.output
    from kolorsc.cache import Cache

    data = Cache(cache_dir).read_bytes(entry.key)
    if data is not None and hashlib.sha256(data).hexdigest() == entry.output:
        return data, entry.output
    raise UsageError(_("{id}: the bundle {name} records is neither in {parent} nor in the cache: run `kolorsc "
                       "build {name2} --engine kolors` (or `kolorsc cache pull` it)").format(
                       id=story.id, name=lock_file.name, parent=local.parent, name2=story.path.name))


def _check_bundle(data: bytes, story: Story, force: bool) -> list[str]:
    """The challenge's rules (kolorsc bundle verify); errors stop the publication unless `force`
    (a preview bundle never passes). Returns the warnings."""
    from kolorsc.emit.verify import verify_bundle

    with tempfile.TemporaryDirectory(prefix="kolorsc-publish-") as tmp:
        path = Path(tmp) / f"{story.bundle_name}.zip"
        path.write_bytes(data)
        report = verify_bundle(path, threshold=story.threshold)
    errors = [f.message for f in report.errors]
    preview = [e for e in errors if "PREVIEW" in e]
    if preview or (errors and not force):
        raise BuildError(f"{story.bundle_name}.zip breaks the challenge's rules, not published: " + "; ".join(errors)
                         + ("" if preview else " (--force publishes anyway)"))
    return [f.message for f in report.findings if f not in report.errors] + errors


# -- the model card ------------------------------------------------------------------------


def lora_facts(data: bytes) -> dict:
    """rank and alpha of a LoRA safetensors file, from kohya's metadata or else its tensors
    (the first lora_down/lora_A shape, the first scalar `alpha`); None when not found."""
    try:
        (n,) = struct.unpack("<Q", data[:8])
        header = json.loads(data[8 : 8 + n])
        meta = header.pop("__metadata__", {}) or {}
    except (struct.error, ValueError, AttributeError):
        return {"rank": None, "alpha": None}
    rank = int(meta["ss_network_dim"]) if str(meta.get("ss_network_dim", "")).isdigit() else None
    try:
        alpha = float(meta["ss_network_alpha"]) if "ss_network_alpha" in meta else None
    except ValueError:
        alpha = None
    for name, info in sorted(header.items()):
        if rank is None and (".lora_down." in name or ".lora_A." in name) and info.get("shape"):
            rank = int(info["shape"][0])
        if alpha is None and name.endswith(".alpha") and info.get("dtype") == "F32" and info.get("shape") in ([], [1]):
            start, _ = info["data_offsets"]
            (alpha,) = struct.unpack("<f", data[8 + n + start : 8 + n + start + 4])
    return {"rank": rank, "alpha": alpha}


def dataset_line(story: Story) -> str:
    lora = story.style.lora
    if lora is None:
        return "none (no LoRA)"
    if lora.training is None or lora.dataset is None:
        where = f"[{lora.modelscope}](https://modelscope.cn/models/{lora.modelscope})" if lora.modelscope else "a file"
        return f"not trained by this build: the style reuses {where}"
    ds = lora.dataset
    filters = f"; Data-Juicer filters: {', '.join(f.op for f in ds.filters)}" if ds.filters else ""
    if ds.source == "modelscope":
        return f"ModelScope dataset [{ds.id}](https://modelscope.cn/datasets/{ds.id}) (split {ds.split}){filters}"
    if ds.source == "generate":
        from kolorsc.data.generate import DEFAULT_SUBJECTS, settings

        gen = settings(story.style)
        subjects = len(gen.prompts or DEFAULT_SUBJECTS)
        return (f"{gen.count} images rendered by {story.style.base_model} from the trigger over {subjects} subjects "
                f"(`dataset.source: generate`: a prompt style distilled into a LoRA){filters}")
    return f"a folder of {ds.caption}-captioned images (`{Path(ds.path).name}/`){filters}"


def model_card(story: Story, bundle_readme: str, lora_name: str, facts: dict, prompts: dict, bundle_sha: str) -> str:
    style = story.style
    record = prompts.get("lora") or {}
    rank = record.get("rank") or facts.get("rank")
    alpha = record.get("alpha") or facts.get("alpha")
    front = {
        "frameworks": ["Pytorch"],
        "license": LICENSE,
        "tasks": ["text-to-image-synthesis"],
        "base_model": [style.base_model],
        "base_model_relation": "adapter",
        "tags": ["LoRA", "Kolors", "kolorsc", "可图Kolors训练", style.name],
    }
    ds = style.lora.dataset if style.lora else None
    if ds is not None and ds.source == "modelscope" and style.lora.training is not None:
        front["datasets"] = [ds.id]
    import yaml

    lines = ["---", yaml.safe_dump(front, allow_unicode=True, sort_keys=False).rstrip(), "---", "",
             f"# {story.bundle_name}", "",
             (f"The {style.name} style LoRA for {style.base_model}, from the story **{story.title}** by team "
             f"**{story.team}** (built and published by kolorsc)."), "",
             "| | |", "|---|---|",
             f"| Base model | [{style.base_model}](https://modelscope.cn/models/{style.base_model}) |",
             f"| Trigger | {style.trigger} |",
             (f"| LoRA | `{lora_name}`, rank {rank if rank is not None else 'unknown'}, alpha "
             f"{alpha if alpha is not None else 'unknown'}; render scale {record.get('scale', 'unknown')} "
             f"(ComfyUI strength {record.get('comfyui_strength', 'unknown')}) |"),
             f"| Dataset | {dataset_line(story)} |",
             f"| Bundle | `{story.bundle_name}.zip` (sha256 `{bundle_sha[:16]}…`) |", "",
             "## Sample panels", "",
             "| | | | |", "|---|---|---|---|"]
    panels = prompts.get("panels", [])
    cells = [f"![{p['index']:02d}](images/{p['index']:02d}.png)<br>{p.get('caption', '')}" for p in panels]
    for i in range(0, len(cells), 4):
        lines.append("| " + " | ".join(cells[i : i + 4]) + " |")
    body = bundle_readme.split("\n", 1)[1] if bundle_readme.startswith("# ") else bundle_readme
    body = body.replace("`lora/", "`")  # the LoRA sits at the repository's root, not in lora/
    lines += ["", "Prompts, seeds and settings of every panel: `prompts.json` / `prompts.md`.", "", "---", "", body.strip(), ""]
    return "\n".join(lines)


# -- prepare and publish -------------------------------------------------------------------


def prepare(
    story_path: Path,
    *,
    owner: str | None = None,
    name: str | None = None,
    out: Path | None = None,
    build_dir: Path | None = None,
    cache_dir: Path | None = None,
    private: bool | None = None,
    force: bool = False,
) -> Publication:
    """Write the folder that is published (default build/<id>/modelscope/) and <folder>.json beside it."""
    from kolorsc.config import read_config
    from kolorsc.spec import load_story

    story = load_story(Path(story_path))
    config = read_config(story.root).publish
    rid = repo_id(story, owner or config.owner, name)
    build_dir = Path(build_dir) if build_dir else story.root / "build"
    data, bundle_sha = _recorded_bundle(story, build_dir, cache_dir)
    warnings = _check_bundle(data, story, force)
    folder = Path(out) if out else build_dir / story.id / "modelscope"
    files = _write_folder(story, data, bundle_sha, folder)
    pub = Publication(story.id, rid, story.bundle_name, folder, folder.with_name(folder.name + ".json"), files,
                      config.private if private is None else private, warnings=warnings)
    meta = {
        "repo_id": pub.repo_id, "chinese_name": pub.chinese_name, "visibility": "private" if pub.private else "public",
        "license": LICENSE, "commit_message": f"kolorsc publish {story.id} (bundle {bundle_sha[:12]})",
        "bundle": {"name": f"{story.bundle_name}.zip", "sha256": bundle_sha}, "folder": str(folder), "files": files,
    }
    atomic_write_text(pub.metadata_path, json.dumps(meta, ensure_ascii=False, indent=2, sort_keys=True) + "\n")
    return pub


def _write_folder(story: Story, data: bytes, bundle_sha: str, folder: Path) -> dict[str, str]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        entries = {n: zf.read(n) for n in zf.namelist()}
    loras = [n for n in entries if n.startswith("lora/") and n.endswith(".safetensors")]
    if len(loras) != 1:
        raise BuildError(_("{bundle_name}.zip holds {n} LoRA files; a publication needs exactly one").format(
                           bundle_name=story.bundle_name, n=len(loras)))
    lora_name = loras[0].split("/", 1)[1]
    prompts = json.loads(entries["prompts.json"])
    out = {lora_name: entries[loras[0]]}
    out.update({n: b for n, b in entries.items() if n.startswith("images/")})
    out.update({n: entries[n] for n in _FROM_BUNDLE if n in entries})
    card = model_card(story, entries.get("README.md", b"").decode("utf-8"), lora_name, lora_facts(entries[loras[0]]),
                      prompts, bundle_sha)
    out["README.md"] = card.encode("utf-8")
    out["configuration.json"] = json.dumps({"framework": "pytorch", "task": "text-to-image-synthesis"}, indent=2).encode()
    folder.parent.mkdir(parents=True, exist_ok=True)
    staged = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        for rel, blob in out.items():
            (staged / rel).parent.mkdir(parents=True, exist_ok=True)
            (staged / rel).write_bytes(blob)
        replace_dir(staged, folder)
    finally:
        shutil.rmtree(staged, ignore_errors=True)
    return {rel: hashlib.sha256(blob).hexdigest() for rel, blob in sorted(out.items())}


def login_token() -> str | None:
    """The ModelScope token: MODELSCOPE_API_TOKEN, else "" when `modelscope login` saved a
    login (the SDK reads it itself), else None."""
    if os.environ.get(TOKEN_ENV):
        return os.environ[TOKEN_ENV]
    home = Path(os.environ.get("MODELSCOPE_HOME") or Path.home() / ".modelscope")
    return "" if (home / "credentials" / "cookies").is_file() else None


class ModelScopeHub:
    """The three HubApi calls publishing makes (modelscope imported here, not before)."""

    def __init__(self, token: str):
        from modelscope.hub.api import HubApi

        self.api = HubApi()
        if token:
            self.api.login(token)

    def exists(self, repo: str) -> bool:
        return bool(self.api.repo_exists(repo))

    def create(self, repo: str, private: bool, chinese_name: str) -> None:
        from modelscope.hub.constants import ModelVisibility

        visibility = ModelVisibility.PRIVATE if private else ModelVisibility.PUBLIC
        self.api.create_model(repo, visibility=visibility, license=LICENSE, chinese_name=chinese_name)

    def upload(self, repo: str, folder: Path, message: str) -> None:
        self.api.upload_folder(repo_id=repo, folder_path=str(folder), commit_message=message)


def publish(story_path: Path, *, dry_run: bool = False, hub=None, **options) -> Publication:
    """prepare(), then (unless `dry_run`) create the repository if needed and upload the folder.
    `hub` stands in for ModelScope in tests (exists/create/upload, as ModelScopeHub)."""
    token = None
    if not dry_run and hub is None:
        token = login_token()
        if token is None:
            raise UsageError(
                _("not logged in to ModelScope: create an access token at {token_page}, then set "
                  "{token_env}=<token> (or run `modelscope login`); `kolorsc publish --dry-run` writes the "
                  "folder without logging in").format(
                  token_page=TOKEN_PAGE, token_env=TOKEN_ENV))
    pub = prepare(story_path, **options)
    if dry_run:
        return pub
    meta = json.loads(pub.metadata_path.read_text(encoding="utf-8"))
    hub = hub or ModelScopeHub(token)
    try:
        if not hub.exists(pub.repo_id):
            hub.create(pub.repo_id, pub.private, pub.chinese_name)
        hub.upload(pub.repo_id, pub.folder, meta["commit_message"])
    except (UsageError, BuildError):
        raise
    except Exception as exc:  # network and hub errors come in many types
        raise BuildError(_("upload to ModelScope {repo_id} failed: {name__}: {problem} (the folder is ready in "
                           "{folder}; run again to retry)").format(
                           repo_id=pub.repo_id, name__=type(exc).__name__, problem=str(exc)[:300], folder=pub.folder)) from exc
    pub.url = f"https://modelscope.cn/models/{pub.repo_id}"
    return pub
