"""One remote cache in an object store, opened through fsspec: its layout, reads, atomic writes.

Layout under the remote's URL (s3://bucket/prefix, oss://bucket/prefix, file:///srv/kolorsc):

    objects/ab/<sha256>     output bytes, named by their own sha256 (content-addressed, write-once)
    keys/cd/<key>.json      a node key's sidecar: {"sha256", "size", "node", "kind"}

Why the bytes are named by their hash and not by the node key (the local cache's layout): a
key names an output by its inputs, and two machines can make different bytes for one key (GPU
renders are not bit-exact across cards and drivers). An object's name is its content, so an
upload can never replace the bytes behind a name with other bytes, even when two pushes race;
the sidecar says which object a key has, and push never replaces a sidecar that points at
other bytes (it reports a conflict). Identical outputs under several keys are stored once.

Writes, and what a reader sees of an interrupted one:
- s3:// and oss:// (and gs://): a PUT is atomic. A reader sees the whole object or none; a
  multipart upload becomes visible only when it is completed, and s3fs aborts it on error
  (a killed process leaves invisible parts that a bucket lifecycle rule
  AbortIncompleteMultipartUpload removes). So objects are PUT straight under their final
  name, with `put_file`/`pipe_file` and never `fs.open("wb")`: that file's close(), which a
  `with` block calls on an exception too, would commit the part written so far.
- every other filesystem (file://, sftp://...): the bytes go to `.<name>.<random>.tmp`
  beside the target and are renamed into place (fs.mv). A killed upload leaves a `.tmp`
  that no reader ever opens.
- the object first, the sidecar last: a key exists on the remote only once its sidecar
  does. A sidecar whose object is missing or has other bytes is refused, never trusted.
- readers (pull) hash every object as it streams in, stop reading past the recorded size,
  and compare sha256 and size before the local cache sees a byte; a partial or damaged
  object is refused.

fsspec and its backends (s3fs, ossfs) are imported when a remote is opened, not before.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from kolorsc.errors import BuildError, UsageError
from kolorsc.i18n import _

# One ranged GET per read. Large reads: few round trips (an S3 request costs ~ms; moto, the
# test server, even copies the whole object per range), memory bounded per transfer.
CHUNK = 64 << 20
ATOMIC_PUT = frozenset({"s3", "s3a", "oss", "gs", "gcs"})
BACKEND_PACKAGES = {"s3": "s3fs", "s3a": "s3fs", "oss": "ossfs", "gs": "gcsfs", "gcs": "gcsfs"}
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


class RemoteError(BuildError):
    """The remote cannot be reached or used (network, credentials, permissions)."""


class RemoteCorrupt(ValueError):
    """Something on the remote is not what its name or sidecar promises."""


def is_digest(value: object) -> bool:
    """A cache key or sha256: 64 lowercase hex digits (anything else could name a path)."""
    return isinstance(value, str) and bool(_HEX64.match(value))


@dataclass(frozen=True)
class RemoteEntry:
    """A key's sidecar on the remote."""

    key: str
    sha256: str
    size: int
    node: str = ""
    kind: str = ""

    def to_bytes(self) -> bytes:
        meta = {"sha256": self.sha256, "size": self.size, "node": self.node, "kind": self.kind}
        return json.dumps(meta, sort_keys=True).encode()


def _filesystem(url: str, options: dict):
    """(fsspec filesystem, root path) of `url`, with a message naming the package to install."""
    try:
        import fsspec
    except ImportError:
        raise UsageError(_("remote caches need fsspec: pip install 'kolorsc[remote]'")) from None
    protocol = url.split("://", 1)[0] if "://" in url else "file"
    options = dict(options)
    if protocol == "oss":  # ossfs takes its keys as arguments only; read Aliyun's usual variables
        for opt, env in (("key", "OSS_ACCESS_KEY_ID"), ("secret", "OSS_ACCESS_KEY_SECRET"), ("token", "OSS_SESSION_TOKEN")):
            if opt not in options and os.environ.get(env):
                options[opt] = os.environ[env]
    try:
        return fsspec.core.url_to_fs(url, **options)
    except ImportError:
        package = BACKEND_PACKAGES.get(protocol, f"the fsspec backend for {protocol}://")
        raise UsageError(_("{protocol}:// remotes need {package}: pip install 'kolorsc[remote]'").format(
                           protocol=protocol, package=package)) from None
    except ValueError as exc:  # unknown protocol, bad URL
        raise UsageError(_("cannot open remote {url}: {problem}").format(url=url, problem=exc)) from None


class Remote:
    """A remote cache. `chunksize` is the multipart part size of large S3 uploads (None: the
    backend's default); `options` are fsspec storage options (kolorsc.toml [remote.options])."""

    def __init__(self, url: str, options: dict | None = None, *, chunksize: int | None = None):
        self.url = url.rstrip("/")
        self.fs, root = _filesystem(self.url, options or {})
        self.root = root.rstrip("/")
        protocols = self.fs.protocol if isinstance(self.fs.protocol, (tuple, list)) else (self.fs.protocol,)
        self.atomic_put = bool(ATOMIC_PUT.intersection(protocols))
        self.chunksize = chunksize

    def __repr__(self) -> str:
        return f"Remote({self.url!r})"

    # -- layout ---------------------------------------------------------------------------

    def object_path(self, sha256: str) -> str:
        return f"{self.root}/objects/{sha256[:2]}/{sha256}"

    def sidecar_path(self, key: str) -> str:
        return f"{self.root}/keys/{key[:2]}/{key}.json"

    # -- reading --------------------------------------------------------------------------

    def read_sidecar(self, key: str) -> RemoteEntry | None:
        """The key's sidecar, None when absent; RemoteCorrupt when it is not a valid one."""
        try:
            raw = self.fs.cat_file(self.sidecar_path(key))
        except FileNotFoundError:
            return None
        try:
            meta = json.loads(raw)
            sha, size = meta["sha256"], meta["size"]
        except (ValueError, TypeError, KeyError):
            raise RemoteCorrupt("its sidecar is not valid JSON with sha256 and size") from None
        if not is_digest(sha) or not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise RemoteCorrupt(f"its sidecar holds an invalid sha256 or size ({str(sha)[:70]!r}, {size!r})")
        node, kind = meta.get("node", ""), meta.get("kind", "")
        return RemoteEntry(key, sha, size, node if isinstance(node, str) else "", kind if isinstance(kind, str) else "")

    def object_size(self, sha256: str) -> int | None:
        try:
            return int(self.fs.info(self.object_path(sha256))["size"])
        except FileNotFoundError:
            return None

    def download(self, sha256: str, size: int, dst, on_bytes: Callable[[int], None] | None = None) -> tuple[str, int]:
        """Stream the object into the open binary file `dst`, hashing as it goes; return
        (sha256, bytes read). Reads at most `size` + 1 bytes, so a remote object larger than
        its sidecar says cannot fill the disk. FileNotFoundError when the object is absent."""
        h = hashlib.sha256()
        got = 0
        with self.fs.open(self.object_path(sha256), "rb", block_size=CHUNK, cache_type="none") as src:
            while got <= size:
                chunk = src.read(min(CHUNK, size + 1 - got))
                if not chunk:
                    break
                h.update(chunk)
                dst.write(chunk)
                got += len(chunk)
                if on_bytes:
                    on_bytes(len(chunk))
        return h.hexdigest(), got

    # -- writing --------------------------------------------------------------------------

    def put_object(self, local: Path, sha256: str) -> None:
        self._put(lambda rpath: self._put_file(local, rpath), self.object_path(sha256))

    def put_sidecar(self, entry: RemoteEntry) -> None:
        data = entry.to_bytes()
        self._put(lambda rpath: self.fs.pipe_file(rpath, data), self.sidecar_path(entry.key))

    def _put_file(self, local: Path, rpath: str) -> None:
        kwargs = {"chunksize": self.chunksize} if self.chunksize and self.atomic_put else {}
        self.fs.put_file(str(local), rpath, **kwargs)

    def _put(self, write: Callable[[str], None], rpath: str) -> None:
        """Write atomically (see the module docstring): in place where a PUT is atomic, else
        to a temp name that is renamed into place, and removed if anything goes wrong."""
        if self.atomic_put:
            write(rpath)
            return
        parent, name = rpath.rsplit("/", 1)
        self.fs.makedirs(parent, exist_ok=True)
        tmp = f"{parent}/.{name}.{uuid.uuid4().hex}.tmp"
        try:
            write(tmp)
            self.fs.mv(tmp, rpath)
        except BaseException:
            with contextlib.suppress(Exception):
                self.fs.rm(tmp)
            raise
