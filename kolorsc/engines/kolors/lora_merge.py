"""Merging a style LoRA into the UNet's weights: W += scale * up @ down (diffsynth's load_lora).

Merged weights cost nothing per step (peft-injected LoRA adds two small matmuls to every
targeted layer at every step). Switching to another LoRA or scale reloads the UNet rather
than subtracting: subtraction leaves rounding residue, and then the same panel would not be
bit-identical depending on what was rendered before it.
"""

from __future__ import annotations

from kolorsc.errors import EngineError
from kolorsc.i18n import _


def read_checked(path, unet) -> dict:
    """Read a LoRA file and check every layer against the UNet before anything renders."""
    from kolorsc.lora import check_fits, read_lora, unet_module_shapes

    layers = read_lora(path).layers
    problems = check_fits(layers, unet_module_shapes(unet))
    if problems:
        shown = "; ".join(problems[:5]) + (f" (and {len(problems) - 5} more)" if len(problems) > 5 else "")
        raise EngineError(_("LoRA {path} does not fit the Kolors UNet: {shown}").format(path=path, shown=shown))
    return layers


def merge(unet, layers: dict, scale: float, use_alpha: bool = False) -> int:
    """Add scale * up @ down to each targeted weight in place (diffsynth's meaning, the trained
    alpha ignored; `use_alpha` for kohya's, times alpha/rank). Returns the layers merged."""
    import torch

    with torch.no_grad():
        for name, layer in layers.items():
            weight = unet.get_submodule(name).weight
            delta = layer.delta(scale=scale, use_alpha=use_alpha)  # float32
            weight.add_(delta.reshape(weight.shape).to(device=weight.device, dtype=weight.dtype))
    return len(layers)
