"""`kolorsc bundle verify`: check a submission bundle against the challenge's rules.

Rules (challenge write-up, 3.4/3.5): the LoRA file, its description, at least eight images
with their prompts so results can be reproduced, and a mean aesthetic score >= 6 (the
official scorer averages every file of the image folder, so images/ must hold exactly the
eight panels). Every problem found is reported, not just the first.

Bundles come from anyone, so the zip is read as hostile input, in bounded memory and never
with a traceback: the entry count is read from the end record before the central directory
is parsed; each member is checked (name, symlink, encryption, compression method, declared
size, compression ratio) before it is read, and a member that fails is a finding and is
not read at all; members are streamed in 1 MiB chunks (CRC), images are decoded one at a
time within the pixel budget (kolorsc.images), JSON members and the LoRA's header have
size caps. Memory bound without --rescore: the interpreter (~40 MB) plus the larger of one
decoded image (<= 4 B x 40 MP = 160 MB) and one JSON member's objects (a 4 MiB member:
< 100 MB); bench/RESULTS.md has the measurements. Only stored and deflate members are
read: zipfile hands out bzip2 and LZMA output unbounded per read (one 4 KiB bzip2 read
can expand to gigabytes), and no bundle tool needs them.
"""

from __future__ import annotations

import json
import re
import stat
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from kolorsc.emit.bundlename import name_problems
from kolorsc.emit.common import image_name
from kolorsc.emit.modelcard import PREVIEW_MARKER
from kolorsc.errors import UsageError, one_line
from kolorsc.images import MAX_PIXELS, ImageProblem, open_checked
from kolorsc.i18n import N_, _
from kolorsc.spec.model import SCENE_COUNT
from kolorsc.tensorfile import read_header

ERROR = "error"
WARNING = "warning"
_LEVELS = (N_("error"), N_("warning"))  # shown translated by Finding.format
EXPECTED_IMAGES = tuple(f"images/{image_name(i)}" for i in range(1, SCENE_COUNT + 1))
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
LORA_PAIRS = ((".lora_down.", ".lora_up."), (".lora_A.", ".lora_B."))

MAX_ENTRIES = 1_000  # a bundle has ~15; the central directory is parsed into memory
MAX_MEMBER = 4 << 30  # declared uncompressed bytes of one member (a rank-256 fp32 LoRA is ~1.4 GB)
MAX_TOTAL = 8 << 30  # of all members: reading is streamed, this bounds the time
MAX_RATIO = 100  # uncompressed / compressed, for members over RATIO_FLOOR (deflate's own limit is ~1032)
RATIO_FLOOR = 1 << 20
MAX_JSON = 4 << 20  # prompts.json / scores.json: a story's is a few KB, at most ~2 MB
MAX_LORA_HEADER = 4 << 20  # a full SDXL LoRA's safetensors header is ~300 KB
READABLE_METHODS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflate"}
_CHUNK = 1 << 20
_DRIVE = re.compile(r"^[A-Za-z]:")
# What zipfile and zlib raise on a hostile archive or member.
ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError, NotImplementedError,
              RuntimeError, zlib.error, KeyError, IndexError, OverflowError)


class AestheticScorer(Protocol):
    def score(self, images: list) -> list[float]: ...


@dataclass(frozen=True)
class Finding:
    level: str  # "error" or "warning"
    message: str

    def format(self) -> str:
        return f"{_(self.level)}: {one_line(self.message)}"  # a member name cannot break the line


@dataclass
class VerifyReport:
    path: Path
    findings: list[Finding] = field(default_factory=list)
    aesthetic_mean: float | None = None
    threshold: float = 6.0
    rescored: bool = False  # True when the mean was recomputed from the images

    @property
    def ok(self) -> bool:
        return not any(f.level == ERROR for f in self.findings)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.level == ERROR]

    def error(self, message: str) -> None:
        self.findings.append(Finding(ERROR, message))

    def warning(self, message: str) -> None:
        self.findings.append(Finding(WARNING, message))


def lora_tensor_problem(header: dict) -> str | None:
    """None when the tensors look like a LoRA (down/up or A/B pairs), else what is wrong."""
    names = [k for k in header if k != "__metadata__"]
    if not names:
        return _("holds no tensors")
    for down, up in LORA_PAIRS:
        downs = {n.replace(down, "|") for n in names if down in n}
        ups = {n.replace(up, "|") for n in names if up in n}
        if downs or ups:
            unpaired = sorted(downs ^ ups)
            if unpaired:
                return _("{n} {down}/{up} tensors without their pair, e.g. {example}").format(
                    n=len(unpaired), down=down.strip("."), up=up.strip("."), example=unpaired[0].replace("|", ".?."))
            return None
    return _("no lora_down/lora_up (or lora_A/lora_B) tensors among {n} tensors, e.g. {example}").format(
        n=len(names), example=repr(names[0]))


def _name_problem(info: zipfile.ZipInfo) -> str | None:
    """Why a member's name or kind is unsafe to have in a bundle, or None."""
    name = info.filename
    parts = re.split(r"[/\\]", name)
    if name.startswith(("/", "\\")) or ".." in parts:
        return _("a path that leaves the folder it is extracted into")
    if "\\" in name:
        return _("a backslash in the name (Windows extracts it as a folder separator)")
    if _DRIVE.match(name):
        return _("a drive letter in the name")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        return _("a control character in the name")
    if info.create_system == 3 and stat.S_ISLNK(info.external_attr >> 16):
        return _("a symbolic link")
    return None


def _member_problem(info: zipfile.ZipInfo) -> str | None:
    """Why a member must not be read, or None (checked before reading a byte of it)."""
    if info.flag_bits & 0x1:
        return _("is encrypted")
    if info.compress_type not in READABLE_METHODS:
        return _("uses compression method {method}; bundles use stored or deflate "
                 "(re-create the zip without bzip2/LZMA)").format(method=info.compress_type)
    if info.file_size > MAX_MEMBER:
        return _("declares {size} bytes, over the limit of {limit}").format(
            size=f"{info.file_size:,}", limit=f"{MAX_MEMBER:,}")
    if info.file_size > RATIO_FLOOR and info.file_size > MAX_RATIO * max(info.compress_size, 1):
        return _("expands {packed} bytes to {size} (more than {ratio}x): a zip bomb, not a bundle").format(
            packed=f"{info.compress_size:,}", size=f"{info.file_size:,}", ratio=MAX_RATIO)
    return None


def _entry_count(path: Path) -> int | None:
    """The number of entries the zip's end record declares, read before zipfile parses the
    central directory (which it keeps in memory). None when it cannot be told.

    Uses zipfile's own end-record reader (`_EndRecData`, private but unchanged since Python 2
    and zip64-aware) rather than a second, hand-written one."""
    reader = getattr(zipfile, "_EndRecData", None)
    index = getattr(zipfile, "_ECD_ENTRIES_TOTAL", None)
    if reader is None or index is None:
        return None
    try:
        with open(path, "rb") as f:
            record = reader(f)
    except ZIP_ERRORS:
        return None
    return None if not record else int(record[index])


def _readable_members(zf: zipfile.ZipFile, report: VerifyReport) -> set[str]:
    """Names of the members that are safe to read and whose data passes its CRC. Every
    other member is a finding."""
    ok: set[str] = set()
    seen: set[str] = set()
    total = 0
    for info in zf.infolist():
        name = info.filename
        if name in seen:
            report.error(_("{name} appears twice in the zip (which one is extracted depends on the tool)").format(
                name=repr(name)))
            ok.discard(name)
            continue
        seen.add(name)
        problem = _name_problem(info)
        if problem:
            report.error(_("unsafe entry {name}: {problem}").format(name=repr(name), problem=problem))
            continue
        problem = _member_problem(info)
        if problem:
            report.error(_("{name} {problem}").format(name=name, problem=problem))
            continue
        total += info.file_size
        if total > MAX_TOTAL:
            report.error(_("the members declare more than {limit} bytes in all: the rest was not read").format(
                limit=f"{MAX_TOTAL:,}"))
            break
        if info.is_dir():
            continue
        if _crc_ok(zf, info, report):
            ok.add(name)
    return ok


def _crc_ok(zf: zipfile.ZipFile, info: zipfile.ZipInfo, report: VerifyReport) -> bool:
    """Stream the member through its CRC check, 1 MiB at a time."""
    try:
        with zf.open(info) as stream:
            while stream.read(_CHUNK):
                pass
    except ZIP_ERRORS as exc:
        report.error(_("{name} is corrupt in the zip ({problem})").format(
            name=info.filename, problem=f"{type(exc).__name__}: {exc}"))
        return False
    return True


def _read_small(zf: zipfile.ZipFile, name: str, limit: int) -> bytes:
    info = zf.getinfo(name)
    if info.file_size > limit:
        raise ValueError(_("{size} bytes, over the limit of {limit} for this file").format(
            size=f"{info.file_size:,}", limit=f"{limit:,}"))
    with zf.open(info) as stream:
        return stream.read(limit + 1)[:limit]


def _image_info(zf: zipfile.ZipFile, name: str) -> dict:
    """Decode one image member within the pixel budget; keep only what later checks need
    (the PNG text chunks), so no two decoded images are ever held at once."""
    with zf.open(name) as stream:
        image = open_checked(stream, MAX_PIXELS)
        try:
            return {"text": dict(getattr(image, "text", {}) or {}), "size": image.size}
        finally:
            image.close()


def _check_images(zf: zipfile.ZipFile, names: list[str], readable: set[str], report: VerifyReport) -> dict[str, dict]:
    files = [n for n in names if n.startswith("images/") and not n.endswith("/")]
    if not files:
        nested = sorted({n.split("/images/")[0] for n in names if "/images/" in n})
        hint = _(" (found {folder}/images/: zip the folder's contents, not the folder)").format(folder=nested[0]) if nested else ""
        report.error(_("images/ is missing or empty: a submission has eight panel images in images/") + hint)
        return {}
    extras = [n for n in files if n not in EXPECTED_IMAGES]
    missing = [n for n in EXPECTED_IMAGES if n not in files]
    if len(files) != SCENE_COUNT:
        detail = []
        if extras:
            detail.append(_("extra: {names}").format(names=", ".join(extras)))
        if missing:
            detail.append(_("missing: {names}").format(names=", ".join(missing)))
        report.error(
            _("images/ holds {n} files, not exactly {count} (the official scorer averages every file in the folder)"
              ).format(n=len(files), count=SCENE_COUNT) + ("; " + "; ".join(detail) if detail else "")
        )
    elif extras:
        report.warning(_("images/ holds eight files but not named 01.png..08.png: {names}").format(names=", ".join(extras)))
    images = {}
    for name in files:
        if not name.lower().endswith(IMAGE_SUFFIXES):
            report.error(_("{name} is not an image file (images/ must hold only the panels)").format(name=name))
            continue
        if name not in readable:
            continue  # already a finding
        try:
            images[name] = _image_info(zf, name)
        except ImageProblem as exc:
            report.error(_("{name} cannot be read as an image: {problem}").format(name=name, problem=exc))
        except ZIP_ERRORS as exc:
            report.error(_("{name} cannot be read as an image: {problem}").format(
                name=name, problem=f"{type(exc).__name__}: {exc}"))
    return images


def _check_prompts(zf: zipfile.ZipFile, names: list[str], readable: set[str], images: dict,
                   report: VerifyReport) -> dict | None:
    if "prompts.json" not in names:
        report.error(_("prompts.json is missing: the challenge needs each image's prompt to reproduce it"))
        return None
    if "prompts.json" not in readable:
        return None
    try:
        data = json.loads(_read_small(zf, "prompts.json", MAX_JSON).decode("utf-8"))
        panels = {p["image"]: p for p in data["panels"] if isinstance(p, dict)}
    except (ValueError, KeyError, TypeError, RecursionError, *ZIP_ERRORS) as exc:
        report.error(_("prompts.json is not a kolorsc prompts file: {problem}").format(problem=f"{type(exc).__name__}: {exc}"))
        return None
    without = [n for n in sorted(images) if not str(panels.get(n, {}).get("prompt") or "").strip()]
    if without:
        report.error(_("no prompt in prompts.json for {names}").format(names=", ".join(without)))
    no_seed = [n for n in sorted(images) if n in panels and panels[n].get("seed") is None]
    if no_seed:
        report.warning(_("no seed in prompts.json for {names}").format(names=", ".join(no_seed)))
    return data


def _check_lora(zf: zipfile.ZipFile, names: list[str], readable: set[str], report: VerifyReport) -> None:
    loras = [n for n in names if n.lower().endswith(".safetensors")]
    if not loras:
        report.error(_("no LoRA .safetensors file in the bundle: the challenge requires the trained LoRA"))
        return
    for name in loras:
        if name not in readable:
            continue  # already a finding
        try:
            with zf.open(name) as stream:
                header = read_header(stream, zf.getinfo(name).file_size, MAX_LORA_HEADER)
        except ValueError as exc:
            report.error(_("{name} is not a loadable safetensors file: {problem}").format(name=name, problem=exc))
            continue
        except ZIP_ERRORS as exc:
            report.error(_("{name} cannot be read: {problem}").format(name=name, problem=f"{type(exc).__name__}: {exc}"))
            continue
        problem = lora_tensor_problem(header)
        if problem:
            report.error(_("{name} is not a LoRA: {problem}").format(name=name, problem=problem))


def _check_preview(names: list[str], prompts: dict | None, images: dict, report: VerifyReport) -> None:
    reasons = []
    if PREVIEW_MARKER in names:
        reasons.append(PREVIEW_MARKER)
    if isinstance(prompts, dict) and prompts.get("preview") is True:
        reasons.append(_("prompts.json says preview"))
    marked = [n for n, im in sorted(images.items()) if im["text"].get("kolorsc:preview") == "true"]
    if marked:
        reasons.append(_("{n} image(s) marked kolorsc:preview").format(n=len(marked)))
    if reasons:
        report.error(_("this is a PREVIEW bundle (drafts, not Kolors renders), not a valid submission: {reasons}").format(
            reasons="; ".join(reasons)))


def _rescore(zf: zipfile.ZipFile, names: list[str], scorer) -> list[float]:
    """Scores of the images, in name order, decoded in groups whose pixels together stay
    within the pixel budget: the scorer never holds more than that at once."""
    scores: list[float] = []
    batch, pixels = [], 0

    def flush():
        nonlocal batch, pixels
        if batch:
            images = []
            for n in batch:
                with zf.open(n) as stream:
                    im = open_checked(stream, MAX_PIXELS)
                images.append(im.convert("RGB"))
                im.close()
            scores.extend(float(s) for s in scorer.score(images))
        batch, pixels = [], 0

    for name, size in names:
        if batch and (pixels + size > MAX_PIXELS or len(batch) >= SCENE_COUNT):
            flush()
        batch.append(name)
        pixels += size
    flush()
    return scores


def _check_gate(zf: zipfile.ZipFile, names: list[str], readable: set[str], images: dict, scorer,
                report: VerifyReport) -> None:
    t = report.threshold
    if scorer is not None:
        if not images:
            report.error(_("cannot score: no readable images"))
            return
        ordered = [(n, images[n]["size"][0] * images[n]["size"][1]) for n in sorted(images)]
        scores = _rescore(zf, ordered, scorer)
        report.aesthetic_mean = sum(scores) / len(scores)
        report.rescored = True
        source = _("recomputed from {n} images").format(n=len(scores))
    else:
        if "scores.json" not in names:
            report.warning(_("the aesthetic gate could not be checked: no scores.json (run with --rescore)"))
            return
        if "scores.json" not in readable:
            return
        try:
            data = json.loads(_read_small(zf, "scores.json", MAX_JSON).decode("utf-8"))
            mean = data.get("aesthetic_mean") if isinstance(data, dict) else None
            mean = None if mean is None else float(mean)
        except (ValueError, TypeError, RecursionError, *ZIP_ERRORS) as exc:
            report.error(_("scores.json is not valid JSON: {problem}").format(problem=f"{type(exc).__name__}: {exc}"))
            return
        if mean is None:
            report.warning(_("the aesthetic gate could not be checked: scores.json has no aesthetic score (run with --rescore)"))
            return
        report.aesthetic_mean = mean
        source = _("from scores.json")
    if not report.aesthetic_mean >= t:  # a NaN mean fails too
        report.error(_("mean aesthetic score {mean} ({source}) is below the threshold {threshold}").format(
            mean=f"{report.aesthetic_mean:.3f}", source=source, threshold=t))


def verify_bundle(path: Path, *, threshold: float = 6.0, scorer: AestheticScorer | None = None) -> VerifyReport:
    """Check the bundle at `path`. Raises UsageError when it is missing or not a zip (exit 2);
    every rule broken, and every hostile or damaged member, is a finding in the report
    (report.ok is False on any error)."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(_("{path}: no such file").format(path=path))
    if not zipfile.is_zipfile(path):
        raise UsageError(_("{path}: not a zip file").format(path=path))
    report = VerifyReport(path=path, threshold=threshold)
    entries = _entry_count(path)
    if entries is not None and entries > MAX_ENTRIES:
        report.error(_("the zip declares {n} entries (a bundle has about 15; limit {limit}): not read").format(
            n=f"{entries:,}", limit=f"{MAX_ENTRIES:,}"))
        return report
    try:
        with zipfile.ZipFile(path) as zf:
            readable = _readable_members(zf, report)
            names = sorted({info.filename for info in zf.infolist()})
            images = _check_images(zf, names, readable, report)
            prompts = _check_prompts(zf, names, readable, images, report)
            report.findings += [Finding(level, message) for level, message in name_problems(path, prompts)]
            _check_lora(zf, names, readable, report)
            if "README.md" not in names:
                report.warning(_("README.md (the LoRA's model card) is missing: the challenge asks for a description"))
            _check_preview(names, prompts, images, report)
            _check_gate(zf, names, readable, images, scorer, report)
    except ZIP_ERRORS as exc:
        report.error(_("the zip cannot be read: {problem}").format(problem=f"{type(exc).__name__}: {exc}"))
    return report
