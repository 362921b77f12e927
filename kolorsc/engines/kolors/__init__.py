"""The `kolors` engine: Kolors (ChatGLM3 text encoder, SDXL-architecture UNet, SDXL VAE) on
diffsynth 1.1.x. Modules: device (where it runs, memory plan), loading (ModelManager with
checks), encoding (prompts and the embedding cache), sampling (scheduler, batched guidance,
decode, refine), lora_merge (W += scale * up @ down), engine (the Engine implementation).
Character consistency: ipadapter (Kolors-IP-Adapter-Plus: image encoder, adapter file,
per-layer keys/values), resampler (its Plus projection), shared_attention (StoryDiffusion's
shared self-attention hook), unet_parts (down/mid/up attention layers), batch (which images
denoise together, and the batched loop), consistent (the engine's parts that run them).

Importing this package is light; torch and diffsynth load when the engine first works.
"""

from kolorsc.engines.kolors.engine import KolorsEngine  # noqa: F401
