"""`kolorsc build --executor ray` when Ray cannot be used: not installed, nobody answering at
the address, an address that is not one. One clear message, exit 1, nothing written: no
build/ folder, no lock file, no cache entry. (No cluster is started here.)"""

from __future__ import annotations

import socket
import sys

import pytest
from click.testing import CliRunner

from kolorsc.cli import main

from _build_fixtures import STORY, make_project, story_path


def build(tmp_path, *args, env=None):
    project = make_project(tmp_path / "project")
    result = CliRunner().invoke(main, ["build", str(story_path(project)), "--cache-dir", str(tmp_path / "cache"),
                                       *args], env=env, catch_exceptions=False)
    nothing_written = (not (project / "build").exists() and not (project / "stories" / f"{STORY}.lock").exists()
                       and not list((tmp_path / "cache").rglob("objects/*/*")))
    return result, nothing_written


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nobody listens once the socket is closed


@pytest.fixture(autouse=True)
def no_ray_running():
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        pytest.skip("a Ray cluster is running in this process: connecting would use it")


def test_without_ray_installed(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    result, nothing_written = build(tmp_path, "--executor", "ray")
    assert result.exit_code == 1 and nothing_written
    assert "error: --executor ray needs Ray, which is not installed: pip install 'kolorsc[models]'" in result.output


@pytest.mark.parametrize("scheme", ["", "ray://"])
def test_an_address_where_nobody_answers(tmp_path, scheme):
    address = f"{scheme}127.0.0.1:{closed_port()}"
    result, nothing_written = build(tmp_path, env={"KOLORSC_EXECUTOR": "ray", "KOLORSC_RAY_ADDRESS": address})
    assert result.exit_code == 1 and nothing_written
    assert f"error: no Ray cluster answers at {address} (Connection refused): start one with `ray start --head`" \
        in result.output


def test_an_address_that_is_not_one(tmp_path):
    result, nothing_written = build(tmp_path, "--executor", "ray", "--ray-address", "my-cluster")
    assert result.exit_code == 1 and nothing_written
    assert "--ray-address my-cluster: expected auto, host:port or ray://host:port" in result.output
