"""Loading the three Kolors models from the models directory through diffsynth.

diffsynth's ModelManager recognises a file by a hash of its key names and shapes and skips a
file it does not know with a printed line and no error. So every load here (1) checks the
files are complete first (the same checks as `kolorsc models verify`), (2) loads one file at a
time, (3) checks that the expected model came out, and fails naming the file otherwise.

`ModelLoader` is the injection point: tests substitute small stand-ins for the full-size
UNet/VAE classes while the text encoder (and everything after loading) runs the real code.
"""

from __future__ import annotations

import contextlib
import io
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kolorsc import models
from kolorsc.errors import EngineError
from kolorsc.i18n import _

TEXT_ENCODER = "text_encoder"
UNET = "unet/diffusion_pytorch_model.safetensors"
VAE = "vae/diffusion_pytorch_model.safetensors"
FP16_FIX_VAE = "diffusion_pytorch_model.safetensors"


@dataclass
class Vae:
    encoder: Any  # diffsynth SDXLVAEEncoder (or a stand-in with its call signature)
    decoder: Any  # diffsynth SDXLVAEDecoder


def check_complete(folder: Path, files: list[str]) -> None:
    """Fail before loading if any file is truncated or unreadable (diffsynth's errors are cryptic)."""
    bad = [f"{folder / c.file}: {c.problem}" for c in models._check_files(folder, files) if not c.ok]
    if bad:
        raise EngineError(
            "model files are damaged: " + "; ".join(bad) + ". Delete them and run `kolorsc models pull kolors` "
            "(then `kolorsc models verify kolors`)."
        )


def text_encoder_files(folder: Path) -> list[str]:
    return [rel for rel in models.KOLORS.required if rel.startswith("text_encoder/")]


class DiffSynthLoader:
    """Loads each model with diffsynth's ModelManager and checks what it recognised."""

    def load_text_encoder(self, folder: Path, dtype, device: str):
        check_complete(folder.parent, text_encoder_files(folder.parent))
        return self._load(folder, "kolors_text_encoder", "the Kolors ChatGLM3 text encoder", dtype, device)

    def load_unet(self, path: Path, dtype, device: str):
        check_complete(path.parent, [path.name])
        unet = self._load(path, "sdxl_unet", "the Kolors UNet", dtype, device)
        if not getattr(unet, "is_kolors", False):
            raise EngineError(
                _("{path} is a plain SDXL UNet, not the Kolors UNet (no 4096-wide text projection). Use "
                  "the unet/ of Kwai-Kolors/Kolors.").format(
                  path=path)
            )
        return unet

    def load_vae(self, path: Path, dtype, device: str) -> Vae:
        check_complete(path.parent, [path.name])
        mm = self._manager(path, dtype, device)
        encoder = _fetch(mm, "sdxl_vae_encoder")
        decoder = _fetch(mm, "sdxl_vae_decoder")
        if encoder is None or decoder is None:
            raise _not_recognised(path, "the SDXL VAE")
        # diffsynth always upcasts the SDXL VAE to fp32; the fp16-fix VAE may run in half.
        return Vae(encoder.to(dtype=dtype), decoder.to(dtype=dtype))

    def _load(self, path: Path, name: str, what: str, dtype, device: str):
        model = _fetch(self._manager(path, dtype, device), name)
        if model is None:
            raise _not_recognised(path, what)
        return model

    def _manager(self, path: Path, dtype, device: str):
        from diffsynth.models.model_manager import ModelManager

        # diffsynth narrates every step on stdout; the CLI owns the terminal.
        with contextlib.redirect_stdout(io.StringIO()):
            mm = ModelManager(torch_dtype=dtype, device=device)
            try:
                mm.load_model(str(path))
            except Exception as exc:  # safetensors / pickle / transformers errors on damaged files
                from kolorsc.engines.kolors.device import (
                    is_out_of_memory,
                    out_of_memory_error,
                )

                if is_out_of_memory(exc):
                    raise out_of_memory_error("load", exc) from exc
                raise EngineError(_("cannot load {path}: {name__}: {problem}").format(
                                    path=path, name__=exc.__class__.__name__, problem=exc)) from exc
        return mm


@dataclass
class Prefetch:
    """Model files read once, front to back, by a background thread, into the OS page cache.

    diffsynth loads safetensors lazily: the tensors are views of the memory-mapped file, so the
    10 GB UNet is really read when the LoRA merge and the first denoising pass touch its pages,
    one page fault at a time. Measured on the bench machine (cold cache): ~26 s of faults for
    the fp32 UNet against 3.3 s to stream the same file (bench/RESULTS.md, Kolors runs 5-7).
    The engine streams the text encoder's files, then the UNet's and VAE's while the prompts
    are encoded, so the faults hit the cache.
    Only a speed-up: any error here is ignored (loading reports real problems), and files
    that do not fit in the memory available now are not read (they would evict each other).
    """

    paths: Sequence[Path]
    chunk: int = 16 * 1024 * 1024
    bytes_read: int = 0
    skipped: str = ""
    _thread: threading.Thread | None = field(default=None, repr=False)

    def start(self) -> Prefetch:
        total = sum(p.stat().st_size for p in self.paths if p.is_file())
        available = _available_memory()
        if available is not None and total > available:
            self.skipped = f"{total} bytes to read, {available} available"
            return self
        self._thread = threading.Thread(target=self._run, name="kolorsc-prefetch", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        buffer = bytearray(self.chunk)
        for path in self.paths:
            try:
                with open(path, "rb", buffering=0) as f:
                    while n := f.readinto(buffer):  # the GIL is released while the kernel reads
                        self.bytes_read += n
            except OSError:
                continue

    def wait(self) -> None:
        if self._thread is not None:
            self._thread.join()


def _available_memory() -> int | None:
    """MemAvailable from /proc/meminfo (Linux); None where there is no such file."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _fetch(mm, name: str):
    for model, model_name in zip(mm.model, mm.model_name):
        if model_name == name:
            return model
    return None


def _not_recognised(path: Path, what: str) -> EngineError:
    return EngineError(
        _("{path} was not recognised as {what}: diffsynth identifies models by their key names and "
          "shapes and this file matches none it knows (a different model, or a converted/partial "
          "copy). Put the file from Kwai-Kolors/Kolors there (`kolorsc models pull kolors`).").format(
          path=path, what=what)
    )
