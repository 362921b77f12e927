"""The models directory: which model files kolorsc needs, where they live, and a clear error
when they are missing.

Layout: `<models_dir>/<ModelScope repo id>/...`, the layout modelscope's snapshot_download
writes. Every loader goes through `require()` so that a missing or half-downloaded model
fails with one message that names the files and the command that fetches them.

`pull` downloads with modelscope into a `.partial` folder and moves each file into place only
once the download has finished, so a half-downloaded file is never taken for a whole one.
`verify` checks that every file is complete and readable (safetensors headers parse and the
data length matches; .bin shards open as zip archives and load lazily; index files point at
shards that exist). `fingerprint` is the cheap identity of a model's files (sizes and headers,
not a full content hash) that goes into panel cache keys.
"""

from __future__ import annotations

import json
import os
import shutil
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from kolorsc.errors import ModelMissingError
from kolorsc.hashing import digest, file_fingerprint, sha256_file
from kolorsc.i18n import _
from kolorsc.tensorfile import read_file_header


@dataclass(frozen=True)
class ModelSpec:
    name: str  # short name on the command line: `kolorsc models pull <name>`
    repo: str  # ModelScope model id
    required: tuple[str, ...]  # files (relative to the model folder) that must be present
    purpose: str

    def folder(self, models_dir: Path) -> Path:
        return Path(models_dir) / self.repo


# Filled in by each area (engine, scoring) with the exact files its loader reads.
REGISTRY: dict[str, ModelSpec] = {}


def register(spec: ModelSpec) -> ModelSpec:
    REGISTRY[spec.name] = spec
    return spec


def missing_files(spec: ModelSpec, models_dir: Path) -> list[str]:
    folder = spec.folder(models_dir)
    return [rel for rel in spec.required if not (folder / rel).is_file()]


def require(name: str, models_dir: Path) -> Path:
    """Return the model's folder, or raise ModelMissingError naming what is missing and how to get it."""
    spec = REGISTRY[name]
    missing = missing_files(spec, models_dir)
    if missing:
        folder = spec.folder(models_dir)
        listed = ", ".join(missing[:5]) + (_(" and {n} more").format(n=len(missing) - 5) if len(missing) > 5 else "")
        raise ModelMissingError(
            _("model '{name}' ({purpose}) is missing from {folder}: {files}. Fetch it with `kolorsc models pull "
              "{name}` (or set --models-dir / KOLORSC_MODELS to a folder that has {repo}).").format(
                name=name, purpose=spec.purpose, folder=folder, files=listed, repo=spec.repo),
            missing=[str(folder / m) for m in missing],
        )
    return spec.folder(models_dir)


# --- the Kolors engine's models -------------------------------------------------------------

KOLORS_TEXT_ENCODER_SHARDS = tuple(f"text_encoder/pytorch_model-{i:05d}-of-00007.bin" for i in range(1, 8))

KOLORS = register(
    ModelSpec(
        name="kolors",
        repo="Kwai-Kolors/Kolors",
        required=(
            "text_encoder/config.json",
            "text_encoder/pytorch_model.bin.index.json",
            *KOLORS_TEXT_ENCODER_SHARDS,
            "unet/diffusion_pytorch_model.safetensors",
            "vae/diffusion_pytorch_model.safetensors",
        ),
        purpose="Kolors base model: ChatGLM3 text encoder, UNet, VAE",
    )
)

VAE_FP16_FIX = register(
    ModelSpec(
        name="vae-fp16-fix",
        repo="AI-ModelScope/sdxl-vae-fp16-fix",
        required=("diffusion_pytorch_model.safetensors",),
        purpose="SDXL VAE that stays finite in float16 (low-memory plan, half-precision training)",
    )
)


# Kwai's IP-Adapter-Plus for Kolors: the adapter (Plus resampler + to_k_ip/to_v_ip of every
# cross-attention layer, fp16, a torch zip) and OpenAI's CLIP ViT-L/14-336 as `image_encoder/`
# (a full CLIPModel config + weights; kolorsc reads its vision half). Both are what Kwai's
# sample_ipadapter_plus.py and diffusers' load_ip_adapter read.
IP_ADAPTER = register(
    ModelSpec(
        name="ip-adapter",
        repo="Kwai-Kolors/Kolors-IP-Adapter-Plus",
        required=(
            "ip_adapter_plus_general.bin",
            "image_encoder/config.json",
            "image_encoder/pytorch_model.bin",
        ),
        purpose="character reference pictures: Kolors-IP-Adapter-Plus and its CLIP ViT-L/14-336 image encoder",
    )
)


def _spec(name: str) -> ModelSpec:
    if name not in REGISTRY:
        from kolorsc.errors import UsageError

        raise UsageError(_("unknown model '{name}' (known: {names})").format(name=name, names=", ".join(sorted(REGISTRY))))
    return REGISTRY[name]


# --- list ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelStatus:
    name: str
    repo: str
    folder: Path
    purpose: str
    missing: tuple[str, ...]
    size_bytes: int  # of the required files that are present

    @property
    def present(self) -> bool:
        return not self.missing


def list_models(models_dir: Path) -> list[ModelStatus]:
    """Every registered model and whether its files are present (no content check: see verify)."""
    out = []
    for name in sorted(REGISTRY):
        spec = REGISTRY[name]
        folder = spec.folder(models_dir)
        size = sum((folder / rel).stat().st_size for rel in spec.required if (folder / rel).is_file())
        out.append(ModelStatus(name, spec.repo, folder, spec.purpose, tuple(missing_files(spec, models_dir)), size))
    return out


# --- pull ---------------------------------------------------------------------------------

PullProgress = Callable[[int, int, str], None]


def _partial_dir(models_dir: Path, spec: ModelSpec) -> Path:
    return Path(models_dir) / ".partial" / spec.repo


def _default_download(repo: str, files: list[str], dest: Path) -> None:
    """modelscope's snapshot_download, restricted to exactly the files kolorsc reads."""
    from modelscope.hub.snapshot_download import snapshot_download

    snapshot_download(repo, local_dir=str(dest), allow_patterns=files)


def pull(
    names: Iterable[str],
    models_dir: Path,
    progress: PullProgress | None = None,
    download: Callable[[str, list[str], Path], None] | None = None,
) -> list[Path]:
    """Download the named models' missing files into `models_dir`. Returns their folders.

    Files land in `<models_dir>/.partial/<repo>/` first and are moved into place one by one
    (os.replace, same file system) only after the download call returned and the file
    verified, so an interrupted pull leaves nothing a loader would trust. Offline or on any
    download failure: ModelMissingError naming the model and the files still missing.
    `download(repo, files, dest)` is an injection point for tests; it defaults to modelscope.
    """
    download = download or _default_download
    specs = [_spec(n) for n in names]
    folders = []
    for i, spec in enumerate(specs):
        if progress:
            progress(i, len(specs), f"pull {spec.name}")
        missing = missing_files(spec, models_dir)
        if missing:
            _pull_one(spec, Path(models_dir), missing, download)
        folders.append(spec.folder(models_dir))
    if progress:
        progress(len(specs), len(specs), "pull done")
    return folders


def _pull_one(spec: ModelSpec, models_dir: Path, missing: list[str], download) -> None:
    staging = _partial_dir(models_dir, spec)
    staging.mkdir(parents=True, exist_ok=True)
    try:
        download(spec.repo, list(missing), staging)
    except Exception as exc:  # network errors come in many types (requests, modelscope, OS)
        shutil.rmtree(staging, ignore_errors=True)  # nothing half-fetched stays behind
        raise ModelMissingError(
            _("could not download '{name}' ({repo}) from ModelScope: {problem}. Still missing in {folder}: {files}. "
              "Check the network (modelscope.cn must be reachable), or copy the files there by hand and run "
              "`kolorsc models verify {name}`.").format(name=spec.name, repo=spec.repo, problem=exc,
                                                        folder=spec.folder(models_dir), files=", ".join(missing)),
            missing=[str(spec.folder(models_dir) / m) for m in missing],
        ) from exc
    not_fetched = [rel for rel in missing if not (staging / rel).is_file()]
    broken = [f"{c.file}: {c.problem}" for c in _check_files(staging, missing) if not c.ok and c.file not in not_fetched]
    if not_fetched or broken:
        raise ModelMissingError(
            _("download of '{name}' ({repo}) is incomplete: {problems}. Run `kolorsc models pull {name}` again.").format(
                name=spec.name, repo=spec.repo,
                problems="; ".join([_("{file}: not downloaded").format(file=f) for f in not_fetched] + broken)),
            missing=[str(spec.folder(models_dir) / m) for m in not_fetched],
        )
    for rel in missing:
        target = spec.folder(models_dir) / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staging / rel, target)
    shutil.rmtree(staging, ignore_errors=True)


# --- verify -------------------------------------------------------------------------------


@dataclass(frozen=True)
class FileCheck:
    file: str  # relative to the model folder
    ok: bool
    problem: str = ""


@dataclass
class VerifyReport:
    models: dict[str, list[FileCheck]] = field(default_factory=dict)
    folders: dict[str, Path] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(c.ok for checks in self.models.values() for c in checks)

    def problems(self) -> list[str]:
        return [
            f"{self.folders[name] / c.file}: {c.problem}"
            for name, checks in self.models.items()
            for c in checks
            if not c.ok
        ]


def verify(names: Iterable[str], models_dir: Path) -> VerifyReport:
    """Check layout and every file's integrity for the named models (all registered if empty)."""
    names = list(names) or sorted(REGISTRY)
    report = VerifyReport()
    for name in names:
        spec = _spec(name)
        folder = spec.folder(models_dir)
        report.folders[name] = folder
        report.models[name] = _check_files(folder, spec.required)
    return report


def _check_files(folder: Path, files: Iterable[str]) -> list[FileCheck]:
    checks = []
    for rel in files:
        path = folder / rel
        if not path.is_file():
            checks.append(FileCheck(rel, False, _("missing")))
            continue
        problem = check_file(path)
        checks.append(FileCheck(rel, problem is None, problem or ""))
    return checks


def check_file(path: Path) -> str | None:
    """None if the file is complete and readable, else what is wrong with it (for people)."""
    name = path.name
    try:
        if name.endswith(".safetensors"):
            return _check_safetensors(path)
        if name.endswith((".bin", ".pt", ".ckpt")):
            return _check_torch_zip(path)
        if name.endswith(".index.json"):
            return _check_index(path)
        if name.endswith(".json"):
            json.loads(path.read_text(encoding="utf-8"))
            return None
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        return _("unreadable ({problem})").format(problem=exc)
    return None


def _check_safetensors(path: Path) -> str | None:
    try:
        read_file_header(path)
    except ValueError as exc:
        return _("truncated or not safetensors: {problem}").format(problem=exc)
    return None


def _check_torch_zip(path: Path) -> str | None:
    """A torch checkpoint is a zip archive: a truncated one has no central directory. When torch
    is importable, also load it lazily (mmap, weights only) to prove the records are readable."""
    if not zipfile.is_zipfile(path):
        return _("truncated or not a torch checkpoint (no zip directory at the end)")
    try:
        import torch
    except ImportError:
        return None
    try:
        torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:  # noqa: BLE001 - torch raises RuntimeError/UnpicklingError/... for damaged archives
        return _("cannot be loaded: {problem}").format(problem=exc)
    return None


def _check_index(path: Path) -> str | None:
    index = json.loads(path.read_text(encoding="utf-8"))
    shards = sorted(set(index.get("weight_map", {}).values()))
    if not shards:
        return _("index has no weight_map")
    absent = [s for s in shards if not (path.parent / s).is_file()]
    if absent:
        return _("index refers to missing shards: {files}").format(files=", ".join(absent))
    return None


# --- fingerprint --------------------------------------------------------------------------


def fingerprint(name: str, models_dir: Path) -> str:
    """A cheap identity of a model's files: each file's relative path and
    kolorsc.hashing.file_fingerprint (size and sampled blocks: different weights of the same
    shapes still differ), configs hashed whole. Milliseconds, not a full hash of 20 GB."""
    spec = _spec(name)
    folder = spec.folder(models_dir)
    parts = {}
    for rel in sorted(spec.required):
        path = folder / rel
        parts[rel] = sha256_file(path) if rel.endswith(".json") else file_fingerprint(path)
    return digest(parts)[:16]


# --- LoRAs published on ModelScope (a style's `lora.modelscope`) ---------------------------
#
# `<models_dir>/<owner>/<repo>/<file>` (`<repo>@<revision>` when the style pins a revision),
# the layout of every other model here. Downloaded like `pull` does: into `.partial/` first,
# checked to be a complete safetensors file, then moved into place. The build keys the LoRA
# by the file's sha256, as it does a `lora.path` file, so which bytes were used is in the lock.

LoraDownload = Callable[[str, list[str], Path, "str | None"], None]


def modelscope_lora_folder(spec, models_dir: Path) -> Path:
    """Where the LoRA of `spec` (a spec.model.Lora with `modelscope`) lives in the models directory."""
    name = spec.modelscope + (f"@{spec.revision}" if spec.revision else "")
    return Path(models_dir) / name


def _download_lora(repo: str, patterns: list[str], dest: Path, revision: str | None) -> None:
    from modelscope.hub.snapshot_download import snapshot_download

    kwargs = {"revision": revision} if revision else {}
    snapshot_download(repo, local_dir=str(dest), allow_patterns=patterns, **kwargs)


def _safetensors_in(folder: Path) -> list[str]:
    if not folder.is_dir():
        return []
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.safetensors") if p.is_file())


def choose_lora(folder: Path, spec) -> str | None:
    """The repository file to use: `spec.file`, else the only .safetensors (None: not here)."""
    if spec.file:
        return spec.file if (folder / spec.file).is_file() else None
    found = _safetensors_in(folder)
    if len(found) > 1:
        from kolorsc.errors import UsageError

        raise UsageError(_("ModelScope repository {repo} holds {n} LoRA files ({files}): choose one with lora.file").format(
            repo=spec.modelscope, n=len(found), files=", ".join(found[:5])))
    return found[0] if found else None


def modelscope_lora_path(spec, models_dir: Path, download: LoraDownload | None = None) -> Path:
    """The local file of a style's `lora.modelscope` LoRA, downloaded on first use.

    Offline or on a failed download: ModelMissingError naming the file, the folder and the
    command that fetches it by hand; nothing half-downloaded is left where a build looks.
    `download(repo, patterns, dest, revision)` is an injection point for tests."""
    folder = modelscope_lora_folder(spec, models_dir)
    chosen = choose_lora(folder, spec)
    if chosen is None:
        _pull_lora(spec, Path(models_dir), folder, download or _download_lora)
        chosen = choose_lora(folder, spec)
    path = folder / chosen
    problem = check_file(path)
    if problem:
        raise ModelMissingError(
            _("LoRA {repo}: {path} is damaged ({problem}). Delete it; the next build downloads it again.").format(
                repo=spec.modelscope, path=path, problem=problem),
            missing=[str(path)])
    return path


def _pull_lora(spec, models_dir: Path, folder: Path, download: LoraDownload) -> None:
    staging = models_dir / ".partial" / folder.relative_to(models_dir)
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    patterns = [spec.file] if spec.file else ["*.safetensors"]
    wanted = spec.file or "*.safetensors"
    by_hand = (f"`modelscope download --model {spec.modelscope} {wanted} --local_dir {folder}`"
               + (f" --revision {spec.revision}" if spec.revision else ""))
    try:
        try:
            download(spec.modelscope, patterns, staging, spec.revision)
        except Exception as exc:  # network errors come in many types (requests, modelscope, OS)
            raise ModelMissingError(
                _("LoRA {repo} ({file}) is not in {folder} and could not be downloaded from ModelScope: {problem}. "
                  "Check the network (modelscope.cn must be reachable), or fetch it where it is: {by_hand}.").format(
                    repo=spec.modelscope, file=wanted, folder=folder, problem=f"{type(exc).__name__}: {str(exc)[:300]}",
                    by_hand=by_hand),
                missing=[str(folder / wanted)]) from exc
        chosen = choose_lora(staging, spec)
        if chosen is None:
            raise ModelMissingError(
                _("ModelScope repository {repo} has no {file}{revision}: check lora.modelscope and lora.file.").format(
                    repo=spec.modelscope, file=wanted,
                    revision=_(" at revision {revision}").format(revision=spec.revision) if spec.revision else ""),
                missing=[str(folder / wanted)])
        problem = check_file(staging / chosen)
        if problem:
            raise ModelMissingError(_("download of LoRA {repo} {file} is incomplete: {problem}. Run the build again to "
                                      "download it again.").format(repo=spec.modelscope, file=chosen, problem=problem),
                                    missing=[str(folder / chosen)])
        (folder / chosen).parent.mkdir(parents=True, exist_ok=True)
        os.replace(staging / chosen, folder / chosen)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def lora_file(spec, models_dir: Path, download: LoraDownload | None = None) -> Path | None:
    """The LoRA file a style renders with when it reuses one: `lora.path`, or the ModelScope
    LoRA (downloaded when missing). None for a LoRA trained by the build (or no LoRA)."""
    if spec is None:
        return None
    if spec.path is not None:
        return Path(spec.path)
    if spec.modelscope:
        return modelscope_lora_path(spec, models_dir, download)
    return None
