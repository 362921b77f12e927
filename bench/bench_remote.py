"""Benchmark: `cache push|pull` of one story's objects to a local S3 API server.

Run by hand (not a test):  python bench/bench_remote.py [--repeat 3] [--append]
Target (issue 13): pull of 8 panels + LoRA < 3 s from the local S3 server.

The objects are sized like a Kolors build's: eight 1024² panel PNGs (1.5 MB each; random
bytes, which neither side compresses, like PNG) and the style LoRA as kolorsc exports it
(rank 16 on to_q/to_k/to_v/to_out of the Kolors UNet: 23.2 M fp32 parameters, 93 MB). The S3
server is moto's (`python -m moto.server`) in its own process on 127.0.0.1, so client and
server do not share a GIL, as with a real store; its throughput bounds what is measured. A
file:// remote on the same disk is measured beside it. `--append` adds the numbers to
bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

PANEL_BYTES = 1_500_000
LORA_BYTES = 23_224_320 * 4  # 70 transformer blocks' attention projections at rank 16, fp32


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_s3() -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            return proc, endpoint
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("moto server did not start")


def fill(cache) -> list[str]:
    keys = []
    for i, size in enumerate([PANEL_BYTES] * 8 + [LORA_BYTES]):
        key = hashlib.sha256(f"bench-{i}".encode()).hexdigest()
        cache.put_bytes(key, os.urandom(size), "lora" if i == 8 else f"render/{i + 1:02d}/seed-{i + 1}",
                        "lora" if i == 8 else "render")
        keys.append(key)
    return keys


def run(url: str, keys: list[str], source, tmp: Path, workers: int, repeat: int) -> dict:
    from kolorsc.cache import Cache
    from kolorsc.remote import pull_keys, push_keys

    push, pull, noop = [], [], []
    size = 0
    for r in range(repeat):
        target = f"{url}/run-{workers}-{r}"
        t = time.perf_counter()
        report = push_keys(source, target, keys, workers=workers)
        push.append(time.perf_counter() - t)
        assert report.ok and len(report.transferred) == len(keys), report.to_json()
        size = report.bytes
        empty = Cache(tmp / f"pull-{url.split(':')[0]}-{workers}-{r}")
        t = time.perf_counter()
        report = pull_keys(empty, target, keys, workers=workers)
        pull.append(time.perf_counter() - t)
        assert report.ok and len(report.transferred) == len(keys), report.to_json()
        t = time.perf_counter()
        report = pull_keys(empty, target, keys, workers=workers)
        noop.append(time.perf_counter() - t)
        assert report.present == keys or sorted(report.present) == sorted(keys)
    med = statistics.median
    return {"workers": workers, "bytes": size, "push": med(push), "pull": med(pull), "noop": med(noop),
            "push_all": push, "pull_all": pull}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--append", action="store_true")
    args = parser.parse_args()
    proc, endpoint = start_s3()
    try:
        os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1",
                          AWS_ENDPOINT_URL_S3=endpoint)
        import boto3

        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket="bench")
        from kolorsc.cache import Cache

        with tempfile.TemporaryDirectory(prefix="kolorsc-bench-remote-") as tmp:
            tmp = Path(tmp)
            source = Cache(tmp / "source")
            keys = fill(source)
            rows = []
            for label, url in (("s3 (moto, own process)", "s3://bench/kolorsc"), ("file://", (tmp / "remote").as_uri())):
                for workers in (1, 4):
                    rows.append((label, run(url, keys, source, tmp, workers, args.repeat)))
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    lines = [
        f"## Shared cache: push/pull of one story's objects (bench/bench_remote.py) — {time.strftime('%Y-%m-%d')}",
        "",
        (f"8 panels x {PANEL_BYTES / 1e6:.1f} MB + LoRA {LORA_BYTES / 1e6:.1f} MB = "
        f"{(8 * PANEL_BYTES + LORA_BYTES) / 1e6:.1f} MB; median of {args.repeat}; {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs; moto {__import__('moto').__version__}, s3fs {__import__('s3fs').__version__}."),
        "",
        "| remote | workers | push s | push MB/s | pull s (empty cache) | pull MB/s | pull, all present s |",
        "|---|---|---|---|---|---|---|",
    ]
    for label, r in rows:
        mb = r["bytes"] / 1e6
        lines.append(f"| {label} | {r['workers']} | {r['push']:.2f} | {mb / r['push']:.0f} | {r['pull']:.2f} | "
                     f"{mb / r['pull']:.0f} | {r['noop']:.3f} |")
    s3_pull = min(r["pull"] for label, r in rows if label.startswith("s3"))
    lines += ["", (f"**Pull of 8 panels + LoRA from the local S3 server: {s3_pull:.2f} s (target < 3 s: "
              f"{'met' if s3_pull < 3 else 'NOT met'}).**"), ""]
    text = "\n".join(lines)
    print(text)
    if args.append:
        with open(REPO / "bench" / "RESULTS.md", "a", encoding="utf-8") as f:
            f.write("\n" + text)


if __name__ == "__main__":
    main()
