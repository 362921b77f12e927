"""The team's shared cache: cache entries pushed to and pulled from an object store.

    push_keys(cache, remote_url, keys, progress) -> TransferReport
    pull_keys(cache, remote_url, keys, progress, expected={key: sha256}) -> TransferReport
    keys_from_locks(paths) -> {key: recorded sha256}    what the stories' lock files record
    Remote(url, options)                                 one remote (layout, atomic writes)

Backends through fsspec: s3:// (s3fs), oss:// (ossfs), file://; installed by the `remote`
extra and imported only when a remote is opened. Layout, atomicity and what readers do with
a partial write: kolorsc/remote/store.py. Which remote: kolorsc/config.py.
"""

from __future__ import annotations

from kolorsc.remote.keys import keys_from_locks, lock_files
from kolorsc.remote.store import Remote, RemoteEntry, RemoteError
from kolorsc.remote.transfer import TransferReport, pull_keys, push_keys

__all__ = ["Remote", "RemoteEntry", "RemoteError", "TransferReport", "keys_from_locks", "lock_files",
           "pull_keys", "push_keys"]
