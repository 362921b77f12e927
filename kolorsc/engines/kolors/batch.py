"""Rendering with consistency: which images are denoised together, and the denoising loop for
a batch of images that may carry reference pictures (IP-Adapter) and share attention.

Jobs without references or sharing never come here: they render exactly as before
(sampling.denoise). A job with references only is a batch of one. Jobs that share attention
are grouped by their identity images and settings (and steps and size, which one denoising
loop needs in common); each batch holds the identity images first, then up to
`group - identity` other jobs. A batch is always padded to that full shape (the last job
repeated, its copy discarded): every image's numbers then come from the same kernels
whichever panels happen to be rebuilt together, so a panel is the same image in a full
build and in a rebuild of just that panel.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from kolorsc.engines.base import Reference, RenderJob
from kolorsc.engines.kolors.encoding import Embedding
from kolorsc.engines.kolors.sampling import CallCounter, Guidance, kolors_scheduler
from kolorsc.prompts import Panel


@dataclass(frozen=True)
class Item:
    """One image of a batch. `job` is what to yield it as (None: an identity image that is not
    itself asked for, or a padding copy)."""

    panel: Panel
    seed: int
    references: tuple[Reference, ...]
    rate: float
    job: RenderJob | None


@dataclass
class Batch:
    items: list[Item]
    identity: int  # the first `identity` items are the identity images (0: no sharing)
    layers: str = "up"
    from_step: int = 1

    @property
    def steps(self) -> int:
        return self.items[0].panel.steps


def plan_batches(jobs: Sequence[RenderJob]) -> list[Batch]:
    """Batches for the consistent jobs (references and/or sharing), in a stable order."""
    out: list[Batch] = []
    groups: dict[tuple, list[RenderJob]] = {}
    for job in jobs:
        if job.shared is None:
            out.append(Batch([Item(job.panel, job.seed, job.references, 0.0, job)], 0))
            continue
        p = job.panel
        key = (job.shared.batch_key(), p.steps, p.width, p.height)
        groups.setdefault(key, []).append(job)
    for members in groups.values():
        out += _shared_batches(members)
    return out


def _shared_batches(jobs: list[RenderJob]) -> list[Batch]:
    shared = jobs[0].shared
    ids = [(m.panel.index, m.seed) for m in shared.identity]
    asked = {(j.panel.index, j.seed): j for j in jobs}
    readers = [j for j in jobs if (j.panel.index, j.seed) not in ids]
    slots = shared.group - len(ids)
    chunks = [readers[i:i + slots] for i in range(0, len(readers), slots)] or [[]]
    batches = []
    for n, chunk in enumerate(chunks):
        identity = [Item(m.panel, m.seed, m.references, m.rate, asked.get((m.panel.index, m.seed)) if n == 0 else None)
                    for m in shared.identity]
        items = [Item(j.panel, j.seed, j.references, j.shared.rate, j) for j in chunk]
        if items:
            pad = Item(items[-1].panel, items[-1].seed, items[-1].references, items[-1].rate, None)
        else:  # only identity images asked for: a reader slot still runs (the same shape always)
            m = shared.identity[0]
            pad = Item(m.panel, m.seed, m.references, m.rate, None)
        items += [pad] * (slots - len(items))
        batches.append(Batch(identity + items, len(identity), shared.layers, shared.from_step))
    return batches


def denoise_batch(
    unet,
    latents,
    guidances: Sequence[Guidance],
    steps: int,
    device: str,
    dtype,
    ip_kwargs: dict | None = None,
    layout=None,
    denoising_strength: float = 1.0,
    start_noise=None,
    on_step: Callable[[int, int], None] | None = None,
    counter: CallCounter | None = None,
):
    """sampling.denoise for n images at once: latents [n, 4, h, w], one Guidance each. The
    batch runs guided when any image is (an image with cfg 1 then gets uncond + 1 * (cond -
    uncond)). With `ip_kwargs` the UNet runs through ipadapter.unet_forward; with a ShareLayout
    its `step` is set before every call (the hooks read it). For one image with neither, the
    same operations as sampling.denoise, in the same order."""
    import torch

    from kolorsc.engines.kolors.ipadapter import unet_forward

    scheduler = kolors_scheduler()
    scheduler.set_timesteps(steps, denoising_strength)
    if denoising_strength < 1.0:
        latents = scheduler.add_noise(latents, start_noise, timestep=scheduler.timesteps[0])

    guided = any(g.cfg != 1.0 for g in guidances)
    emb = _stack([g.positive for g in guidances] + ([g.negative for g in guidances] if guided else []), device, dtype)
    n = len(guidances)
    height, width = latents.shape[2] * 8, latents.shape[3] * 8
    add_time_id = torch.tensor([height, width, 0, 0, height, width], device=device).repeat(emb.sequence.shape[0])

    total = len(scheduler.timesteps)
    with torch.no_grad():
        for i, timestep in enumerate(scheduler.timesteps):
            timestep = timestep.unsqueeze(0).to(device)
            sample = torch.cat([latents, latents]) if guided else latents
            if layout is not None:
                layout.step = i
            kwargs = {"sample": sample, "timestep": timestep, "encoder_hidden_states": emb.sequence,
                      "add_time_id": add_time_id, "add_text_embeds": emb.pooled}
            out = unet(**kwargs) if ip_kwargs is None else unet_forward(unet, ipadapter_kwargs_list=ip_kwargs, **kwargs)
            if counter is not None:
                counter.add("unet")
            if guided:
                cond, uncond = out.chunk(2)
                noise_pred = torch.cat([uncond[j:j + 1] + guidances[j].cfg * (cond[j:j + 1] - uncond[j:j + 1]) for j in range(n)])
            else:
                noise_pred = out
            latents = scheduler.step(noise_pred, timestep, latents)
            if on_step:
                on_step(i + 1, total)
    return latents


def _stack(embeddings: list[Embedding], device: str, dtype) -> Embedding:
    import torch

    return Embedding(
        torch.cat([e.sequence for e in embeddings]).to(device=device, dtype=dtype),
        torch.cat([e.pooled for e in embeddings]).to(device=device, dtype=dtype),
    )
