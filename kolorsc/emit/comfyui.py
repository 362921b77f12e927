"""A ComfyUI workflow (API format) that renders all eight panels with the exported LoRA.

ComfyUI's core has no loader for Kolors' ChatGLM3 text encoder, so the graph uses the
MinusZoneAI/ComfyUI-Kolors-MZ node pack (MZ_KolorsUNETLoaderV2, MZ_ChatGLM3Loader,
MZ_ChatGLM3_V2) with ComfyUI's core LoraLoaderModelOnly, KSampler, VAELoader, VAEDecode,
SaveImage. Node input names were checked against that pack's __init__.py.

Decision: ONE graph with shared loaders and eight branches (encode +/-, latent, sample,
decode, save), so one "Queue Prompt" renders the whole story. API format is a flat
{node_id: {class_type, inputs, _meta}} map; ComfyUI rejects extra top-level keys, so notes
live in node titles and in the model card.

Not reproduced: the optional refine pass, and bit-identical pixels (ComfyUI draws its noise
differently from diffsynth); the sampler is DDIM like diffsynth's Kolors scheduler.
"""

from __future__ import annotations

from kolorsc.emit.common import comfyui_strength, lora_filename
from kolorsc.results import StoryResult

NODE_PACK = "https://github.com/MinusZoneAI/ComfyUI-Kolors-MZ"
UNET_FILE = "diffusion_pytorch_model.fp16.safetensors"  # Kwai-Kolors/Kolors unet/, in models/unet/
CHATGLM_FILE = "chatglm3-fp16.safetensors"  # Kijai/ChatGLM3-safetensors, in models/LLM/
VAE_FILE = "sdxl_vae.safetensors"  # Kwai-Kolors/Kolors vae/ (the SDXL VAE), in models/vae/
SAMPLER = "ddim"
SCHEDULER = "ddim_uniform"


def _node(class_type: str, inputs: dict, title: str) -> dict:
    return {"class_type": class_type, "inputs": inputs, "_meta": {"title": title}}


def comfyui_workflow(result: StoryResult) -> dict:
    """The API-format workflow as a dict (json.dumps it with sort_keys for stable bytes)."""
    graph: dict[str, dict] = {
        "1": _node("MZ_KolorsUNETLoaderV2", {"unet_name": UNET_FILE}, "Kolors UNet (ComfyUI-Kolors-MZ)"),
        "2": _node("MZ_ChatGLM3Loader", {"chatglm3_checkpoint": CHATGLM_FILE}, "ChatGLM3 text encoder (ComfyUI-Kolors-MZ)"),
        "3": _node("VAELoader", {"vae_name": VAE_FILE}, "Kolors VAE"),
    }
    model = ["1", 0]
    if result.lora is not None:
        strength = comfyui_strength(result)
        graph["4"] = _node(
            "LoraLoaderModelOnly",
            {"model": ["1", 0], "lora_name": lora_filename(result), "strength_model": strength},
            f"{result.story.style.name} LoRA: strength {strength} = kolorsc scale {result.lora.scale} x rank/alpha",
        )
        model = ["4", 0]

    for pr in result.panels:
        p = pr.panel
        base = 10 * p.index  # panel k uses ids 10k..10k+5: readable and stable
        pos, neg, latent, sample, decode, save = (str(base + i) for i in range(6))
        label = f"panel {p.index:02d}"
        graph[pos] = _node("MZ_ChatGLM3_V2", {"chatglm3_model": ["2", 0], "text": p.prompt}, f"{label} prompt")
        graph[neg] = _node("MZ_ChatGLM3_V2", {"chatglm3_model": ["2", 0], "text": p.negative}, f"{label} negative")
        graph[latent] = _node(
            "EmptyLatentImage", {"width": p.width, "height": p.height, "batch_size": 1}, f"{label} size"
        )
        graph[sample] = _node(
            "KSampler",
            {
                "model": model,
                "seed": pr.seed,
                "steps": p.steps,
                "cfg": p.cfg,
                "sampler_name": SAMPLER,
                "scheduler": SCHEDULER,
                "positive": [pos, 0],
                "negative": [neg, 0],
                "latent_image": [latent, 0],
                "denoise": 1.0,
            },
            f"{label} sampler (seed {pr.seed})",
        )
        graph[decode] = _node("VAEDecode", {"samples": [sample, 0], "vae": ["3", 0]}, f"{label} decode")
        graph[save] = _node(
            "SaveImage", {"images": [decode, 0], "filename_prefix": f"{result.story.id}/{p.index:02d}"}, f"{label} save"
        )
    return graph
