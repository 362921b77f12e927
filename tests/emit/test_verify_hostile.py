"""`kolorsc bundle verify` on hostile zips (issue 14), through the real CLI: bombs and
oversized members in bounded memory (a subprocess capped at 256 MB of address space),
unsafe names, symlinks, encryption and unsupported compression as findings, never a
traceback; plus a property test throwing damaged bytes at it."""

from __future__ import annotations

import io
import json
import os
import stat
import zipfile

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from _emit_fixtures import images, make_result
from _hostile_fixtures import bomb_png, deflate_bomb_member, patch_zip, run_capped
from kolorsc.cli import main
from kolorsc.emit import panel_png, verify_bundle
from kolorsc.emit.bundle import bundle_entries, deterministic_zip

CAP_MB = 256


@pytest.fixture(scope="module")
def entries(tmp_path_factory) -> dict[str, bytes]:
    tmp = tmp_path_factory.mktemp("bundle")
    result = make_result(tmp, aesthetic=[6.5] * 8)
    pngs = [panel_png(png, pr, result) for png, pr in zip(images(), result.panels)]
    return bundle_entries(result, pngs, result.lora.path)


def verify_capped(path, cwd):
    result = run_capped(["bundle", "verify", str(path)], cwd, memory_mb=CAP_MB, cpu_seconds=30)
    assert "Traceback" not in result.output and not result.killed, result.output[-2000:]
    return result


def with_extra(entries: dict[str, bytes], add) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name in sorted(entries):
            zf.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), entries[name])
        add(zf)
    return buf.getvalue()


def test_a_valid_bundle_still_passes_under_the_cap(tmp_path, entries):
    path = tmp_path / "星河队-可图Kolors训练-rainy-day.zip"  # the challenge's name rule (make_result's team and story)
    path.write_bytes(deterministic_zip(entries))
    result = verify_capped(path, tmp_path)
    assert result.returncode == 0, result.output


def test_a_1_mb_zip_holding_1_gib_is_refused_unread(tmp_path, entries):
    """scores.json is read whole: before the fix this cost 2.1 GB."""
    rest = {k: v for k, v in entries.items() if k != "scores.json"}
    path = tmp_path / "bomb.zip"
    path.write_bytes(with_extra(rest, lambda zf: deflate_bomb_member(zf, "scores.json", 1 << 30)))
    assert path.stat().st_size < 2 << 20
    result = verify_capped(path, tmp_path)
    assert result.returncode == 1
    assert "scores.json expands" in result.output and "a zip bomb, not a bundle" in result.output


def test_an_image_that_declares_144_megapixels_is_not_decoded(tmp_path, entries):
    bombed = dict(entries, **{"images/03.png": bomb_png(12_000, 12_000)})
    path = tmp_path / "png-bomb.zip"
    path.write_bytes(deterministic_zip(bombed))
    result = verify_capped(path, tmp_path)
    assert result.returncode == 1
    assert "images/03.png cannot be read as an image: 12000x12000 is 144.0 megapixels, over the pixel budget" in result.output


@pytest.mark.parametrize(
    "name, words",
    [
        ("..\\..\\evil.txt", "a path that leaves the folder"),
        ("images\\09.png", "a backslash in the name"),
        ("C:/Windows/evil.txt", "a drive letter in the name"),
        ("../evil.txt", "a path that leaves the folder"),
        ("/etc/evil", "a path that leaves the folder"),
    ],
)
def test_unsafe_names_are_findings(tmp_path, entries, name, words):
    path = tmp_path / "names.zip"
    path.write_bytes(with_extra(entries, lambda zf: zf.writestr(name, b"x")))
    result = verify_capped(path, tmp_path)
    assert result.returncode == 1 and f"unsafe entry {name!r}: {words}" in result.output, result.output


def test_a_symlink_entry_is_a_finding(tmp_path, entries):
    def add(zf):
        info = zipfile.ZipInfo("lora/link.safetensors", date_time=(1980, 1, 1, 0, 0, 0))
        info.create_system = 3
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc/passwd")

    path = tmp_path / "link.zip"
    path.write_bytes(with_extra(entries, add))
    result = verify_capped(path, tmp_path)
    assert result.returncode == 1 and "unsafe entry 'lora/link.safetensors': a symbolic link" in result.output


def test_an_encrypted_member_is_a_finding(tmp_path, entries):
    data = patch_zip(deterministic_zip(entries), "prompts.json", flags=0x1)
    path = tmp_path / "enc.zip"
    path.write_bytes(data)
    result = verify_capped(path, tmp_path)
    assert result.returncode == 1 and "prompts.json is encrypted" in result.output


@pytest.mark.parametrize("method", [99, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA])
def test_unsupported_compression_is_a_finding(tmp_path, entries, method):
    data = deterministic_zip(entries)
    if method == 99:
        data = patch_zip(data, "README.md", method=99)
    else:
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            for name in sorted(entries):
                zf.writestr(name, entries[name], compress_type=method if name == "README.md" else zipfile.ZIP_STORED)
        data = buf.getvalue()
    path = tmp_path / "method.zip"
    path.write_bytes(data)
    result = verify_capped(path, tmp_path)
    assert result.returncode == 1 and f"README.md uses compression method {method}" in result.output


def test_too_many_entries_are_not_parsed(tmp_path, entries):
    def add(zf):
        for i in range(5000):
            zf.writestr(f"junk/{i}", b"")

    path = tmp_path / "many.zip"
    path.write_bytes(with_extra(entries, add))
    result = verify_capped(path, tmp_path)
    assert result.returncode == 1 and "declares 5,0" in result.output and "limit 1,000" in result.output


def test_a_deeply_nested_prompts_json_is_a_finding(tmp_path, entries):
    path = tmp_path / "json.zip"
    path.write_bytes(deterministic_zip(dict(entries, **{"prompts.json": b"[" * 500_000 + b"]" * 500_000})))
    result = verify_capped(path, tmp_path)
    assert result.returncode == 1 and "prompts.json is not a kolorsc prompts file" in result.output


def test_odd_json_shapes_are_findings(tmp_path, entries):
    odd = dict(entries, **{"prompts.json": b"[1, 2]", "scores.json": json.dumps({"aesthetic_mean": "high"}).encode()})
    path = tmp_path / "odd.zip"
    path.write_bytes(deterministic_zip(odd))
    result = CliRunner().invoke(main, ["bundle", "verify", str(path)])
    assert result.exit_code == 1 and result.exception is None or isinstance(result.exception, SystemExit)
    assert "prompts.json is not a kolorsc prompts file" in result.output and "scores.json is not valid" in result.output


@settings(max_examples=int(os.environ.get("KOLORSC_FUZZ_EXAMPLES", "60")), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(edits=st.lists(st.tuples(st.integers(0, 10**9), st.binary(min_size=1, max_size=8)), min_size=1, max_size=6))
def test_damaged_bytes_never_escape_as_exceptions(tmp_path, entries, edits):
    """Random overwrites anywhere in a real bundle (headers, names, sizes, data):
    verify_bundle reports findings or a usage error, never another exception."""
    data = bytearray(deterministic_zip(entries))
    for at, chunk in edits:
        at %= len(data)
        data[at:at + len(chunk)] = chunk
    path = tmp_path / "fuzz.zip"
    path.write_bytes(bytes(data))
    from kolorsc.errors import UsageError

    try:
        report = verify_bundle(path)
    except UsageError:
        return
    assert all(f.format() for f in report.findings)
