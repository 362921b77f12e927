"""Atomic file writes: readers see the old file or the new one, never half of either.

The one implementation every module uses (cache, outputs, LoRA files, lock files...).
A temp file in the destination folder is written, fsynced and renamed over the target,
so a build killed mid-write leaves at most a stray `.tmp` that nothing trusts.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

_CHUNK = 1 << 20


def _default_mode() -> int:
    # mkstemp creates 0600; outputs are meant to be shared, so honour the umask like open() does.
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@contextlib.contextmanager
def atomic_path(path: Path, mode: int | None = None) -> Iterator[Path]:
    """Yield a temp path beside `path`; on normal exit it is fsynced and renamed over `path`,
    on error it vanishes. For libraries that insist on writing a path themselves
    (safetensors.save_file, torch.save)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, _default_mode() if mode is None else mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: Path, data: bytes, mode: int | None = None) -> None:
    with atomic_path(path, mode) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: Path, text: str, mode: int | None = None) -> None:
    atomic_write_bytes(path, text.encode("utf-8"), mode)


def atomic_copy_file(src: Path, path: Path, mode: int | None = None) -> None:
    with atomic_path(path, mode) as tmp, open(src, "rb") as s, open(tmp, "wb") as f:
        shutil.copyfileobj(s, f, _CHUNK)


def replace_dir(staged: Path, target: Path) -> None:
    """Move the folder `staged` to `target` (same file system). An old `target` is renamed
    aside first and removed after, so `target` is never a half-written folder."""
    staged, target = Path(staged), Path(target)
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.replace(target, old)
    os.replace(staged, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
