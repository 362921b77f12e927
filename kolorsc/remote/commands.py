"""`kolorsc cache push|pull`: resolve the remote and the keys, then move them.

These belong with the other commands in kolorsc/api.py once the build core settles; they
hold no logic of their own beyond choosing what to move.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from kolorsc.cache import Cache
from kolorsc.config import CONFIG_FILE, REMOTE_ENV, RemoteConfig, resolve_remote
from kolorsc.errors import UsageError
from kolorsc.i18n import _
from kolorsc.remote.keys import keys_from_locks
from kolorsc.remote.transfer import Progress, TransferReport, pull_keys, push_keys


def project_remote(url: str | None, paths: Sequence[Path]) -> RemoteConfig:
    """The remote for a command on `paths` (their project root's kolorsc.toml), or UsageError."""
    from kolorsc.spec.loader import find_project_root

    root = find_project_root(Path(paths[0]) if paths else Path.cwd())
    remote = resolve_remote(url, root)
    if remote is None:
        raise UsageError(
            _("no remote cache: pass --remote URL (s3://bucket/prefix, oss://bucket/prefix, "
              'file:///path), set {remote_env}, or add [remote] url = "..." to {value}').format(
              remote_env=REMOTE_ENV, value=root / CONFIG_FILE)
        )
    return remote


def _selection(paths: Sequence[Path], keys: Sequence[str]) -> dict[str, str | None]:
    chosen: dict[str, str | None] = dict(keys_from_locks(paths)) if paths else {}
    for key in keys:
        chosen.setdefault(key, None)
    return chosen


def cache_push(
    paths: Sequence[Path] = (),
    keys: Sequence[str] = (),
    *,
    remote: str | None = None,
    cache_dir: Path | None = None,
    all_keys: bool = False,
    progress: Progress | None = None,
) -> TransferReport:
    """Push what the lock files of `paths` record, plus `keys` (or every local entry with `all_keys`)."""
    cache = Cache(cache_dir)
    chosen = list(cache.keys()) if all_keys else list(_selection(paths, keys))
    if not chosen and not all_keys:
        raise UsageError(_("nothing to push: name stories, lock files or folders, or --key KEY, or --all"))
    spec = project_remote(remote, paths)
    return push_keys(cache, spec.url, chosen, progress, options=spec.options)


def cache_pull(
    paths: Sequence[Path] = (),
    keys: Sequence[str] = (),
    *,
    remote: str | None = None,
    cache_dir: Path | None = None,
    progress: Progress | None = None,
) -> TransferReport:
    """Pull what the lock files of `paths` record (each verified against its recorded hash), plus `keys`."""
    chosen = _selection(paths, keys)
    if not chosen:
        raise UsageError(_("nothing to pull: name stories, lock files or folders, or --key KEY"))
    spec = project_remote(remote, paths)
    return pull_keys(Cache(cache_dir), spec.url, list(chosen), progress,
                     expected={k: v for k, v in chosen.items() if v}, options=spec.options)
