"""The kolors engine's consistency parts: reference pictures through Kolors-IP-Adapter-Plus
(ipadapter.py) and batches that share attention (batch.py, shared_attention.py).

A mixin of KolorsEngine: it uses the engine's models directory, memory plan, embedding cache,
loaders and event log, and adds the image encoder and the adapter to what the memory plan
loads and releases:

    encode_pictures     image-encoder hidden states of every distinct picture (cached by hash);
                        low memory: loaded after the text encoder is released
    _project_pictures   per-layer keys/values of each picture, once per engine; low memory:
                        the adapter's weights are released right after
    _render_batch       one batch of batch.plan_batches: denoise together, decode each image
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from kolorsc import models
from kolorsc.engines.base import Progress, RenderJob
from kolorsc.engines.kolors import batch as batching
from kolorsc.engines.kolors import sampling


class ConsistencyParts:
    def _image_encoder_folder(self) -> Path:
        from kolorsc.engines.kolors.ipadapter import IMAGE_ENCODER_DIR

        return models.IP_ADAPTER.folder(self.models_dir) / IMAGE_ENCODER_DIR

    def encode_pictures(self, jobs: Sequence[RenderJob], progress: Progress | None = None) -> dict:
        """Image-encoder hidden states of every distinct reference picture of the jobs (and of
        the zero picture), from the cache, else one image-encoder pass each. {} without pictures."""
        from kolorsc.engines.kolors import ipadapter

        wanted = {r.sha256: r.image for j in jobs for r in pictures_of(j)}
        if not wanted:
            return {}
        wanted[ipadapter.ZEROS] = None
        encoder_id = ipadapter.encoder_identity(self._image_encoder_folder(), self.dtype)
        out = {}
        todo = []
        for sha, data in wanted.items():
            cached = self.embeddings.get_tensors(ipadapter.embedding_key(sha, encoder_id), ("hidden",))
            if cached is None:
                todo.append((sha, data))
            else:
                out[sha] = cached["hidden"]
        if todo:
            if self.image_encoder is None:
                if self.plan.low_memory:
                    self._release("text_encoder", "unet", "vae")
                self.image_encoder = self._guard("load", ipadapter.load_image_encoder, self._image_encoder_folder(),
                                                 self.dtype, self.device)
                self.events.append("load image_encoder")
            for i, (sha, data) in enumerate(todo):
                if progress:
                    progress(i, len(todo), "encoding reference pictures")
                hidden = self._guard("encode", ipadapter.encode_picture, self.image_encoder, data)
                self.calls.add("image_encoder")
                self.embeddings.put_tensors(ipadapter.embedding_key(sha, encoder_id), {"hidden": hidden})
                out[sha] = hidden
        return out

    def _project_pictures(self, pictures: dict) -> None:
        """Per-layer keys/values of every picture not projected yet; in the low-memory plan the
        adapter's 1 GB of weights go right after (what denoising needs is a few MB per picture)."""
        from kolorsc.engines.kolors import ipadapter

        todo = {sha: hidden for sha, hidden in pictures.items() if sha not in self._picture_kv}
        if not todo:
            return
        if self.adapter is None:
            path = models.IP_ADAPTER.folder(self.models_dir) / ipadapter.ADAPTER_FILE
            self.adapter = self._guard("load", ipadapter.load_adapter, path, self.unet, self.dtype, self.device)
            self._adapter_layers = [layer for layer, _, _ in self.adapter.layers]
            self.events.append("load ip_adapter")
        for sha, hidden in todo.items():
            self._picture_kv[sha] = self._guard("encode", ipadapter.project, self.adapter, hidden)
            self.calls.add("projections")
        if self.plan.low_memory:
            self._release("adapter")

    def _ip_kwargs(self, references: list, guided: bool):
        from kolorsc.engines.kolors import ipadapter

        if not any(references):
            return None
        cond = [[ipadapter.Slot(self._picture_kv[r.sha256], r.scale) for r in refs] for refs in references]
        return ipadapter.ipadapter_kwargs_list(self._adapter_layers, cond, self._picture_kv[ipadapter.ZEROS], guided, self.dtype)

    def _render_batch(self, batch, embeddings, on_step):
        """Denoise a batch together (batch.py), then decode (and refine) each image that was
        asked for. Yields (job, image, progress steps it completes)."""
        import contextlib

        import torch

        from kolorsc.engines.kolors import ipadapter, shared_attention
        from kolorsc.engines.kolors.unet_parts import self_attention_layers

        items = batch.items
        guidances = [sampling.Guidance(embeddings[it.panel.prompt], embeddings[it.panel.negative], float(it.panel.cfg))
                     for it in items]
        guided = any(g.cfg != 1.0 for g in guidances)  # as batch.denoise_batch decides
        height, width = sampling.round_size(items[0].panel.height), sampling.round_size(items[0].panel.width)
        noise = torch.cat([sampling.make_noise(it.seed, height, width, self.device, self.dtype) for it in items])
        ip_kwargs = self._ip_kwargs([it.references for it in items], guided)
        layout = None
        with contextlib.ExitStack() as stack:
            if ip_kwargs is not None:
                stack.enter_context(ipadapter.installed(self.unet, self._adapter_layers))
            if batch.identity:
                layout = shared_attention.ShareLayout(
                    identity=batch.identity, rates=[it.rate for it in items],
                    identity_ids=[(it.panel.index, it.seed) for it in items[:batch.identity]],
                    guided=guided, from_step=batch.from_step)
                stack.enter_context(shared_attention.installed(self_attention_layers(self.unet, batch.layers), layout))
            latents = self._guard(
                "denoise", batching.denoise_batch, self.unet, noise, guidances, batch.steps, self.device, self.dtype,
                ip_kwargs, layout, 1.0, None, on_step, self.calls,
            )
        first = True
        for i, it in enumerate(items):
            if it.job is None:
                continue
            image = self._guard("decode", sampling.decode, self.vae.decoder, latents[i:i + 1], self.calls)
            steps = (batch.steps if first else 0) + self._refine_steps(it.panel)
            first = False
            if it.panel.refine is not None:
                single = self._ip_kwargs([it.references], guidances[i].cfg != 1.0)
                image = self._refine(it.job, image, guidances[i], on_step, single)
            yield it.job, image, steps


def pictures_of(job: RenderJob):
    """Every reference picture a job needs: its own and its identity images'."""
    members = job.shared.identity if job.shared else ()
    return [r for refs in (job.references, *(m.references for m in members)) for r in refs]
