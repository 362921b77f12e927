"""Style LoRA training on the Kolors UNet with Lightning, and its export.

What differs from diffsynth's stock trainer (`LightningModelForT2ILoRA`), which runs the VAE
encoder and the 6B ChatGLM on every step:

1. Encode once. Each image is encoded by the VAE (fp32, so half-precision training needs no
   fp16-fix VAE) and each caption by ChatGLM once, and the results are cached as safetensors
   keyed by content hash (image bytes + resolution + crop / caption text + encoder identity).
   A second training on the same images encodes nothing.
2. Then the text encoder and the VAE are dropped: only the UNet is on the device while it trains.
3. The training step is the stock one (diffsynth's DDIM scheduler with Kolors' 1100 steps, one
   timestep per batch, epsilon MSE) on the cached tensors. Which image, which noise and which
   timestep a step uses are drawn from a generator seeded by (seed, global step, rank), so a
   resumed run draws exactly what the uninterrupted run would have.
4. Checkpoints (`<out_dir>/work/checkpoints/last.ckpt`) hold the LoRA weights, the optimizer
   and the loop state only (not the 10 GB of frozen UNet); a new call with the same out_dir
   resumes from the last one (Lightning `ckpt_path`).
5. accelerator / devices / num_nodes / strategy go to Lightning unchanged: DDP is Lightning's.
   `steps_per_epoch` counts optimizer steps; with N processes each step sees N batches.

Outputs (written by global rank 0, atomically): `<out_dir>/lora.safetensors` (kohya keys,
ComfyUI/diffusers) and `<out_dir>/lora.diffsynth.safetensors` (diffsynth's peft names).
"""

from __future__ import annotations

import gc
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from kolorsc import __version__
from kolorsc.codeid import code_identity
from kolorsc.engines.kolors.calls import CallCounter
from kolorsc.errors import TrainingError
from kolorsc.hashing import digest, sha256_file
from kolorsc.i18n import _
from kolorsc.spec.model import Style, Training

NUM_TRAIN_TIMESTEPS = 1100  # Kolors' DDIM schedule (diffsynth switches to it in Kolors mode)
CAPTION_TOKENS = 256

Progress = Callable[[int, int, str], None]


@dataclass
class KolorsModels:
    """What training needs. `identity` names the weights: it is part of every cache key.

    Each model may be given as a zero-argument function that loads it: the trainer then loads
    the encoders only when an image or caption is not cached yet, frees them, and loads the
    UNet last, so the encoders and the UNet are never in memory together.
    """

    unet: Any  # diffsynth SDXLUNet(is_kolors=True) or a stand-in with its forward and module names
    text_encoder: Any  # diffsynth ChatGLMModel
    vae_encoder: Any  # diffsynth SDXLVAEEncoder (callable: image [-1,1] -> latents)
    identity: dict = field(default_factory=dict)

    def get(self, name: str):
        """The model `name`, loaded now if it was given as a loader function."""
        import torch

        model = getattr(self, name)
        if callable(model) and not isinstance(model, torch.nn.Module):
            model = model()
            setattr(self, name, model)
        return model


@dataclass
class TrainResult:
    path: Path  # kohya-style .safetensors (ship this one)
    diffsynth_path: Path  # diffsynth's peft names
    rank: int
    alpha: float
    steps: int  # optimizer steps done in total (including those before a resume)
    metadata: dict = field(default_factory=dict)


ModelLoader = Callable[[Path, str, Any], KolorsModels]


# --- entry point ---------------------------------------------------------------------------


def train_lora(
    style: Style,
    dataset_dir: Path,
    out_dir: Path,
    *,
    models_dir: Path,
    device: str | None = None,
    progress: Progress | None = None,
    model_loader: ModelLoader | None = None,
    cache_dir: Path | None = None,
    callbacks: Sequence[Any] = (),
    checkpoint_every: int = 50,
    lightning_bar: bool | None = None,
) -> TrainResult:
    """Train the style's LoRA on a prepared dataset (kolorsc.data layout) into `out_dir`.

    `cache_dir` holds the encoded latents/embeddings (default `<out_dir>/work/encoded`);
    `callbacks` are extra Lightning callbacks. Calling again with the same `out_dir` after an
    interruption resumes from the last checkpoint. Lightning's own progress bar (with the loss)
    is shown when `lightning_bar`, by default when no `progress` callback draws one.
    """
    import torch

    # 1. Check inputs before loading anything.
    if style.lora is None or style.lora.training is None:
        raise TrainingError(_("style '{id}' has no training spec (lora.training)").format(id=style.id))
    spec = style.lora.training
    from kolorsc.data import read_metadata

    rows = read_metadata(Path(dataset_dir))
    if not rows:
        raise TrainingError(_("{dataset_dir}: the prepared dataset is empty").format(dataset_dir=dataset_dir))
    if lightning_bar is None:
        lightning_bar = progress is None
    progress = progress or (lambda done, total, label: None)
    out_dir = Path(out_dir)
    work = out_dir / "work"
    work.mkdir(parents=True, exist_ok=True)
    setup = plan_run(spec, device)

    # 2. Load the models and count their calls.
    progress(0, 1, "loading models")
    loader = model_loader or default_model_loader
    models = loader(Path(models_dir), setup.encode_device, setup.weights_dtype)
    calls = CallCounter("text_encoder", "vae_encoder", "unet")

    # 3. Encode every image and caption once (cached), then free the encoders, then the UNet.
    cache = Path(cache_dir) if cache_dir else work / "encoded"
    items = encode_dataset(rows, models, spec, cache, setup.encode_device, progress, calls)
    models.text_encoder = models.vae_encoder = None
    gc.collect()
    if setup.encode_device.startswith("cuda"):
        torch.cuda.empty_cache()
    unet = models.get("unet")
    calls.attach("unet", unet)
    del models

    # 4. LoRA into the UNet, then Lightning.
    module = make_module(unet, items, spec, setup)
    trainer, ckpt = make_trainer(spec, setup, work, progress, list(callbacks), checkpoint_every, lightning_bar)
    trainer.fit(module, train_dataloaders=_index_loader(spec), ckpt_path=ckpt)
    steps = int(trainer.global_step)

    # 5. Export (rank 0 writes; every rank returns the same result).
    layers = lora_layers(unet, spec.alpha)
    metadata = export_metadata(style, spec, rows, setup, steps, calls.counts, dataset_dir)
    path, diffsynth_path = out_dir / "lora.safetensors", out_dir / "lora.diffsynth.safetensors"
    if trainer.global_rank == 0:
        from kolorsc.lora import write_diffsynth, write_kohya

        write_kohya(path, layers, metadata)
        write_diffsynth(diffsynth_path, layers, {**metadata, "lora_alpha": str(float(spec.alpha))})
    calls.remove()
    progress(1, 1, "LoRA ready")
    return TrainResult(path, diffsynth_path, spec.rank, float(spec.alpha), steps, metadata)


# --- run settings --------------------------------------------------------------------------


@dataclass
class RunSetup:
    accelerator: str  # what Lightning gets
    precision: str  # what Lightning gets
    encode_device: str  # where the encoders run (once)
    weights_dtype: Any  # dtype of the frozen UNet
    notes: list[str] = field(default_factory=list)


def plan_run(spec: Training, device: str | None) -> RunSetup:
    """Map the spec to Lightning settings; a CPU run uses fp32 where half precision cannot work."""
    import torch

    notes = []
    accelerator = spec.accelerator
    if device is not None:
        accelerator = "cpu" if device == "cpu" else "gpu"
    on_gpu = accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())
    precision = spec.precision
    if not on_gpu and precision in ("16-mixed", "16", "16-true"):
        notes.append(_("precision {precision} needs a GPU: training on CPU in 32-bit").format(precision=precision))
        precision = "32"
    if not on_gpu and precision.startswith("bf16"):
        notes.append(_("bf16 on CPU: slow where the CPU lacks bf16 instructions"))
    dtype = {"16-mixed": torch.float16, "bf16-mixed": torch.bfloat16}.get(precision, torch.float32)
    if on_gpu and device not in (None, "gpu", "cuda"):
        encode_device = device
    else:
        encode_device = "cuda" if on_gpu else "cpu"
    return RunSetup(accelerator, precision, encode_device, dtype, notes)


# --- model loading and call counting ---------------------------------------------------------


def default_model_loader(models_dir: Path, device: str, dtype) -> KolorsModels:
    """The Kolors release from the models directory, through the engine's checked loader."""
    import torch

    from kolorsc import models
    from kolorsc.engines.kolors.loading import TEXT_ENCODER, UNET, VAE, DiffSynthLoader

    folder = models.require("kolors", models_dir)
    loader = DiffSynthLoader()
    # Loaded on first use (see KolorsModels). The encoders run once: the VAE in fp32 (no fp16
    # overflow, so no fp16-fix VAE is needed), the text encoder in the training dtype.
    return KolorsModels(
        unet=lambda: loader.load_unet(folder / UNET, dtype, device),
        text_encoder=lambda: loader.load_text_encoder(folder / TEXT_ENCODER, dtype, device),
        vae_encoder=lambda: loader.load_vae(folder / VAE, torch.float32, device).encoder,
        identity={"base_model": "Kwai-Kolors/Kolors", "files": models.fingerprint("kolors", models_dir)},
    )


# --- encoding once ---------------------------------------------------------------------------


def encode_dataset(rows, models: KolorsModels, spec: Training, cache: Path, device: str, progress: Progress,
                   calls: CallCounter | None = None) -> list[dict]:
    """One dict of tensors per image: latents (and flipped latents), prompt embedding, pooled."""
    from kolorsc.engines.kolors.encoding import encoding_identity

    cache.mkdir(parents=True, exist_ok=True)
    ident = json.dumps(models.identity, sort_keys=True, default=str)
    items = []
    for n, (image_path, caption) in enumerate(rows):
        progress(n, len(rows), "encoding images and captions (once)")
        image_key = digest(["latent", sha256_file(image_path), spec.resolution, spec.center_crop, spec.random_flip, ident])
        text_key = digest(["text", caption, CAPTION_TOKENS, encoding_identity(), ident])
        latents = _cached(cache / f"{image_key}.safetensors",
                          lambda p=image_path: _encode_image(_encoder(models, "vae_encoder", calls), p, spec, device))
        text = _cached(cache / f"{text_key}.safetensors",
                       lambda c=caption: _encode_text(_encoder(models, "text_encoder", calls), c, device))
        bad = [k for k, v in {**latents, **text}.items() if not v.isfinite().all()]
        if bad:  # NaN here would silently poison every step: stop now, naming the input
            raise TrainingError(_("encoding {name} / {caption} gave non-finite {bad}: damaged model weights?").format(
                                  name=image_path.name, caption=repr(caption), bad=', '.join(bad)))
        items.append({**latents, **text})
    progress(len(rows), len(rows), "encoded")
    return items


def _encoder(models: KolorsModels, name: str, calls: CallCounter | None):
    model = models.get(name)
    if calls is not None:
        calls.attach(name, model)
    return model


def _cached(path: Path, make: Callable[[], dict]) -> dict:
    from safetensors.torch import load_file

    if path.is_file():
        try:
            return load_file(str(path))
        except Exception:  # noqa: BLE001 - a damaged entry is a miss, not a crash
            path.unlink(missing_ok=True)
    tensors = {k: v.detach().float().cpu().contiguous() for k, v in make().items()}
    _save_tensors(path, tensors)
    return tensors


def _save_tensors(path: Path, tensors: dict) -> None:
    from safetensors.torch import save_file

    from kolorsc.atomic import atomic_path

    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp))


def load_image(path: Path, resolution: int, center_crop: bool):
    """Resize so the short side fits, then centre-crop (or keep the whole resized image for
    random crops, which are then taken in latent space). Returns [1, 3, H, W] in [-1, 1]."""
    import torchvision.transforms.functional as F
    from PIL import Image
    from torchvision import transforms

    image = Image.open(path).convert("RGB")
    scale = max(resolution / image.width, resolution / image.height)
    size = [round(image.height * scale), round(image.width * scale)]
    image = F.resize(image, size, interpolation=transforms.InterpolationMode.BILINEAR)
    if center_crop:
        image = F.center_crop(image, [resolution, resolution])
    else:  # keep a multiple of 8 so latents line up with pixels
        image = F.crop(image, 0, 0, size[0] // 8 * 8, size[1] // 8 * 8)
    tensor = F.normalize(F.to_tensor(image), [0.5], [0.5])
    return tensor.unsqueeze(0)


def _encode_image(vae, path: Path, spec: Training, device: str) -> dict:
    import torch

    image = load_image(path, spec.resolution, spec.center_crop)
    dtype = next(vae.parameters()).dtype
    with torch.no_grad():
        vae.to(device)
        out = {"latents": vae(image.to(device=device, dtype=dtype))[0]}
        if spec.random_flip:
            out["latents_flipped"] = vae(torch.flip(image, dims=[3]).to(device=device, dtype=dtype))[0]
    return out


def _encode_text(text_encoder, caption: str, device: str) -> dict:
    """The caption as the engine encodes prompts (KolorsPrompter's 256 tokens, padding collapsed),
    so that training and rendering see the same embeddings."""
    from kolorsc.engines.kolors.encoding import encode_text

    text_encoder.to(device)
    emb = encode_text(text_encoder, caption, device)  # runs under no_grad itself
    return {"prompt_emb": emb.sequence[0], "pooled": emb.pooled[0]}


# --- the Lightning module ------------------------------------------------------------------


def inject_lora(unet, spec: Training) -> None:
    """peft LoRA on the target modules (diffsynth's way); LoRA weights in fp32, the rest frozen."""
    import torch
    from peft import LoraConfig, inject_adapter_in_model

    unet.requires_grad_(False)
    config = LoraConfig(
        r=spec.rank, lora_alpha=spec.alpha, init_lora_weights=True, target_modules=list(spec.target_modules)
    )
    problem = f"no UNet module matches target_modules {list(spec.target_modules)} (Kolors: to_q, to_k, to_v, to_out)"
    try:
        inject_adapter_in_model(config, unet)
    except ValueError as exc:  # peft >= 0.14 raises NoMatchingPeftModuleError (a ValueError)
        raise TrainingError(problem) from exc
    if not any(p.requires_grad for p in unet.parameters()):  # older peft injects nothing silently
        raise TrainingError(problem)
    for p in unet.parameters():
        if p.requires_grad:
            p.data = p.data.to(torch.float32)


def make_module(unet, items: list[dict], spec: Training, setup: RunSetup):
    import lightning as pl
    import torch
    from diffsynth.schedulers import EnhancedDDIMScheduler

    pl.seed_everything(spec.seed, workers=True, verbose=False)  # LoRA init is random: seed it
    inject_lora(unet, spec)
    # Frozen weights in the run's dtype (LoRA stays fp32): half the memory under 16-mixed.
    for name, p in unet.named_parameters():
        if not p.requires_grad:
            p.data = p.data.to(setup.weights_dtype)

    class LoraModule(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.unet = unet
            self.items = items
            self.scheduler = EnhancedDDIMScheduler(beta_end=0.014, num_train_timesteps=NUM_TRAIN_TIMESTEPS)
            self.scheduler.set_timesteps(NUM_TRAIN_TIMESTEPS)
            self.strict_loading = False  # checkpoints carry the LoRA only, not the frozen UNet

        def _draw(self, batch_size: int):
            g = torch.Generator().manual_seed(spec.seed * 1_000_003 + self.global_step * 1009 + self.global_rank)
            picks = torch.randint(0, len(self.items), (batch_size,), generator=g).tolist()
            latents = []
            for i in picks:
                item = self.items[i]
                lat = item["latents"]
                if spec.random_flip and torch.rand((), generator=g) < 0.5:
                    lat = item["latents_flipped"]
                latents.append(_crop_latents(lat, spec, g))
            latents = torch.stack(latents)
            emb = torch.stack([self.items[i]["prompt_emb"] for i in picks])
            pooled = torch.stack([self.items[i]["pooled"] for i in picks])
            noise = torch.randn(latents.shape, generator=g)
            timestep_id = torch.randint(0, NUM_TRAIN_TIMESTEPS, (1,), generator=g)
            return latents, emb, pooled, noise, timestep_id

        def training_step(self, batch, batch_idx):
            latents, emb, pooled, noise, timestep_id = self._draw(len(batch))
            dtype = next(p for p in self.unet.parameters() if not p.requires_grad).dtype
            dev = self.device
            latents, noise = latents.to(dev, dtype), noise.to(dev, dtype)
            timestep = self.scheduler.timesteps[timestep_id].to(dev)
            noisy = self.scheduler.add_noise(latents, noise, timestep)
            target = self.scheduler.training_target(latents, noise, timestep)
            h, w = latents.shape[2] * 8, latents.shape[3] * 8
            add_time_id = torch.tensor([h, w, 0, 0, h, w], device=dev).repeat(latents.shape[0])
            pred = self.unet(
                noisy, timestep=timestep, encoder_hidden_states=emb.to(dev, dtype),
                add_time_id=add_time_id, add_text_embeds=pooled.to(dev, dtype),
                use_gradient_checkpointing=spec.gradient_checkpointing,
            )
            loss = torch.nn.functional.mse_loss(pred.float(), target.float()) * self.scheduler.training_weight(timestep)
            if not torch.isfinite(loss):
                raise TrainingError(_("the loss became {float} at step {global_step} (precision {precision}; try 32 or "
                                      "bf16-mixed, or a lower learning rate)").format(
                                      float=float(loss), global_step=self.global_step, precision=setup.precision))
            self.log("train_loss", loss, prog_bar=True)
            return loss

        def configure_optimizers(self):
            params = [p for p in self.unet.parameters() if p.requires_grad]
            return torch.optim.AdamW(params, lr=spec.learning_rate)

        def on_save_checkpoint(self, checkpoint):
            keep = {n for n, p in self.named_parameters() if p.requires_grad}
            checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if k in keep}

    return LoraModule()


def _crop_latents(lat, spec: Training, g):
    """Random crop in latent space when centre crop is off (images were encoded whole)."""
    import torch

    size = spec.resolution // 8
    if spec.center_crop or (lat.shape[1] <= size and lat.shape[2] <= size):
        return lat
    top = int(torch.randint(0, lat.shape[1] - size + 1, (1,), generator=g))
    left = int(torch.randint(0, lat.shape[2] - size + 1, (1,), generator=g))
    return lat[:, top : top + size, left : left + size]


def _index_loader(spec: Training):
    """Batches of step indices: what a step trains on is drawn from the global step (see above)."""
    import torch

    indices = torch.arange(spec.steps_per_epoch * spec.batch_size)
    return torch.utils.data.DataLoader(indices, batch_size=spec.batch_size, shuffle=False)


def total_steps(spec: Training) -> int:
    return spec.epochs * spec.steps_per_epoch


def make_trainer(spec: Training, setup: RunSetup, work: Path, progress: Progress, callbacks: list, every: int,
                 bar: bool = True):
    import lightning as pl
    from lightning.pytorch.callbacks import Callback, ModelCheckpoint

    total = total_steps(spec)

    class Report(Callback):
        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            loss = trainer.callback_metrics.get("train_loss")
            label = f"training, loss {float(loss):.4f}" if loss is not None else "training"
            progress(trainer.global_step, total, label)

    checkpoints = work / "checkpoints"
    saver = ModelCheckpoint(dirpath=checkpoints, save_last=True, save_top_k=0, every_n_train_steps=max(1, every))
    pl.seed_everything(spec.seed, workers=True, verbose=False)
    trainer = pl.Trainer(
        max_steps=total,
        max_epochs=-1,  # the step count decides (DDP shortens each process's epoch)
        accelerator=setup.accelerator,
        devices=spec.devices,
        num_nodes=spec.num_nodes,
        strategy=spec.strategy,
        precision=setup.precision,
        default_root_dir=str(work),
        callbacks=[saver, Report(), *callbacks],
        logger=False,
        enable_model_summary=False,
        enable_progress_bar=bar,
        num_sanity_val_steps=0,
    )
    last = checkpoints / "last.ckpt"
    return trainer, (str(last) if last.is_file() else None)


# --- export --------------------------------------------------------------------------------


def lora_layers(unet, alpha: float):
    """The peft LoRA weights of the UNet as kolorsc LoraLayers keyed by diffsynth module name."""
    from kolorsc.lora import LoraLayer

    params = dict(unet.named_parameters())
    layers = {}
    for name, down in params.items():
        if ".lora_A." not in name:
            continue
        module, _, rest = name.partition(".lora_A.")
        up = params[f"{module}.lora_B.{rest}"]
        layers[module] = LoraLayer(down.detach().float().cpu().clone(), up.detach().float().cpu().clone(), float(alpha))
    return layers


def export_metadata(style: Style, spec: Training, rows, setup: RunSetup, steps: int, calls: dict, dataset_dir) -> dict:
    """The safetensors header: strings only, kohya's ss_* names where kohya has one."""
    csv_hash = dataset_hash(dataset_dir)
    training = {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(spec).items()}
    return {
        "ss_network_module": "networks.lora",
        "ss_network_dim": str(spec.rank),
        "ss_network_alpha": str(float(spec.alpha)),
        "ss_base_model_version": "sdxl_base_v1-0",  # the architecture family loaders expect
        "ss_steps": str(steps),
        "ss_num_train_images": str(len(rows)),
        "ss_learning_rate": str(spec.learning_rate),
        "ss_resolution": f"({spec.resolution}, {spec.resolution})",
        "modelspec.architecture": "stable-diffusion-xl-v1-base/lora",
        "kolorsc.base_model": style.base_model,
        "kolorsc.style": style.id,
        "kolorsc.rank": str(spec.rank),
        "kolorsc.alpha": str(float(spec.alpha)),
        "kolorsc.dataset_hash": csv_hash,
        "kolorsc.training": json.dumps(training, sort_keys=True, ensure_ascii=False),
        "kolorsc.precision": setup.precision,
        "kolorsc.notes": json.dumps(setup.notes, ensure_ascii=False),
        "kolorsc.model_calls": json.dumps(calls, sort_keys=True),
        "kolorsc.version": __version__,
        "kolorsc.trainer_code": code_identity("kolorsc.train"),
        "kolorsc.render_scale": str(style.lora.scale if style.lora else ""),
        "kolorsc.comfyui_strength": str(
            round(style.lora.scale * spec.rank / spec.alpha, 4) if style.lora and spec.alpha else ""
        ),
    }


def dataset_hash(dataset_dir: Path) -> str:
    """sha256 over the prepared dataset's metadata.csv and every image it lists."""
    from kolorsc.data import read_metadata

    files = [sha256_file(Path(dataset_dir) / "train" / "metadata.csv")]
    files += [sha256_file(image) for image, _ in read_metadata(Path(dataset_dir))]
    return digest(files)


def steps_done(out_dir: Path) -> int:
    """The global step of the last checkpoint in `out_dir` (0 when none): what a resume continues from."""
    import torch

    last = Path(out_dir) / "work" / "checkpoints" / "last.ckpt"
    if not last.is_file():
        return 0
    return int(torch.load(str(last), map_location="cpu", weights_only=True).get("global_step", 0))
