"""Read a git revision without touching the user's working tree or index.

Four plumbing commands, each run once per `kolorsc diff`: `rev-parse` (repository root,
the revision's commit), `ls-tree -r` (path -> blob id at the revision), `ls-files -co
--exclude-standard` (the working tree's files, untracked ones included, ignored ones not)
and one `cat-file --batch` process for every blob we need. `GIT_OPTIONAL_LOCKS=0` keeps git
from refreshing the index opportunistically, so a diff never writes into `.git`.

Working-tree files are compared with the revision by their git blob id, computed here from
the bytes (sha1 of "blob <size>\\0" + bytes): exact, no index involved, and it needs no
`git diff` whose view of the working tree depends on the index's stat cache.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Iterable
from pathlib import Path

from kolorsc.errors import UsageError
from kolorsc.i18n import _

_BLOB_MODES = ("100644", "100755")  # regular files; symlinks and submodules are not read


class GitError(UsageError):
    """git refused (bad revision, not a repository, git missing): bad input, exit 2."""


def _run(args: list[str], cwd: Path, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0", "LC_ALL": "C"}
    try:
        return subprocess.run(["git", *args], cwd=cwd, input=stdin, capture_output=True, env=env, check=False)
    except FileNotFoundError:
        raise GitError(_("git is not installed: kolorsc diff reads the revision with git")) from None


def _out(args: list[str], cwd: Path, what: str) -> bytes:
    proc = _run(args, cwd)
    if proc.returncode != 0:
        detail = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise GitError(f"{what}: {detail[-1] if detail else 'git failed'}")
    return proc.stdout


def repo_root(cwd: Path) -> Path:
    """The top folder of the git work tree holding `cwd`, else a clear error."""
    proc = _run(["rev-parse", "--show-toplevel"], Path(cwd))
    if proc.returncode != 0 or not proc.stdout.strip():
        raise GitError(
            _("{absolute} is not inside a git repository: kolorsc diff compares a git revision with "
              "the working tree (run it inside the collection's repository, or `git init` one)").format(
              absolute=Path(cwd).absolute())
        )
    return Path(os.fsdecode(proc.stdout.strip())).resolve()


def resolve_commit(root: Path, rev: str) -> str | None:
    """The commit id `rev` names, or None when it names none."""
    if rev.startswith("-"):
        return None
    proc = _run(["rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"], root)
    if proc.returncode != 0:
        return None
    return proc.stdout.decode().strip() or None


def tree_files(root: Path, commit: str) -> dict[str, str]:
    """Every regular file of the revision: repository-relative POSIX path -> blob id."""
    out = _out(["ls-tree", "-r", "-z", "--full-tree", commit], root, f"cannot list {commit[:12]}")
    files = {}
    for record in out.split(b"\0"):
        if not record:
            continue
        meta, _, path = record.partition(b"\t")
        mode, kind, blob = meta.decode().split(" ")
        if kind == "blob" and mode in _BLOB_MODES:
            files[os.fsdecode(path)] = blob
    return files


def work_files(root: Path) -> list[str]:
    """The working tree's files git would see: tracked (and still present) plus untracked
    ones not ignored. Sorted repository-relative POSIX paths."""
    out = _out(["ls-files", "-z", "--cached", "--others", "--exclude-standard"], root, "cannot list the working tree")
    names = sorted({os.fsdecode(p) for p in out.split(b"\0") if p})
    return [n for n in names if (root / n).is_file()]


def read_blobs(root: Path, blobs: Iterable[str]) -> dict[str, bytes]:
    """The bytes of each blob id, through one `git cat-file --batch` process."""
    wanted = sorted(set(blobs))
    if not wanted:
        return {}
    proc = _run(["cat-file", "--batch"], root, stdin="".join(f"{b}\n" for b in wanted).encode())
    if proc.returncode != 0:
        raise GitError(_("cannot read the revision's files: {strip}").format(
                         strip=proc.stderr.decode('utf-8', 'replace').strip()))
    data, pos, found = proc.stdout, 0, {}
    for blob in wanted:
        end = data.index(b"\n", pos)
        header = data[pos:end].decode().split(" ")
        if len(header) != 3:  # "<id> missing"
            raise GitError(_("blob {blob} is missing from the repository").format(blob=blob))
        size = int(header[2])
        found[blob] = data[end + 1 : end + 1 + size]
        pos = end + 1 + size + 1  # content, then a newline
    return found


def blob_id(data: bytes) -> str:
    """The git blob id of these bytes (what `git hash-object` prints for a plain file)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
