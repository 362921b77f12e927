"""Writing build outputs without following a symlink the build did not create.

A repository can ship `build/<id>` or `build/<id>/panels` as a symlink to anywhere; a build
that opened `build/<id>/panels/01.png` by path would write (and delete stale files) in the
link's target. So below a trusted base folder (the project root, or the parent of the
folder given with --out) every folder is opened with O_NOFOLLOW | O_DIRECTORY relative to
its parent's descriptor (openat), created when missing, and every file is written, read and
removed relative to its folder's descriptor: a planted symlink at any of those places is
refused with a BuildError naming it, and nothing is written, read or deleted through it.

Writes are atomic like kolorsc.atomic's (temp file in the same folder, fsync, rename),
done with the folder's descriptor: rename never follows the link it replaces, and the
temp file is created with O_EXCL | O_NOFOLLOW. POSIX only (openat, renameat), like the
rest of kolorsc (flock).
"""

from __future__ import annotations

import errno
import hashlib
import os
import secrets
import stat
from pathlib import Path

from kolorsc.errors import BuildError
from kolorsc.i18n import N_, _

_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
_CHUNK = 1 << 20
_KINDS = {"folder": N_("folder"), "other": N_("neither a file nor a folder")}  # kind() in messages


class OutputDir:
    """An open folder reached without following symlinks below its trusted base."""

    def __init__(self, fd: int, path: Path):
        self.fd = fd
        self.path = path  # for messages only: every operation goes through `fd`

    # -- opening ------------------------------------------------------------------------

    @classmethod
    def open(cls, base: Path, parts: tuple[str, ...]) -> OutputDir:
        """`base` (trusted: created and followed normally) then each of `parts`, created when
        missing, never followed when it is a link."""
        base = Path(base)
        base.mkdir(parents=True, exist_ok=True)
        folder = cls(os.open(base, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0)), base)
        try:
            for part in parts:
                child = folder.subdir(part)
                folder.close()
                folder = child
        except BaseException:
            folder.close()
            raise
        return folder

    def subdir(self, name: str) -> OutputDir:
        """The folder `name` inside this one, created when missing; a link there is refused."""
        _check_name(name)
        try:
            return OutputDir(os.open(name, _DIR_FLAGS, dir_fd=self.fd), self.path / name)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise self._refusal(name, exc) from None
        try:
            os.mkdir(name, 0o777, dir_fd=self.fd)
        except FileExistsError:
            pass  # made meanwhile (another build); opened below without following links
        try:
            return OutputDir(os.open(name, _DIR_FLAGS, dir_fd=self.fd), self.path / name)
        except OSError as exc:
            raise self._refusal(name, exc) from None

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> OutputDir:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- files --------------------------------------------------------------------------

    def kind(self, name: str) -> str | None:
        """"file", "link", "folder", "other", or None when nothing is there (never follows)."""
        try:
            st = os.stat(name, dir_fd=self.fd, follow_symlinks=False)
        except FileNotFoundError:
            return None
        if stat.S_ISLNK(st.st_mode):
            return "link"
        if stat.S_ISREG(st.st_mode):
            return "file"
        return "folder" if stat.S_ISDIR(st.st_mode) else "other"

    def sha256(self, name: str, memo=None) -> str | None:
        """sha256 of the regular file `name`, or None when there is none; a link is refused.
        `memo` (kolorsc.cache.FileHashes): a hash remembered for the opened file's size and
        mtime is taken instead of reading it (a no-op build would read every output again)."""
        if self._existing(name) is None:
            return None
        fd = os.open(name, os.O_RDONLY | _NOFOLLOW | getattr(os, "O_NONBLOCK", 0), dir_fd=self.fd)
        with os.fdopen(fd, "rb") as f:
            st, where = os.fstat(f.fileno()), os.path.abspath(self.path / name)
            known = memo.known(where, st) if memo is not None else None
            if known is not None:
                return known
            h = hashlib.sha256()
            while chunk := f.read(_CHUNK):
                h.update(chunk)
        if memo is not None:
            memo.remember(where, st, h.hexdigest())
        return h.hexdigest()

    def write_bytes(self, name: str, data: bytes) -> None:
        self._write(name, lambda f: f.write(data))

    def copy_file(self, name: str, src: Path) -> None:
        def copy(f):
            with open(src, "rb") as s:
                while chunk := s.read(_CHUNK):
                    f.write(chunk)

        self._write(name, copy)

    def unlink(self, name: str) -> None:
        """Remove the regular file `name` (a link there is refused, not removed)."""
        if self._existing(name) is not None:
            os.unlink(name, dir_fd=self.fd)

    def names(self) -> list[str]:
        return sorted(os.listdir(self.fd))

    # -- internals ----------------------------------------------------------------------

    def _existing(self, name: str) -> str | None:
        _check_name(name)
        kind = self.kind(name)
        if kind == "link":
            raise self._link_error(name)
        if kind not in (None, "file"):
            raise BuildError(_("{path} is not a regular file ({kind}): remove it and build again").format(
                path=self.path / name, kind=_(_KINDS.get(kind, kind))))
        return kind

    def _write(self, name: str, fill) -> None:
        self._existing(name)
        tmp = f".{name}.{secrets.token_hex(4)}.tmp"  # 14 bytes more than name (spec.validate)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o666, dir_fd=self.fd)
        try:
            with os.fdopen(fd, "wb") as f:
                fill(f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, name, src_dir_fd=self.fd, dst_dir_fd=self.fd)
        except BaseException:
            try:
                os.unlink(tmp, dir_fd=self.fd)
            except FileNotFoundError:
                pass
            raise

    def _link_error(self, name: str) -> BuildError:
        where = self.path / name
        try:
            target = os.readlink(name, dir_fd=self.fd)
        except OSError:
            target = "?"
        return BuildError(_("{path} is a symbolic link (to {target}) that this build did not create: kolorsc never "
                            "writes, reads or deletes through it. Remove the link (and check where it came from), "
                            "then build again").format(path=where, target=target))

    def _refusal(self, name: str, exc: OSError) -> BuildError:
        if exc.errno in (errno.ELOOP, errno.EMLINK) or self.kind(name) == "link":
            return self._link_error(name)
        if exc.errno == errno.ENOTDIR:
            return BuildError(_("{path} is not a folder: remove it and build again").format(path=self.path / name))
        return BuildError(_("{path}: cannot open the output folder ({problem})").format(
            path=self.path / name, problem=exc.strerror or exc))


def _check_name(name: str) -> None:
    if not name or name in (".", "..") or "/" in name or "\0" in name:
        raise BuildError(_("{name} is not a plain file name (internal error, please report)").format(name=repr(name)))


def output_root(out_dir: Path, project_root: Path) -> OutputDir:
    """Open the output folder build/<id> (or --out's <dir>/<id>): below the project root
    nothing is followed; a folder chosen with --out outside the project is trusted up to its
    parent (the user named it), and <id> itself is not followed."""
    out_dir = Path(out_dir).absolute()
    root = Path(project_root).absolute()
    if out_dir.is_relative_to(root) and out_dir != root:
        return OutputDir.open(root, out_dir.relative_to(root).parts)
    return OutputDir.open(out_dir.parent, (out_dir.name,))


def folder_of(root: OutputDir, rel: str) -> tuple[OutputDir, str]:
    """(open folder, file name) of a path like "panels/01.png" inside `root`; the caller
    closes the folder when it is not `root`."""
    *folders, name = rel.split("/")
    folder = root
    for part in folders:
        child = folder.subdir(part)
        if folder is not root:
            folder.close()
        folder = child
    return folder, name
