"""Where the Kolors engine runs and how much it keeps in memory.

The decisions are plain functions of injected facts (is CUDA there, how many bytes the
device has) so that the GPU branches run in CPU tests exactly as they run on a GPU.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from kolorsc.errors import EngineError
from kolorsc.i18n import _

# Below this much device memory the 6B text encoder (12.4 GB in half precision) and the UNet
# (5.2 GB in half) do not comfortably fit together: encode first, then release the encoder.
LOW_MEMORY_THRESHOLD = 24 * 1024**3

CPU_HINT = (
    "the CPU works but is slow: minutes per denoising step at 1024x1024, "
    "tens of minutes per panel"
)


def resolve_device(device: str | None, cuda_available: bool) -> str:
    """CUDA unless the user asked for something else; no CUDA and nothing asked -> a clear error."""
    if device:
        if device.startswith("cuda") and not cuda_available:
            raise EngineError(
                _("--device {device} was asked for but CUDA is not available (no NVIDIA GPU or a CPU-only "
                  "torch build). Use `--engine preview` for drafts, or `--device cpu` ({cpu_hint}).").format(
                  device=device, cpu_hint=CPU_HINT)
            )
        return device
    if not cuda_available:
        raise EngineError(
            _("the kolors engine needs a CUDA GPU and none is available. Use `--engine preview` for a "
              "draft storyboard, or `--device cpu` to render on the CPU anyway ({cpu_hint}).").format(
              cpu_hint=CPU_HINT)
        )
    return "cuda"


@dataclass(frozen=True)
class MemoryPlan:
    low_memory: bool
    total_bytes: int | None  # what the decision was based on (None: forced by the user)
    reason: str


def plan_memory(total_bytes: int | None, forced: bool | None = None, threshold: int = LOW_MEMORY_THRESHOLD) -> MemoryPlan:
    """Low memory (text encoder released before denoising, fp16-fix VAE in half precision) when
    the device has less than `threshold` bytes; everything resident otherwise."""
    if forced is not None:
        return MemoryPlan(forced, total_bytes, "low-memory plan asked for" if forced else "keep-resident plan asked for")
    if total_bytes is None:
        return MemoryPlan(True, None, "device memory unknown: playing safe")
    gb = total_bytes / 1024**3
    if total_bytes < threshold:
        return MemoryPlan(True, total_bytes, f"{gb:.1f} GB < {threshold / 1024**3:.0f} GB: text encoder released before denoising")
    return MemoryPlan(False, total_bytes, f"{gb:.1f} GB: every model kept resident")


def device_total_memory(device: str) -> int | None:
    """Total memory of the device in bytes: the GPU's for CUDA, physical RAM for the CPU."""
    if device.startswith("cuda"):
        import torch

        return int(torch.cuda.get_device_properties(torch.device(device)).total_memory)
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):  # not every platform has these names
        return None


def default_dtype(device: str):
    """Half precision on CUDA (as diffsynth runs Kolors); fp32 on the CPU, which here has no
    fast half-precision matrix instructions (bf16 measured at ~340 s per UNet step at 256²)."""
    import torch

    return torch.float16 if device.startswith("cuda") else torch.float32


def is_out_of_memory(exc: BaseException) -> bool:
    import torch

    oom = getattr(torch.cuda, "OutOfMemoryError", None)
    return (oom is not None and isinstance(exc, oom)) or "out of memory" in str(exc).lower()


def out_of_memory_error(stage: str, exc: BaseException) -> EngineError:
    lower = {
        "encode": "use --low-memory (KOLORSC_LOW_MEMORY=1), or shorter prompts",
        "load": "use --low-memory (KOLORSC_LOW_MEMORY=1) (the text encoder is released before the UNet loads)",
        "denoise": "lower the panel size (defaults.size), the number of candidates, or use --low-memory (KOLORSC_LOW_MEMORY=1)",
        "decode": "lower the panel size or use --low-memory (KOLORSC_LOW_MEMORY=1; fp16-fix VAE in half precision)",
        "refine": "lower refine.scale or the panel size, or use --low-memory (KOLORSC_LOW_MEMORY=1)",
    }.get(stage, "lower the panel size or candidates, or use --low-memory (KOLORSC_LOW_MEMORY=1)")
    return EngineError(_("out of GPU memory while {stage}: {lower} ({name__})").format(
                         stage=stage, lower=lower, name__=exc.__class__.__name__))
