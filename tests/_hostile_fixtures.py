"""Helpers for the hostile-input tests (issue 14): run the real CLI in a subprocess under
memory and CPU caps, so that a regression (a template that allocates gigabytes, a zip bomb)
fails fast with a clear reason instead of hanging or swapping the CI machine."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


@dataclass
class Capped:
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    @property
    def killed(self) -> bool:
        return self.returncode < 0  # SIGXCPU / SIGKILL: the cap fired


def run_capped(args: list[str], cwd: Path, *, memory_mb: int = 1024, cpu_seconds: int = 20,
               timeout: float = 60, prelude: str = "", data_only: bool = False) -> Capped:
    """`kolorsc ARGS` in a fresh interpreter with RLIMIT_AS (address space) and RLIMIT_CPU.
    `data_only` caps RLIMIT_DATA instead (private writable memory: heap and anonymous
    maps), for commands that import torch, whose shared libraries alone map gigabytes of
    address space. `prelude` runs first (e.g. to hide a package). A MemoryError or a kill
    shows in the result: the test then fails on its exit code and output, quickly."""

    def limits() -> None:
        cap = memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_DATA if data_only else resource.RLIMIT_AS, (cap, cap))
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds))

    code = f"{prelude}\nimport sys\nfrom kolorsc.cli import main\nsys.argv = ['kolorsc'] + {list(args)!r}\nmain()"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True,
                          preexec_fn=limits, timeout=timeout, env=env)
    return Capped(proc.returncode, proc.stdout, proc.stderr)


def hide_packages(*names: str) -> str:
    """A prelude that makes `import NAME` fail as if the package were not installed."""
    return "import sys\n" + "".join(f"sys.modules[{n!r}] = None\n" for n in names)


# --- hostile files ---------------------------------------------------------------------------


def bomb_png(width: int, height: int) -> bytes:
    """A valid 8-bit grayscale PNG of width x height black pixels, a few hundred KB for
    144 megapixels: written row by row through zlib, never held decoded."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    comp = zlib.compressobj(9)
    row = b"\0" * (width + 1)  # filter byte + pixels
    parts = []
    step = max(1, (8 << 20) // len(row))
    for start in range(0, height, step):
        parts.append(comp.compress(row * min(step, height - start)))
    parts.append(comp.flush())
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"".join(parts)) + chunk(b"IEND", b"")


def deflate_bomb_member(zf, name: str, size: int) -> None:
    """Add `name` holding `size` zero bytes, deflated (about size/1000 bytes in the zip)."""
    import zipfile

    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_DEFLATED
    with zf.open(info, "w", force_zip64=size > (1 << 31)) as out:
        block = b"\0" * (1 << 20)
        for _ in range(size // len(block)):
            out.write(block)


def patch_zip(data: bytes, name: str, *, method: int | None = None, flags: int | None = None) -> bytes:
    """Rewrite the compression method / flag bits of member `name` in both its local header
    and its central directory record (zipfile cannot write encrypted or unknown methods)."""
    import struct

    out = bytearray(data)
    encoded = name.encode("utf-8")
    for sig, name_len_at, flags_at, method_at, header in ((b"PK\x03\x04", 26, 6, 8, 30), (b"PK\x01\x02", 28, 8, 10, 46)):
        at = out.find(sig)
        while at >= 0:
            n = struct.unpack_from("<H", out, at + name_len_at)[0]
            if bytes(out[at + header: at + header + n]) == encoded:
                if flags is not None:
                    struct.pack_into("<H", out, at + flags_at, flags)
                if method is not None:
                    struct.pack_into("<H", out, at + method_at, method)
            at = out.find(sig, at + 4)
    return bytes(out)
