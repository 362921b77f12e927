"""A core-only install (`pip install -e .`, no torch) gives a tidy message, exit 2, for every
command that needs the `models` extra (issue 12). The models stack is hidden from a real
`kolorsc` process by an import hook, as in a fresh core-only virtualenv (checked by hand with
one: see the issue's report)."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from _build_fixtures import make_project

from kolorsc.extras import EXTRA_OF

CORE_ONLY = """
import sys
BLOCKED = set(sys.argv.pop(1).split(","))
class _NotInstalled:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, _NotInstalled())
from kolorsc.cli import main
main()
"""
MODELS = ",".join(m for m, extra in EXTRA_OF.items() if extra == "models")


def kolorsc_core_only(*args, cwd: Path):
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    return subprocess.run([sys.executable, "-c", CORE_ONLY, MODELS, *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = make_project(tmp_path_factory.mktemp("core") / "p")
    header = json.dumps({"x.lora_down.weight": {"dtype": "F32", "shape": [1, 1], "data_offsets": [0, 4]}}).encode()
    (root / "lora.safetensors").write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 4)
    (root / "images").mkdir()
    from PIL import Image

    Image.new("RGB", (8, 8)).save(root / "images" / "01.png")
    return root


@pytest.mark.parametrize("args", [
    ("lora", "inspect", "lora.safetensors"),
    ("lora", "export", "lora.safetensors", "out.safetensors"),
    ("train", "styles/anime.yaml"),
    ("train", "styles/anime.yaml", "--dataset-only"),
    ("score", "images"),
    ("models", "pull", "kolors", "--models-dir", "models"),
    ("build", "stories/classroom-dream.yaml", "--engine", "kolors", "--models-dir", "models"),
    ("plan", "stories/classroom-dream.yaml", "--engine", "kolors", "--models-dir", "models"),
], ids=lambda a: " ".join(a[:2]))
def test_a_command_needing_the_models_extra_says_so(project, args):
    result = kolorsc_core_only(*args, cwd=project)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "this command needs the models extra (" in result.stderr
    assert "pip install torch torchvision && pip install 'kolorsc[models]'" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_with_json_the_missing_extra_is_a_json_error(project):
    result = kolorsc_core_only("score", "images", "--json", cwd=project)
    assert result.returncode == 2
    doc = json.loads(result.stdout)
    assert doc["ok"] is False and "needs the models extra" in doc["error"]["message"]


def test_the_core_commands_work_without_the_extra(project):
    assert kolorsc_core_only("check", "stories", cwd=project).returncode == 0
    built = kolorsc_core_only("build", "stories/classroom-dream.yaml", "-q", "--cache-dir", "cache", cwd=project)
    assert built.returncode == 0, built.stderr
