"""Where training images come from: a local folder (captions from sidecars, a constant or a
template) or a ModelScope dataset. Every image is opened and decoded here, so a corrupt file
is listed and skipped before Data-Juicer sees it, never a crash later.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from kolorsc.errors import InputError, TrainingError
from kolorsc.i18n import _
from kolorsc.spec.model import DATASET_IMAGE_SUFFIXES as IMAGE_SUFFIXES
from kolorsc.spec.model import Dataset


@dataclass(frozen=True)
class Sample:
    index: int  # position among the source's images (sorted), before any filter
    path: Path  # the image file (a staged copy for ModelScope rows)
    name: str  # how the report names it: path relative to the folder, or "row 12"
    caption: str


def local_images(folder: Path) -> list[Path]:
    """Images of a folder and its subfolders, in a stable order (sorted relative paths)."""
    if not folder.is_dir():
        raise InputError(_("dataset folder not found: {folder}").format(folder=folder))
    return sorted(
        (p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()),
        key=lambda p: p.relative_to(folder).as_posix(),
    )


def unreadable(path: Path) -> str | None:
    """Why the image cannot be used, or None when it decodes completely."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.verify()  # structure and checksums
        with Image.open(path) as im:
            im.load()  # verify() does not decode the pixels: a truncated file fails here
            if im.width < 1 or im.height < 1:
                return "empty image"
    except Exception as exc:  # noqa: BLE001 - PIL raises many kinds for bad files
        return f"unreadable image ({type(exc).__name__}: {exc})"
    return None


def caption_for(dataset: Dataset, path: Path | None, index: int, stem: str, row_text: str | None = None) -> str | None:
    """The caption of one image by the dataset's rule; None when a sidecar rule finds none."""
    if dataset.caption == "constant":
        return dataset.caption_text or ""
    sidecar = _sidecar(path) if path is not None else row_text
    if dataset.caption == "template":
        return render_caption(dataset.caption_text or "", stem=stem, index=index, sidecar=sidecar or "")
    if dataset.caption == "sidecar":
        if sidecar:
            return sidecar
        return dataset.caption_text  # the fallback caption, when the style gives one
    raise TrainingError(_("unknown caption rule '{caption}' (use sidecar, constant or template)").format(
                          caption=dataset.caption))


def _sidecar(path: Path) -> str | None:
    txt = path.with_suffix(".txt")
    if txt.is_file():
        return txt.read_text(encoding="utf-8").strip()
    return None


def render_caption(template: str, **values) -> str:
    """A caption template in kolorsc's one sandbox (strict undefined): sees stem, index, sidecar."""
    from jinja2 import TemplateError

    from kolorsc.prompts import template_environment

    try:
        return template_environment().from_string(template).render(**values).strip()
    except TemplateError as exc:
        raise TrainingError(_("caption template {template}: {problem} (it sees stem, index and sidecar)").format(
                              template=repr(template), problem=exc)) from exc


def local_samples(dataset: Dataset) -> tuple[list[Sample], list[tuple[str, str]]]:
    """(usable samples, [(name, why skipped)]) of a local folder."""
    folder = Path(dataset.path)
    samples, skipped = [], []
    for index, path in enumerate(local_images(folder)):
        name = path.relative_to(folder).as_posix()
        why = unreadable(path)
        if why:
            skipped.append((name, why))
            continue
        caption = caption_for(dataset, path, index, path.stem)
        if caption is None:
            skipped.append((name, f"no caption: {path.with_suffix('.txt').name} is missing or empty"))
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
    from PIL import Image

    staging.mkdir(parents=True, exist_ok=True)
    samples, skipped = [], []
    for index, row in enumerate(rows):
        name = f"row {index}"
        image = row.get("image") if hasattr(row, "get") else None
        target = staging / f"{index:06d}.png"
        try:
            if isinstance(image, (str, Path)):
                with Image.open(image) as im:
                    im.convert("RGB").save(target)
            elif image is not None and hasattr(image, "convert"):
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
