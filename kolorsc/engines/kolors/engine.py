"""The `kolors` engine: Kolors on diffsynth 1.1.x, rendering a whole story at once.

    render(jobs, lora)
      1. check           model files present and complete (the IP-Adapter's when a job has
                         references); LoRA readable
      2. encode          every distinct prompt/negative once, then every distinct reference
                         picture, each through its embedding cache
      3. release         low-memory plan: drop the 6B text encoder (and the image encoder)
                         before the UNet loads
      4. load + merge    UNet (+ LoRA merged at the style's render scale) and VAE; reference
                         pictures projected to per-layer keys/values (adapter then released)
      5. per job         denoise (cond+uncond batched), optional refine pass, decode, yield;
                         jobs with references or shared attention in batches (batch.py)
"""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from kolorsc import models, paths
from kolorsc.codeid import code_identity, library_versions
from kolorsc.hashing import digest, file_fingerprint
from kolorsc.engines.base import Engine, LoraWeights, Progress, RenderJob
from kolorsc.engines.kolors import batch as batching
from kolorsc.engines.kolors import device as devices
from kolorsc.engines.kolors.calls import CallCounter
from kolorsc.engines.kolors import encoding, sampling
from kolorsc.engines.kolors.consistent import ConsistencyParts, pictures_of
from kolorsc.engines.kolors.loading import (
    FP16_FIX_VAE,
    TEXT_ENCODER,
    UNET,
    VAE,
    DiffSynthLoader,
    Prefetch,
    Vae,
    text_encoder_files,
)
from kolorsc.errors import EngineError
from kolorsc.i18n import _

if TYPE_CHECKING:
    from PIL.Image import Image

BASE_MODEL = "Kwai-Kolors/Kolors"
LOW_MEMORY_ENV = "KOLORSC_LOW_MEMORY"  # 1: force the low-memory plan, 0: keep everything resident


class KolorsEngine(ConsistencyParts, Engine):
    name = "kolors"
    preview = False

    def __init__(
        self,
        *,
        models_dir: Path | str | None = None,
        device: str | None = None,
        cache_dir: Path | str | None = None,
        low_memory: bool | None = None,
        model_loader=None,
        cuda_available: bool | None = None,
        device_memory: int | None = None,
        dtype=None,
        **_ignored,
    ):
        """models_dir/cache_dir: None -> the user defaults (kolorsc.paths). device: None -> CUDA,
        failing clearly without it; "cpu" renders on the CPU. low_memory: None -> decided from
        the device's total memory (`device_memory` overrides the query, for tests), or forced by
        $KOLORSC_LOW_MEMORY=1/0.
        model_loader: how models are loaded (default diffsynth's ModelManager; tests inject
        stand-ins). cuda_available: overrides torch.cuda.is_available() (tests)."""
        self.models_dir = paths.models_dir(models_dir)
        self.folder = self.models_dir / models.KOLORS.repo
        root = paths.cache_dir(cache_dir)
        self.embeddings = encoding.EmbeddingCache(root / paths.EMBEDDINGS_DIR)
        self.loader = model_loader or DiffSynthLoader()
        self._device_arg = device
        self._cuda_available = cuda_available
        self._device_memory = device_memory
        if low_memory is None and os.environ.get(LOW_MEMORY_ENV):
            low_memory = os.environ[LOW_MEMORY_ENV].strip().lower() not in ("0", "false", "no", "")
        self._low_memory_arg = low_memory
        self._dtype_arg = dtype
        self._device: str | None = None
        self._plan: devices.MemoryPlan | None = None
        self.text_encoder = None
        self.unet = None
        self.vae: Vae | None = None
        self.image_encoder = None  # ipadapter.ImageEncoder, while reference pictures are encoded
        self.adapter = None  # ipadapter.Adapter, while reference pictures are projected
        self._adapter_layers: list | None = None  # (block_id, transformer_id) of each adapter layer
        self._picture_kv: dict[str, list] = {}  # picture sha256 (or ZEROS) -> [(k, v)] per adapter layer
        self._merged: tuple[str, float] | None = None  # (LoRA key, scale) merged into self.unet
        self._prefetch: Prefetch | None = None  # model files being streamed into the page cache
        self.calls = CallCounter()
        self.events: list[str] = []  # load/release log: what the memory plan did, in order

    # -- where and how ---------------------------------------------------------------------

    @property
    def device(self) -> str:
        if self._device is None:
            cuda = self._cuda_available
            if cuda is None:
                import torch

                cuda = torch.cuda.is_available()
            self._device = devices.resolve_device(self._device_arg, cuda)
        return self._device

    @property
    def dtype(self):
        return self._dtype_arg or devices.default_dtype(self.device)

    @property
    def plan(self) -> devices.MemoryPlan:
        if self._plan is None:
            total = self._device_memory if self._device_memory is not None else devices.device_total_memory(self.device)
            self._plan = devices.plan_memory(total, forced=self._low_memory_arg)
        return self._plan

    def identity(self) -> dict:
        models.require("kolors", self.models_dir)
        return {
            "name": self.name,
            # this package's code and the libraries that compute the pixels (kolorsc.codeid)
            "code": code_identity(__name__),
            "libraries": library_versions("torch", "diffsynth"),
            "base_model": BASE_MODEL,
            "files": models.fingerprint("kolors", self.models_dir),
            "dtype": str(self.dtype).replace("torch.", ""),
            "scheduler": sampling.SCHEDULER_ID,
            "vae": "fp16-fix" if self._use_fp16_fix() else "kolors",
        }

    def consistency_identity(self, references: bool = True) -> dict:
        out = {"code": code_identity("kolorsc.engines.kolors.consistent")}
        if references:
            models.require("ip-adapter", self.models_dir)
            out["ip_adapter"] = models.fingerprint("ip-adapter", self.models_dir)
        return out

    def require(self, jobs: Sequence[RenderJob]) -> None:
        models.require("kolors", self.models_dir)
        if any(pictures_of(j) for j in jobs):
            models.require("ip-adapter", self.models_dir)

    def _use_fp16_fix(self) -> bool:
        """The low-memory plan on a GPU decodes with the fp16-fix VAE in half precision when present."""
        if not (self.plan.low_memory and self.device.startswith("cuda")):
            return False
        return not models.missing_files(models.VAE_FP16_FIX, self.models_dir)

    def _text_encoder_id(self) -> str:
        """Identity of the text encoder for the embedding cache: its files' fingerprints
        (kolorsc.hashing.file_fingerprint: other weights of the same shapes differ too) and dtype."""
        files = {rel: file_fingerprint(self.folder / rel)
                 for rel in sorted(r for r in models.KOLORS.required if r.startswith("text_encoder/"))}
        return digest({"files": files, "dtype": str(self.dtype)})[:16]

    # -- models ----------------------------------------------------------------------------

    def _load_text_encoder(self):
        if self.text_encoder is None:
            if self.plan.low_memory:
                self._release("unet", "vae", "image_encoder", "adapter")
            self.text_encoder = self._guard("load", self.loader.load_text_encoder, self.folder / TEXT_ENCODER, self.dtype, self.device)
            self.events.append("load text_encoder")
        return self.text_encoder

    def _load_unet_and_vae(self):
        if self.plan.low_memory:
            self._release("text_encoder", "image_encoder")
        if self._prefetch is not None:
            self._prefetch.wait()  # streaming the rest beats faulting it in page by page
            self._prefetch = None
        if self.unet is None:
            self.unet = self._guard("load", self.loader.load_unet, self.folder / UNET, self.dtype, self.device)
            self._merged = None
            self.events.append("load unet")
        if self.vae is None:
            path, dtype = self._vae_source()
            self.vae = self._guard("load", self.loader.load_vae, path, dtype, self.device)
            self.events.append("load vae")

    def _vae_source(self):
        """(file, dtype): the fp16-fix VAE in the low-memory plan on a GPU, else Kolors' own in fp32."""
        import torch

        if self._use_fp16_fix():
            return models.VAE_FP16_FIX.folder(self.models_dir) / FP16_FIX_VAE, self.dtype
        return self.folder / VAE, torch.float32  # the SDXL VAE overflows in fp16

    def _start_prefetch(self, text_encoder: bool) -> None:
        """Stream the files about to be used into the page cache, in the order they are needed:
        the text encoder's (when prompts need encoding), then the UNet's and the VAE's, which
        arrive while the prompts are being encoded."""
        reload = text_encoder and self.plan.low_memory  # loading the encoder will release UNet and VAE
        parts = {
            "text_encoder": [self.folder / rel for rel in text_encoder_files(self.folder)] if text_encoder else [],
            "unet": [self.folder / UNET] if self.unet is None or reload else [],
            "vae": [self._vae_source()[0]] if self.vae is None or reload else [],
        }
        wanted = [path for paths in parts.values() for path in paths]
        if wanted and self._prefetch is None:
            self._prefetch = Prefetch(wanted).start()
            names = ", ".join(name for name, paths in parts.items() if paths)
            skipped = self._prefetch.skipped
            self.events.append(f"prefetch {names}" + (f" skipped ({skipped})" if skipped else ""))

    def _release(self, *names: str) -> None:
        released = False
        for name in names:
            if getattr(self, name) is not None:
                setattr(self, name, None)
                self.events.append(f"release {name}")
                released = True
                if name == "unet":
                    self._merged = None
        if released:
            gc.collect()
            if self.device.startswith("cuda"):
                import torch

                torch.cuda.empty_cache()

    def close(self) -> None:
        self._release("text_encoder", "image_encoder", "adapter", "unet", "vae")
        self._picture_kv.clear()

    def _guard(self, stage: str, fn, *args):
        """Run a stage, turning out-of-memory into an EngineError naming it and what to lower."""
        try:
            return fn(*args)
        except EngineError:
            raise
        except Exception as exc:
            if devices.is_out_of_memory(exc):
                raise devices.out_of_memory_error(stage, exc) from exc
            raise

    # -- rendering -------------------------------------------------------------------------

    def render(
        self,
        jobs: Sequence[RenderJob],
        lora: LoraWeights | None,
        progress: Progress | None = None,
    ) -> Iterator[tuple[RenderJob, Image]]:
        jobs = list(jobs)
        if not jobs:
            return
        # 1. check: files present (clear ModelMissingError) and the device usable
        self.require(jobs)
        _ = self.device
        lora_layers = self._read_lora(lora) if lora else None
        # 2-3. encode every distinct string once (identity images of shared attention too),
        #      then the reference pictures; (low memory) release the encoders
        panels = [p for j in jobs for p in (j.panel, *(m.panel for m in (j.shared.identity if j.shared else ())))]
        embeddings = self.encode_all([p.prompt for p in panels] + [p.negative for p in panels], progress)
        pictures = self.encode_pictures(jobs, progress)
        # 4. UNet (with the LoRA merged) and VAE; pictures to per-layer keys and values
        self._load_unet_and_vae()
        self._apply_lora(lora, lora_layers)
        self._project_pictures(pictures)
        # 5. plain jobs one at a time, each image yielded as soon as it is decoded; then the
        #    consistent ones in their batches
        plain = [j for j in jobs if not j.consistent]
        batches = batching.plan_batches([j for j in jobs if j.consistent])
        total = sum(self._job_steps(j) for j in plain) + sum(b.steps for b in batches) + sum(
            self._refine_steps(it.panel) for b in batches for it in b.items if it.job is not None)
        done = 0
        for job in plain:
            def on_step(i, n, base=done, label=f"panel {job.panel.index:02d} seed {job.seed}"):
                if progress:
                    progress(base + i, total, label)

            image = self._render_one(job, embeddings, on_step)
            done += self._job_steps(job)
            yield job, image
        for batch in batches:
            label = "panels " + ", ".join(f"{it.panel.index:02d}" for it in batch.items if it.job is not None)

            def on_step(i, n, base=done, label=label):
                if progress:
                    progress(base + i, total, label)

            for job, image, steps in self._render_batch(batch, embeddings, on_step):
                done += steps
                yield job, image

    def _refine_steps(self, panel) -> int:
        return (panel.refine.steps or panel.steps) if panel.refine else 0

    def _job_steps(self, job: RenderJob) -> int:
        return job.panel.steps + self._refine_steps(job.panel)

    def encode_all(self, texts: Sequence[str], progress: Progress | None = None) -> dict[str, encoding.Embedding]:
        """Embeddings for every distinct text: from the cache, else one text-encoder pass each."""
        unique = list(dict.fromkeys(texts))
        encoder_id = self._text_encoder_id()
        keys = {t: encoding.embedding_key(t, encoder_id) for t in unique}
        out, todo = {}, []
        for text in unique:
            cached = self.embeddings.get(keys[text])
            if cached is None:
                todo.append(text)
            else:
                out[text] = cached
        self._start_prefetch(text_encoder=bool(todo) and self.text_encoder is None)
        if todo:
            text_encoder = self._load_text_encoder()
            for i, text in enumerate(todo):
                if progress:
                    progress(i, len(todo), "encoding prompts")
                emb = self._guard("encode", encoding.encode_text, text_encoder, text, self.device)
                self.calls.add("text_encoder")
                emb = encoding.Embedding(emb.sequence.cpu(), emb.pooled.cpu())
                self.embeddings.put(keys[text], emb)
                out[text] = emb
        return out

    def _read_lora(self, lora: LoraWeights):
        from kolorsc.lora import read_lora

        return read_lora(lora.path).layers  # unreadable file: fails before any model loads

    def _apply_lora(self, lora: LoraWeights | None, layers) -> None:
        from kolorsc.engines.kolors import lora_merge

        wanted = (lora.key, float(lora.scale)) if lora else None
        if wanted == self._merged:
            return
        if self._merged is not None:  # another LoRA is in the weights: start from clean ones
            self._release("unet")
            self._load_unet_and_vae()
        if lora:
            layers = lora_merge.read_checked(lora.path, self.unet) if layers is None else self._check(lora, layers)
            lora_merge.merge(self.unet, layers, lora.scale)
            self.events.append(f"merge lora {lora.key[:12]} x{lora.scale}")
        self._merged = wanted

    def _check(self, lora: LoraWeights, layers):
        from kolorsc.lora import check_fits, unet_module_shapes

        problems = check_fits(layers, unet_module_shapes(self.unet))
        if problems:
            shown = "; ".join(problems[:5]) + (f" (and {len(problems) - 5} more)" if len(problems) > 5 else "")
            raise EngineError(_("LoRA {path} does not fit the Kolors UNet: {shown}").format(path=lora.path, shown=shown))
        return layers

    def _render_one(self, job: RenderJob, embeddings, on_step):
        panel = job.panel
        guidance = sampling.Guidance(embeddings[panel.prompt], embeddings[panel.negative], float(panel.cfg))
        height, width = sampling.round_size(panel.height), sampling.round_size(panel.width)
        noise = sampling.make_noise(job.seed, height, width, self.device, self.dtype)
        latents = self._guard(
            "denoise", sampling.denoise, self.unet, noise, guidance, panel.steps, self.device, self.dtype,
            1.0, None, on_step, self.calls,
        )
        image = self._guard("decode", sampling.decode, self.vae.decoder, latents, self.calls)
        if panel.refine is None:
            return image
        return self._refine(job, image, guidance, on_step)

    def _refine(self, job: RenderJob, image, guidance, on_step, ip_kwargs=None):
        """Two-stage mode: Lanczos upscale, encode, add noise at the strength's timestep, denoise
        the rest. With reference pictures (`ip_kwargs`) they condition this pass too; shared
        attention does not (each panel refines on its own)."""
        refine = job.panel.refine
        steps = refine.steps or job.panel.steps
        big = sampling.upscale(image, refine.scale)
        latents = self._guard("refine", sampling.encode_image, self.vae.encoder, big, self.device, self.dtype, self.calls)
        noise = sampling.make_noise(job.seed, big.height, big.width, self.device, self.dtype)

        def step(i, n):
            on_step(job.panel.steps + i, n)

        if ip_kwargs is None:
            latents = self._guard(
                "refine", sampling.denoise, self.unet, latents, guidance, steps, self.device, self.dtype,
                float(refine.strength), noise, step, self.calls,
            )
        else:
            from kolorsc.engines.kolors import ipadapter

            with ipadapter.installed(self.unet, self._adapter_layers):
                latents = self._guard(
                    "refine", batching.denoise_batch, self.unet, latents, [guidance], steps, self.device, self.dtype,
                    ip_kwargs, None, float(refine.strength), noise, step, self.calls,
                )
        return self._guard("decode", sampling.decode, self.vae.decoder, latents, self.calls)
