"""What a prepared dataset depends on: the facts that go into the dataset node's key.

    dataset_facts(dataset, root, hashes=..., models_dir=..., remote=...) -> dict
    dataset_fingerprint(...) -> str   (the digest of those facts; `kolorsc train` compares it)

Local folder: every image's and caption sidecar's content (sha256), by relative path.
The build plans with this on every `kolorsc build`, so a no-op rebuild must not re-read the
images: measured here, hashing 100 1024px JPEGs (41 MB) takes ~0.1 s (0.5 s for a typical
200 MB style set) against ~2 ms to stat them. Content hashes are therefore taken through the
build cache's memo (kolorsc.cache.FileHashes), which planning only reads.

ModelScope: the id, subset, split, the revision asked for, and what that revision holds on
the hub (`modelscope_listing`: a digest of the hub's file listing — paths and content
hashes), so an upstream change invalidates the prepared data and the LoRA trained from it.
Offline, the listing cannot be read: the caller passes the one recorded in the lock file.

Generated (source: generate): kolorsc.data.generate.generate_fingerprint, i.e. every image's
prompt, seed and settings and the engine's identity; the caller passes the style and the
engine identity, which a Dataset alone does not carry.

Both add the caption rule, the filters, the image limit, and whether the aesthetic model is
installed when the recipe asks for the aesthetic filter (without it the filter is skipped,
which changes the output).
"""

from __future__ import annotations

import threading
from pathlib import Path

from kolorsc.hashing import digest, sha256_file
from kolorsc.i18n import _
from kolorsc.spec.model import Dataset

LISTING_TIMEOUT = 10.0  # seconds: planning must not hang on an unreachable hub


def dataset_facts(dataset: Dataset, root: Path, *, hashes=None, models_dir: Path | None = None,
                  listing: str | None = None, style=None, engine_identity: dict | None = None) -> dict:
    """Everything the prepared dataset depends on, as plain data. `hashes`: an object with
    `sha256(path)` (the cache's FileHashes memo), else files are hashed directly. `listing`:
    for ModelScope, `modelscope_listing(dataset)` or the value recorded in the lock file.
    A generated dataset also needs `style` and the rendering `engine_identity`."""
    from kolorsc.data.sources import local_images, sidecar_path

    facts: dict = {
        "source": dataset.source,
        "caption": dataset.caption,
        "caption_text": dataset.caption_text,
        "filters": [{"op": f.op, "args": f.args} for f in dataset.filters],
        "max_images": dataset.max_images,
    }
    if dataset.source == "local":
        sha = hashes.sha256 if hashes is not None else sha256_file
        folder = Path(dataset.path)
        files = {}
        for image in local_images(folder):
            rel = image.relative_to(folder).as_posix()
            files[rel] = sha(image)
            sidecar = sidecar_path(image, folder)  # None when it links outside: never read
            if dataset.caption != "constant" and sidecar is not None:
                files[rel + ":caption"] = sha(sidecar)
        facts["files"] = digest(files)
    elif dataset.source == "generate":
        from kolorsc.data.generate import generate_fingerprint
        from kolorsc.errors import TrainingError

        if style is None or engine_identity is None:
            raise TrainingError(_("a generated dataset is keyed by the style and the engine that renders it: "
                                  "dataset_facts(..., style=style, engine_identity=engine.identity())"))
        facts["generated"] = generate_fingerprint(style, engine_identity)
    else:
        facts.update(id=dataset.id, subset=dataset.subset, split=dataset.split,
                     revision=dataset.revision or "master", listing=listing)
    if any(f.op == "image_aesthetics_filter" for f in dataset.filters):
        from kolorsc.data import aesthetic_model_dir

        facts["aesthetic_model"] = aesthetic_model_dir(models_dir) is not None
    return facts


def dataset_fingerprint(dataset: Dataset, root: Path, *, hashes=None, models_dir: Path | None = None,
                        listing: str | None = None, style=None, engine_identity: dict | None = None) -> str:
    """sha256 of `dataset_facts` (what `kolorsc train` records to skip an unchanged dataset)."""
    return digest(dataset_facts(dataset, root, hashes=hashes, models_dir=models_dir, listing=listing,
                                style=style, engine_identity=engine_identity))


def modelscope_listing(dataset: Dataset, timeout: float = LISTING_TIMEOUT) -> str | None:
    """A digest of the hub's file listing (path and content hash of every file) of the
    dataset at its revision, or None when the hub cannot be asked (offline, unknown id,
    modelscope not installed). Reads only: nothing is downloaded or written."""
    result: list = []

    def ask() -> None:
        try:
            from modelscope.hub.api import HubApi

            files = HubApi().get_dataset_files(dataset.id, revision=dataset.revision or "master", recursive=True)
            result.append(sorted(
                (str(f.get("Path") or f.get("Name")), str(f.get("Sha256") or f.get("Id") or f.get("Size")))
                for f in files if isinstance(f, dict)
            ))
        except Exception:  # noqa: BLE001 - any failure means "cannot tell": the caller falls back
            pass

    # A daemon thread with a deadline: the hub client's own timeouts are not ours to set.
    thread = threading.Thread(target=ask, daemon=True)
    thread.start()
    thread.join(timeout)
    # 32 hex digits: short enough for the lock file to record as it is (kolorsc.build.lockfile)
    return digest(result[0])[:32] if result and result[0] else None
