"""README.md of the bundle (the model card) and the human-readable prompts.md."""

from __future__ import annotations

import json

from kolorsc.emit.comfyui import CHATGLM_FILE, NODE_PACK, UNET_FILE, VAE_FILE
from kolorsc.emit.common import comfyui_strength, engine_label, fmt_score, gate_line, image_name, lora_filename
from kolorsc.results import StoryResult

PREVIEW_MARKER = "PREVIEW-NOT-A-SUBMISSION.txt"
PREVIEW_TEXT = (
    "THIS BUNDLE IS A PREVIEW AND NOT A VALID SUBMISSION.\n"
    "本压缩包是预览稿，不是有效的参赛作品。\n\n"
    "Its images were drawn by kolorsc's `preview` engine (drafts showing the prompt and settings),\n"
    "not by Kolors. Build the story with the kolors engine to make a submission:\n"
    "    kolorsc build <story>.yaml --engine kolors\n"
)


def _lora_section(result: StoryResult) -> list[str]:
    lora = result.lora
    story = result.story
    if lora is None:
        if story.style.lora is not None:
            why = ("The style defines a LoRA, but this build has no LoRA file (preview builds do not train it).",
                   "Build with `--engine kolors` to train it and include it here.")
        else:
            why = ("This story renders without a LoRA: the style has no `lora:`.",
                   "The challenge requires one: add `lora:` to the style before submitting.")
        return ["## LoRA", "", *why, ""]
    rank = lora.rank if lora.rank is not None else "unknown"
    alpha = lora.alpha if lora.alpha is not None else "unknown"
    lines = [
        "## LoRA",
        "",
        f"- File: `lora/{lora_filename(result)}` (kohya-style `.safetensors`, `lora_down`/`lora_up` keys)",
        f"- Style: {story.style.name} (`{story.style.id}`) — trigger: {story.style.trigger}",
        f"- Base model: [{story.style.base_model}](https://huggingface.co/{story.style.base_model}) (UNet LoRA)",
        f"- Rank {rank}, alpha {alpha}; content key `{lora.key}`",
        f"- {'Trained by kolorsc for this story.' if lora.trained else 'Reused from the style (not trained in this build).'}",
        "",
    ]
    if story.style.description:
        lines += [story.style.description, ""]
    if lora.info:
        lines += ["### How it was trained", "", "```json", json.dumps(lora.info, ensure_ascii=False, sort_keys=True, indent=2), "```", ""]
    lines += [
        "### Scale: what the number means",
        "",
        f"kolorsc renders at `scale` = **{lora.scale}**, which is DiffSynth-Studio's `load_lora(..., lora_alpha=scale)`",
        "multiplier: W += scale · B·A (the trained alpha/rank ratio is NOT applied). ComfyUI's",
        "`strength` applies strength · (alpha/rank) · B·A, so the same effect is",
        f"strength = scale · rank / alpha = **{comfyui_strength(result)}** (used in `workflow_comfyui.json`).",
        "",
    ]
    return lines


def _usage_section(result: StoryResult) -> list[str]:
    name = lora_filename(result) or "<your-lora>.safetensors"
    scale = result.lora.scale if result.lora else 2.0
    first = result.panels[0] if result.panels else None
    prompt = first.panel.prompt if first else "..."
    negative = first.panel.negative if first else ""
    seed = first.seed if first else 0
    steps = first.panel.steps if first else 50
    cfg = first.panel.cfg if first else 4.0
    width, height = (first.panel.width, first.panel.height) if first else (1024, 1024)
    return [
        "## How to use it",
        "",
        "### DiffSynth-Studio (1.1.x, what kolorsc uses)",
        "",
        "```python",
        "import torch",
        "from diffsynth import ModelManager, SDXLImagePipeline",
        "",
        'mm = ModelManager(torch_dtype=torch.float16, device="cuda", file_path_list=[',
        '    "models/kolors/Kolors/text_encoder",',
        '    "models/kolors/Kolors/unet/diffusion_pytorch_model.safetensors",',
        '    "models/kolors/Kolors/vae/diffusion_pytorch_model.safetensors",',
        "])",
        f'mm.load_lora("lora/{name}", lora_alpha={scale})',
        "pipe = SDXLImagePipeline.from_model_manager(mm)",
        f"torch.manual_seed({seed})",
        f"image = pipe(prompt={json.dumps(prompt, ensure_ascii=False)},",
        f"             negative_prompt={json.dumps(negative, ensure_ascii=False)},",
        f"             cfg_scale={cfg}, num_inference_steps={steps}, height={height}, width={width})",
        "```",
        "",
        "Every panel's exact prompt, negative, seed, steps, cfg and size are in `prompts.json`",
        "(readable copy: `prompts.md`).",
        "",
        "### ComfyUI",
        "",
        "`workflow_comfyui.json` is an API-format workflow rendering all eight panels in one queue. It needs",
        f"the node pack [ComfyUI-Kolors-MZ]({NODE_PACK}) (ComfyUI has no built-in loader for Kolors'",
        "ChatGLM3 text encoder) and these files:",
        "",
        f"- `models/unet/{UNET_FILE}` — Kwai-Kolors/Kolors `unet/`",
        f"- `models/LLM/{CHATGLM_FILE}` — Kijai/ChatGLM3-safetensors",
        f"- `models/vae/{VAE_FILE}` — Kwai-Kolors/Kolors `vae/` (the SDXL VAE)",
        f"- `models/loras/{name}` — `lora/{name}` from this bundle",
        "",
        "Drop the file onto the ComfyUI page (the frontend opens API-format workflows) or send it",
        "to the API (`POST /prompt` with `{\"prompt\": <file contents>}`). ComfyUI draws its noise differently from DiffSynth, so images match",
        "in content and style but not pixel for pixel; the optional refine pass is not included.",
        "",
    ]


def model_card(result: StoryResult) -> str:
    story = result.story
    lines: list[str] = [f"# {story.bundle_name}", ""]
    if result.preview:
        lines += [
            "> **PREVIEW — NOT A VALID SUBMISSION.** 预览稿，不是有效的参赛作品。",
            "> The images are drafts drawn by kolorsc's `preview` engine, not by Kolors.",
            f"> See `{PREVIEW_MARKER}`.",
            "",
        ]
    lines += [
        f"**{story.title}** — an eight-panel story by team **{story.team}** for the",
        "可图Kolors-LoRA 风格故事挑战赛, compiled by kolorsc from `" + story.path.name + "`.",
        "",
    ]
    if story.description:
        lines += [story.description, ""]
    lines += ["## Panels", "", "| # | image | caption | seed |", "|---|---|---|---|"]
    for pr in result.panels:
        caption = pr.panel.caption.replace("|", "\\|")
        lines.append(f"| {pr.panel.index} | `images/{image_name(pr.panel.index)}` | {caption} | {pr.seed} |")
    lines.append("")
    lines += _lora_section(result)
    lines += _usage_section(result)
    s = result.scores
    lines += [
        "## Scores",
        "",
        f"- Gate: {gate_line(result)}",
        f"- Mean coherence: {fmt_score(s.coherence_mean)}; mean prompt alignment: {fmt_score(s.alignment_mean)}",
        f"- Scorers: {json.dumps(s.scorer, ensure_ascii=False, sort_keys=True) if s.scorer else 'none'}",
        "- Per panel and per candidate: `scores.json`",
        "",
        "## Contents",
        "",
        "- `images/01.png` … `08.png` — the eight panels (generation parameters in PNG text chunks)",
    ]
    if result.lora is not None:
        lines.append(f"- `lora/{lora_filename(result)}` — the LoRA")
    lines += [
        "- `prompts.json`, `prompts.md` — prompts and settings to reproduce every panel",
        "- `scores.json` — scores",
        "- `workflow_comfyui.json` — ComfyUI workflow",
    ]
    if result.preview:
        lines.append(f"- `{PREVIEW_MARKER}` — this bundle is a preview")
    lines += ["", f"Engine: `{engine_label(result)}` {json.dumps(result.engine, ensure_ascii=False, sort_keys=True)}", ""]
    return "\n".join(lines)


def prompts_md(result: StoryResult) -> str:
    lines = [f"# Prompts — {result.story.title}", ""]
    if result.preview:
        lines += ["**PREVIEW — not a valid submission.**", ""]
    lora = f"LoRA `{lora_filename(result)}` at scale {result.lora.scale}" if result.lora else "no LoRA"
    lines += [f"Base model {result.story.style.base_model}, {lora}.", ""]
    for pr in result.panels:
        p = pr.panel
        lines += [
            f"## {p.index}. {p.caption}",
            "",
            f"- image: `images/{image_name(p.index)}`",
            f"- prompt: {p.prompt}",
            f"- negative: {p.negative}",
            f"- seed: {pr.seed}, steps: {p.steps}, cfg: {p.cfg}, size: {p.width}×{p.height}",
        ]
        if p.refine is not None:
            lines.append(f"- refine: ×{p.refine.scale}, strength {p.refine.strength}, steps {p.refine.steps or p.steps}")
        lines.append("")
    return "\n".join(lines)
