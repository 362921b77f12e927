"""The dataset node's key: what the prepared dataset depends on, hashed.

Local folder: every image's and caption sidecar's content (sha256), by relative path.
The build plans with this on every `kolorsc build`, so a no-op rebuild must not re-read the
images: measured here, hashing 100 1024px JPEGs (41 MB) takes ~0.1 s (0.5 s for a typical
200 MB style set) against ~2 ms to stat them. Content hashes are therefore memoised by
(path, size, mtime_ns) in a small JSON beside the build cache (`<cache>.file-hashes.json`).
As git does for its index, a file modified within 2 s of being hashed is not memoised (a
rewrite in the same mtime tick could otherwise keep a stale hash).
ModelScope: the id, subset, split and revision (the hub's content is not local).
Both add the caption rule, the filters, the image limit, and whether the aesthetic model is
installed when the recipe asks for the aesthetic filter (without it the filter is skipped,
which changes the output).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

from kolorsc.atomic import atomic_write_text
from kolorsc.spec.model import Dataset

DATA_VERSION = "1"  # bump when prepare_dataset's output changes for the same inputs
_CHUNK = 1 << 20


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


RACY_NS = 2_000_000_000


def memo_path() -> Path:
    from kolorsc import paths

    store = paths.cache_dir()
    return store.with_name(store.name + ".file-hashes.json")


class HashMemo:
    """sha256 of files, remembered by (path, size, mtime_ns) across runs."""

    def __init__(self, path: Path | None):
        self.path, self.changed = path, False
        self.entries: dict = {}
        if path is not None and path.is_file():
            try:
                self.entries = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                self.entries = {}  # a damaged memo is a miss, not a crash

    def sha256(self, file: Path) -> str:
        st = file.stat()
        key = os.path.abspath(file)
        entry = self.entries.get(key)
        if entry and entry[0] == st.st_size and entry[1] == st.st_mtime_ns:
            return entry[2]
        digest = file_sha256(file)
        if time.time_ns() - st.st_mtime_ns > RACY_NS:
            self.entries[key] = [st.st_size, st.st_mtime_ns, digest]
            self.changed = True
        return digest

    def save(self) -> None:
        if self.path is None or not self.changed:
            return
        live = {k: v for k, v in self.entries.items() if os.path.exists(k)}
        try:
            atomic_write_text(self.path, json.dumps(live))
        except OSError:
            pass  # the memo only saves time: a read-only cache must not fail a build


def dataset_fingerprint(dataset: Dataset, root: Path, *, models_dir: Path | None = None,
                        memo: Path | None | bool = True) -> str:
    """sha256 of the canonical JSON of everything the prepared dataset depends on."""
    from kolorsc.data.sources import local_images, sidecar_path

    facts: dict = {
        "version": DATA_VERSION,
        "source": dataset.source,
        "caption": dataset.caption,
        "caption_text": dataset.caption_text,
        "filters": [{"op": f.op, "args": f.args} for f in dataset.filters],
        "max_images": dataset.max_images,
    }
    if dataset.source == "local":
        folder = Path(dataset.path)
        hashes = HashMemo(memo_path() if memo is True else (memo or None))
        files = {}
        for image in local_images(folder):
            rel = image.relative_to(folder).as_posix()
            files[rel] = hashes.sha256(image)
            sidecar = sidecar_path(image, folder)  # None when it links outside: never read
            if dataset.caption != "constant" and sidecar is not None:
                files[rel + ":caption"] = hashes.sha256(sidecar)
        hashes.save()
        facts["files"] = files
    else:
        facts.update(id=dataset.id, subset=dataset.subset, split=dataset.split, revision=getattr(dataset, "revision", None))
    if any(f.op == "image_aesthetics_filter" for f in dataset.filters):
        from kolorsc.data import aesthetic_model_dir

        facts["aesthetic_model"] = aesthetic_model_dir(models_dir) is not None
    blob = json.dumps(facts, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()
