"""Merging a style LoRA into the UNet's weights: W += scale * up @ down (diffsynth's load_lora).

Merged weights cost nothing per step (peft-injected LoRA adds two small matmuls to every
targeted layer at every step). Switching to another LoRA or scale reloads the UNet rather
than subtracting: subtraction leaves rounding residue, and then the same panel would not be
bit-identical depending on what was rendered before it.
"""

from __future__ import annotations

from kolorsc.errors import EngineError


def read_layers(path) -> dict:
    """kolorsc.lora.read_lora, also for a safetensors file stored without its suffix (the build
    cache keeps objects under their hash): read_lora picks the reader by suffix, so such a file
    is read through a suffixed symlink."""
    import os
    import tempfile
    from pathlib import Path

    from kolorsc import models
    from kolorsc.lora import read_lora

    path = Path(path)
    if path.suffix in (".safetensors", ".ckpt", ".pt", ".pth", ".bin") or not path.is_file():
        return read_lora(path).layers
    try:
        models.read_safetensors_header(path)
    except (ValueError, OSError, UnicodeDecodeError):
        return read_lora(path).layers  # not safetensors: let read_lora try torch.load
    with tempfile.TemporaryDirectory() as tmp:
        link = Path(tmp) / "lora.safetensors"
        os.symlink(path.resolve(), link)
        return read_lora(link).layers


def read_checked(path, unet) -> dict:
    """Read a LoRA file and check every layer against the UNet before anything renders."""
    from kolorsc.lora import check_fits, unet_module_shapes

    layers = read_layers(path)
    problems = check_fits(layers, unet_module_shapes(unet))
    if problems:
        shown = "; ".join(problems[:5]) + (f" (and {len(problems) - 5} more)" if len(problems) > 5 else "")
        raise EngineError(f"LoRA {path} does not fit the Kolors UNet: {shown}")
    return layers


def merge(unet, layers: dict, scale: float) -> int:
    """Add scale * up @ down to each targeted weight in place. Returns the number of layers merged."""
    import torch

    with torch.no_grad():
        for name, layer in layers.items():
            weight = unet.get_submodule(name).weight
            delta = layer.delta(scale=scale)  # float32, diffsynth's meaning (trained alpha ignored)
            weight.add_(delta.reshape(weight.shape).to(device=weight.device, dtype=weight.dtype))
    return len(layers)
