"""Denoising with diffsynth's Kolors scheduler, driving the UNet directly.

diffsynth's SDXLImagePipeline runs the two classifier-free-guidance passes as two UNet calls
and cannot batch. Here the conditional and unconditional passes are one UNet call with batch
2 (same maths: noise = uncond + cfg * (cond - uncond)). Noise comes from a CPU generator seeded
per job, as diffsynth's `generate_noise` does on the CPU, so a seed gives the same image on any
device and in any order of jobs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from kolorsc.engines.kolors.encoding import Embedding

LATENT_CHANNELS = 4
SIZE_MULTIPLE = 64  # diffsynth rounds sizes up to multiples of 64


def kolors_scheduler():
    """The scheduler diffsynth switches to in Kolors mode."""
    from diffsynth.schedulers import EnhancedDDIMScheduler

    return EnhancedDDIMScheduler(beta_end=0.014, num_train_timesteps=1100)


SCHEDULER_ID = "diffsynth.EnhancedDDIMScheduler(num_train_timesteps=1100,beta_end=0.014)"


def round_size(value: int) -> int:
    return (int(value) + SIZE_MULTIPLE - 1) // SIZE_MULTIPLE * SIZE_MULTIPLE


def make_noise(seed: int, height: int, width: int, device: str, dtype):
    import torch

    generator = torch.Generator("cpu").manual_seed(int(seed))
    noise = torch.randn((1, LATENT_CHANNELS, height // 8, width // 8), generator=generator, dtype=torch.float32)
    return noise.to(device=device, dtype=dtype)


@dataclass
class Guidance:
    positive: Embedding
    negative: Embedding
    cfg: float


class CallCounter:
    """Model calls made while rendering (reported by the benchmark, checked by the tests)."""

    def __init__(self):
        self.unet = 0
        self.text_encoder = 0
        self.vae = 0
        self.image_encoder = 0  # reference pictures encoded (cache misses only)
        self.projections = 0  # reference pictures (and the zero picture) through the resampler


def denoise(
    unet,
    latents,
    guidance: Guidance,
    steps: int,
    device: str,
    dtype,
    denoising_strength: float = 1.0,
    start_noise=None,
    on_step: Callable[[int, int], None] | None = None,
    counter: CallCounter | None = None,
):
    """Run the DDIM loop. With denoising_strength < 1 (img2img), `latents` are the encoded image
    and `start_noise` is added at the first timestep, as diffsynth does."""
    import torch

    scheduler = kolors_scheduler()
    scheduler.set_timesteps(steps, denoising_strength)
    if denoising_strength < 1.0:
        latents = scheduler.add_noise(latents, start_noise, timestep=scheduler.timesteps[0])

    batched = guidance.cfg != 1.0
    if batched:
        emb = torch.cat([guidance.positive.sequence, guidance.negative.sequence]).to(device=device, dtype=dtype)
        pooled = torch.cat([guidance.positive.pooled, guidance.negative.pooled]).to(device=device, dtype=dtype)
    else:
        emb = guidance.positive.sequence.to(device=device, dtype=dtype)
        pooled = guidance.positive.pooled.to(device=device, dtype=dtype)
    batch = emb.shape[0]
    height, width = latents.shape[2] * 8, latents.shape[3] * 8
    add_time_id = torch.tensor([height, width, 0, 0, height, width], device=device).repeat(batch)

    total = len(scheduler.timesteps)
    with torch.no_grad():
        for i, timestep in enumerate(scheduler.timesteps):
            timestep = timestep.unsqueeze(0).to(device)
            sample = latents.repeat(batch, 1, 1, 1)
            out = unet(sample=sample, timestep=timestep, encoder_hidden_states=emb, add_time_id=add_time_id, add_text_embeds=pooled)
            if counter is not None:
                counter.unet += 1
            if batched:
                cond, uncond = out.chunk(2)
                noise_pred = uncond + guidance.cfg * (cond - uncond)
            else:
                noise_pred = out
            latents = scheduler.step(noise_pred, timestep, latents)
            if on_step:
                on_step(i + 1, total)
    return latents


def decode(vae_decoder, latents, counter: CallCounter | None = None):
    """Latents -> RGB PIL image (diffsynth's vae_output_to_image)."""
    import numpy as np
    import torch
    from PIL import Image

    with torch.no_grad():
        dtype = next(iter(vae_decoder.parameters())).dtype
        image = vae_decoder(latents.to(dtype=dtype))
    if counter is not None:
        counter.vae += 1
    array = image[0].cpu().float().permute(1, 2, 0).numpy()
    return Image.fromarray(((array / 2 + 0.5).clip(0, 1) * 255).astype(np.uint8))


def encode_image(vae_encoder, image, device: str, dtype, counter: CallCounter | None = None):
    """RGB PIL image -> latents (diffsynth's preprocess_image + VAE encoder)."""
    import numpy as np
    import torch

    pixels = torch.tensor(np.asarray(image.convert("RGB"), dtype=np.float32) * (2 / 255) - 1).permute(2, 0, 1).unsqueeze(0)
    vae_dtype = next(iter(vae_encoder.parameters())).dtype
    with torch.no_grad():
        latents = vae_encoder(pixels.to(device=device, dtype=vae_dtype))
    if counter is not None:
        counter.vae += 1
    return latents.to(dtype=dtype)


def upscale(image, scale: float):
    """Lanczos upscale to the refine size (rounded to the UNet's multiple of 64)."""
    from PIL import Image

    width, height = round_size(round(image.width * scale)), round_size(round(image.height * scale))
    return image.resize((width, height), Image.LANCZOS)
