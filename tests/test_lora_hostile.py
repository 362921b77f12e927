"""`kolorsc lora inspect|export` on files that are not what they claim and without the
optional packages (issue 14): one line naming the file, what is wrong and what to do,
never a traceback."""

from __future__ import annotations

import json
import struct
import sys

import pytest
import torch
from click.testing import CliRunner

from kolorsc.cli import main
from kolorsc.lora import LoraLayer, write_kohya

Q = "blocks.7.transformer_blocks.0.attn1.to_q"
KOHYA_Q = "lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q"


def invoke(*args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    return result


def good_lora(tmp_path):
    return write_kohya(tmp_path / "good.safetensors", {Q: LoraLayer(torch.zeros(4, 640), torch.zeros(640, 4), 4.0)})


def safetensors_bytes(header: dict, body: bytes) -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + body


@pytest.mark.parametrize(
    "content, words",
    [
        (struct.pack("<Q", 20) + b"{not json at all!!}" + b"\0" * 64, "not a readable safetensors file (header is not JSON"),
        (safetensors_bytes({f"{KOHYA_Q}.lora_down.weight": {"dtype": "F32", "shape": [4, 640], "data_offsets": [0, 10240]}},
                           b"\0" * 100), "data offsets 0..10240 do not match"),
        (safetensors_bytes({"x": {"dtype": "F99", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 4), "malformed entry"),
        (b"", "neither safetensors nor a weights-only torch checkpoint"),
        (b"PK\x03\x04 not really a zip", "neither safetensors nor a weights-only torch checkpoint"),
    ],
    ids=["header-not-json", "offsets-beyond-the-file", "unknown-dtype", "empty", "fake-zip"],
)
@pytest.mark.parametrize("command", ["inspect", "export"])
def test_a_file_that_only_looks_like_a_lora_is_one_line(tmp_path, content, words, command):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(content)
    args = ["lora", command, path] + ([tmp_path / "out.safetensors"] if command == "export" else [])
    result = invoke(*args)
    assert result.exit_code == 1
    assert result.output.startswith(f"error: {path}: ") and words in result.output, result.output
    assert not (tmp_path / "out.safetensors").exists()


def test_tensors_of_the_wrong_shape_are_named(tmp_path):
    path = tmp_path / "odd.safetensors"
    from safetensors.torch import save_file

    save_file({f"{KOHYA_Q}.lora_down.weight": torch.zeros(4), f"{KOHYA_Q}.lora_up.weight": torch.zeros(640, 4),
               f"{KOHYA_Q}.alpha": torch.zeros(3)}, str(path))
    result = invoke("lora", "inspect", path)
    assert result.exit_code == 1 and "are not LoRA matrices" in result.output


def test_a_pickle_with_code_never_runs(tmp_path, capfd):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "evil.ckpt"
    torch.save({"x": Evil()}, path)
    result = invoke("lora", "inspect", path)
    assert result.exit_code == 1 and "weights-only" in result.output
    assert "pwned" not in result.output + capfd.readouterr().out


@pytest.mark.parametrize(
    "hidden, command",
    [("safetensors", "inspect"), ("torch", "inspect"), ("diffsynth", "inspect"), ("diffsynth", "export")],
)
def test_missing_packages_are_one_line_with_the_pip_command(tmp_path, monkeypatch, hidden, command):
    path = good_lora(tmp_path)
    from kolorsc import lora

    lora.ldm_module_names.cache_clear()
    lora.kolors_unet_shapes.cache_clear()
    lora._from_kohya.cache_clear()
    monkeypatch.setitem(sys.modules, hidden, None)
    args = ["lora", command, path] + ([tmp_path / "out.safetensors"] if command == "export" else [])
    result = invoke(*args)
    lora.ldm_module_names.cache_clear()
    lora._from_kohya.cache_clear()
    assert result.exit_code == 2
    assert (f"this command needs the models extra ({hidden} is not installed): "
            "pip install torch torchvision && pip install 'kolorsc[models]'") in result.output


def test_export_to_a_place_that_cannot_be_written_is_one_line(tmp_path):
    ckpt = tmp_path / "epoch=0-step=500.ckpt"
    torch.save({f"{Q}.lora_A.default.weight": torch.zeros(4, 640), f"{Q}.lora_B.default.weight": torch.zeros(640, 4)}, ckpt)
    (tmp_path / "a-file").write_text("x")
    target = tmp_path / "a-file" / "out.safetensors"  # its folder is a file
    result = invoke("lora", "export", ckpt, target)
    assert result.exit_code == 1 and result.output.startswith(f"error: {target}: cannot write the LoRA file")
