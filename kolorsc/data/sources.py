"""Where training images come from: a local folder (captions from sidecars, a constant or a
template) or a ModelScope dataset. Every image is opened and decoded here, so a corrupt file
is listed and skipped before Data-Juicer sees it, never a crash later.

A dataset folder is someone else's: a file in it may be a symlink to /etc/passwd or to an
image elsewhere on the machine. Files (images and caption sidecars) that resolve outside the
folder are refused and listed, never read. Images are held to the pixel budget
(kolorsc.images) from their header, before decoding.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from kolorsc.errors import InputError, TrainingError
from kolorsc.i18n import _
from kolorsc.images import check_file
from kolorsc.spec.model import DATASET_IMAGE_SUFFIXES as IMAGE_SUFFIXES
from kolorsc.spec.model import Dataset


@dataclass(frozen=True)
class Sample:
    index: int  # position among the source's images (sorted), before any filter
    path: Path  # the image file (a staged copy for ModelScope rows)
    name: str  # how the report names it: path relative to the folder, or "row 12"
    caption: str


def _entries(folder: Path) -> list[Path]:
    """Everything under the folder (symlinked folders are listed, not entered), sorted."""
    if not folder.is_dir():
        raise InputError(_("dataset folder not found: {folder}").format(folder=folder))
    return sorted(folder.rglob("*"), key=lambda p: p.relative_to(folder).as_posix())


def inside(path: Path, folder: Path) -> bool:
    """Does `path` resolve (symlinks followed) to a place inside `folder`?"""
    try:
        return path.resolve().is_relative_to(folder.resolve())
    except (OSError, RuntimeError):  # a symlink loop
        return False


def local_images(folder: Path) -> list[Path]:
    """Images of a folder and its subfolders, in a stable order (sorted relative paths);
    only files that stay inside the folder (the others: `outside_links`)."""
    folder = Path(folder)
    return [p for p in _entries(folder) if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file() and inside(p, folder)]


def outside_links(folder: Path) -> list[tuple[str, str]]:
    """(name, why) for every image, and every linked folder, that resolves outside the
    folder: refused, never read."""
    folder = Path(folder)
    return [
        (p.relative_to(folder).as_posix(), _outside_why(p))
        for p in _entries(folder)
        if (p.suffix.lower() in IMAGE_SUFFIXES or p.is_symlink()) and not inside(p, folder)
    ]


def _outside_why(path: Path) -> str:
    try:
        target = path.resolve()
    except (OSError, RuntimeError):
        return "refused: a symlink that cannot be resolved (a loop?)"
    return f"refused: links outside the dataset folder (to {target})"


def unreadable(path: Path) -> str | None:
    """Why the image cannot be used, or None when it decodes completely within the pixel
    budget (kolorsc.images: size checked from the header first)."""
    return check_file(path)


def caption_for(dataset: Dataset, path: Path | None, index: int, stem: str, row_text: str | None = None) -> str | None:
    """The caption of one image by the dataset's rule; None when a sidecar rule finds none."""
    if dataset.caption == "constant":
        return dataset.caption_text or ""
    sidecar = _sidecar(path, Path(dataset.path)) if path is not None else row_text
    if dataset.caption == "template":
        return render_caption(dataset.caption_text or "", stem=stem, index=index, sidecar=sidecar or "")
    if dataset.caption == "sidecar":
        if sidecar:
            return sidecar
        return dataset.caption_text  # the fallback caption, when the style gives one
    raise TrainingError(_("unknown caption rule '{caption}' (use sidecar, constant or template)").format(
                          caption=dataset.caption))


MAX_SIDECAR = 1 << 16  # bytes of a caption file; a caption is a line or two


def sidecar_path(image: Path, folder: Path) -> Path | None:
    """The image's caption file (x.jpg -> x.txt) when it exists inside the folder."""
    txt = image.with_suffix(".txt")
    return txt if txt.is_file() and inside(txt, folder) else None


def _sidecar(path: Path, folder: Path) -> str | None:
    txt = sidecar_path(path, folder)
    if txt is None:
        return None
    with open(txt, "rb") as f:
        raw = f.read(MAX_SIDECAR + 1)
    if len(raw) > MAX_SIDECAR:
        raise _SidecarProblem(f"{txt.name} is over {MAX_SIDECAR:,} bytes")
    try:
        return raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise _SidecarProblem(f"{txt.name} is not UTF-8 text") from None


class _SidecarProblem(ValueError):
    pass


def render_caption(template: str, *, stem: str, index: int, sidecar: str) -> str:
    """A caption template in kolorsc's one sandbox, with the same rules and budget as scene
    templates (kolorsc.spec.templates): sees stem, index, sidecar."""
    from kolorsc.spec.templates import render_caption as render

    text, problems = render(template, stem=stem, index=index, sidecar=sidecar)
    if text is None:
        why = "; ".join(p.message for p in problems)
        raise TrainingError(_("caption template of image {stem}: {problem} (it sees stem, index and sidecar)").format(
            stem=repr(stem), problem=why))
    return text


def local_samples(dataset: Dataset) -> tuple[list[Sample], list[tuple[str, str]]]:
    """(usable samples, [(name, why skipped)]) of a local folder."""
    folder = Path(dataset.path)
    samples, skipped = [], list(outside_links(folder))
    for index, path in enumerate(local_images(folder)):
        name = path.relative_to(folder).as_posix()
        why = unreadable(path)
        if why:
            skipped.append((name, why))
            continue
        txt = path.with_suffix(".txt")
        if dataset.caption != "constant" and txt.exists() and not inside(txt, folder):
            skipped.append((name, f"refused: its caption {txt.name} {_outside_why(txt)[len('refused: '):]}"))
            continue
        try:
            caption = caption_for(dataset, path, index, path.stem)
        except _SidecarProblem as exc:
            skipped.append((name, f"no caption: {exc}"))
            continue
        if caption is None:
            skipped.append((name, f"no caption: {txt.name} is missing or empty"))
            continue
        samples.append(Sample(index, path, name, caption))
    return samples, skipped


def modelscope_rows(dataset: Dataset):
    """Rows of a ModelScope dataset (downloads on first use). Offline: a clear TrainingError."""
    try:
        from modelscope.msdatasets import MsDataset
    except ImportError as exc:
        raise TrainingError(_("ModelScope datasets need the modelscope package: pip install 'kolorsc[models]'")) from exc
    try:
        return MsDataset.load(dataset.id, subset_name=dataset.subset or "default", split=dataset.split,
                              version=dataset.revision or "master")
    except Exception as exc:  # network, unknown id, hub errors: all mean "no data"
        raise TrainingError(
            _("cannot load ModelScope dataset '{id}' (split {split}): {name__}: {problem}. Offline? "
              "Download it once where the hub is reachable, or put the images in a folder and use "
              "`source: local`.").format(
              id=dataset.id, split=dataset.split, name__=type(exc).__name__, problem=str(exc)[:300])
        ) from exc


def rows_to_samples(dataset: Dataset, rows, staging: Path) -> tuple[list[Sample], list[tuple[str, str]]]:
    """Write each row's image (a PIL image or a path, in column `image`) into `staging`."""
    from kolorsc.images import open_checked, over_budget

    staging.mkdir(parents=True, exist_ok=True)
    samples, skipped = [], []
    for index, row in enumerate(rows):
        name = f"row {index}"
        image = row.get("image") if hasattr(row, "get") else None
        target = staging / f"{index:06d}.png"
        try:
            if isinstance(image, (str, Path)):
                im = open_checked(str(image))  # the pixel budget, from the header
                try:
                    im.convert("RGB").save(target)
                finally:
                    im.close()
            elif image is not None and hasattr(image, "convert"):
                why = over_budget(*image.size)
                if why:
                    skipped.append((name, why))
                    continue
                image.convert("RGB").save(target)
            else:
                skipped.append((name, "the row has no image"))
                continue
        except Exception as exc:  # noqa: BLE001 - any undecodable row is skipped and listed
            skipped.append((name, f"unreadable image ({type(exc).__name__}: {exc})"))
            continue
        text = row.get("text") if hasattr(row, "get") else None
        caption = caption_for(dataset, None, index, f"{index:06d}", row_text=text)
        if caption is None:
            skipped.append((name, "no caption: the row has no text and the style gives no caption"))
            continue
        samples.append(Sample(index, target, name, caption))
    return samples, skipped
