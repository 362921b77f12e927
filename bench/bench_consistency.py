"""Consistency at full size on random weights of the real layouts (run by hand, not in CI).

    python bench/bench_consistency.py write   --root /work/bench-models   # ~14 GB of files, once
    python bench/bench_consistency.py compare --root /work/bench-models   # kolorsc vs diffusers' KolorsPipeline
    python bench/bench_consistency.py cost    --root /work/bench-models   # adapter cost per panel, encoder calls
    python bench/bench_consistency.py unetcost --root /work/bench-models  # one UNet pass with/without pictures
    python bench/bench_consistency.py memory  --root /work/bench-models   # shared attention: memory per panel

`write` puts, under `<root>/models-ip/`, the Kolors UNet and VAE (random, diffusers' own init
from ../shared/kolors-configs, diffusers key names: what diffsynth's ModelManager recognises),
a tiny ChatGLM text encoder (the prompts' embeddings are given directly to both sides, at the
real 4096 width), and Kwai-Kolors/Kolors-IP-Adapter-Plus: `ip_adapter_plus_general.bin`
(fp16 torch zip, the IP-Adapter-Plus key names and the Kolors shapes: resampler 1024 -> 2048,
12 heads of 64, 4 layers, 16 queries; to_k_ip/to_v_ip for the UNet's 70 cross-attention
layers) and `image_encoder/` (a random CLIPModel with OpenAI CLIP ViT-L/14-336's config).
diffusers is not a kolorsc dependency: `pip install --target <root>/pydeps diffusers==0.35.2
--no-deps`; this script puts <root>/pydeps on sys.path.

`compare` renders the same panels with kolorsc's engine and with diffusers' KolorsPipeline +
load_ip_adapter on the same files: same prompt embeddings, same initial noise, same
timesteps (diffsynth's DDIM over 1100 training steps equals diffusers' EulerDiscreteScheduler
given the same timesteps: both are the Euler step of the probability-flow ODE), one reference
picture, then two (diffusers loads the adapter twice, one scale each). Every process holding
the 10 GB fp32 UNet runs under `flock /tmp/kolorsc-bigmem.lock`.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent
sys.path[:0] = [str(REPO_ROOT), str(REPO_ROOT / "tests"), str(HERE)]
CONFIGS = Path(os.environ.get("KOLORS_CONFIGS", "/work/shared/kolors-configs"))
KOLORS = "Kwai-Kolors/Kolors"
IP = "Kwai-Kolors/Kolors-IP-Adapter-Plus"
LOCK = "/tmp/kolorsc-bigmem.lock"

# OpenAI CLIP ViT-L/14-336 (the release's image_encoder/config.json is this model's config)
CLIP_L_336 = {
    "model_type": "clip",
    "projection_dim": 768,
    "logit_scale_init_value": 2.6592,
    "text_config": {"vocab_size": 49408, "hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12,
                    "num_attention_heads": 12, "max_position_embeddings": 77, "projection_dim": 768, "hidden_act": "quick_gelu"},
    "vision_config": {"hidden_size": 1024, "intermediate_size": 4096, "num_hidden_layers": 24, "num_attention_heads": 16,
                      "image_size": 336, "patch_size": 14, "projection_dim": 768, "hidden_act": "quick_gelu"},
}
RESAMPLER = {"embedding_dim": 1024, "dim": 2048, "heads": 12, "depth": 4, "queries": 16, "output_dim": 2048, "ff_mult": 4}


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def models_dir(root: Path) -> Path:
    return Path(root) / "models-ip"


# -- write ----------------------------------------------------------------------------------


def write_adapter(path: Path, unet_config: dict) -> None:
    """Random weights in the exact format and shapes of Kwai's ip_adapter_plus_general.bin."""
    if path.exists():
        return
    import torch

    g = torch.Generator().manual_seed(21)
    r = RESAMPLER
    inner = 64 * r["heads"]

    def lin(out_f, in_f):
        return (torch.randn(out_f, in_f, generator=g) * in_f ** -0.5).half()

    proj = {"latents": (torch.randn(1, r["queries"], r["dim"], generator=g) / r["dim"] ** 0.5).half(),
            "proj_in.weight": lin(r["dim"], r["embedding_dim"]), "proj_in.bias": torch.zeros(r["dim"]).half(),
            "proj_out.weight": lin(r["output_dim"], r["dim"]), "proj_out.bias": torch.zeros(r["output_dim"]).half(),
            "norm_out.weight": torch.ones(r["output_dim"]).half(), "norm_out.bias": torch.zeros(r["output_dim"]).half()}
    for i in range(r["depth"]):
        d = r["dim"]
        proj.update({
            f"layers.{i}.0.norm1.weight": torch.ones(d).half(), f"layers.{i}.0.norm1.bias": torch.zeros(d).half(),
            f"layers.{i}.0.norm2.weight": torch.ones(d).half(), f"layers.{i}.0.norm2.bias": torch.zeros(d).half(),
            f"layers.{i}.0.to_q.weight": lin(inner, d), f"layers.{i}.0.to_kv.weight": lin(2 * inner, d),
            f"layers.{i}.0.to_out.weight": lin(d, inner),
            f"layers.{i}.1.0.weight": torch.ones(d).half(), f"layers.{i}.1.0.bias": torch.zeros(d).half(),
            f"layers.{i}.1.1.weight": lin(d * r["ff_mult"], d), f"layers.{i}.1.3.weight": lin(d, d * r["ff_mult"]),
        })
    ip = {}
    for n, width in enumerate(cross_attention_widths(unet_config)):
        ip[f"{2 * n + 1}.to_k_ip.weight"] = lin(width, r["output_dim"])
        ip[f"{2 * n + 1}.to_v_ip.weight"] = lin(width, r["output_dim"])
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"image_proj": proj, "ip_adapter": ip}, str(path) + ".partial")
    os.replace(str(path) + ".partial", path)
    print(f"adapter: {len(proj)} + {len(ip)} tensors, {path.stat().st_size / 1e9:.2f} GB", flush=True)


def cross_attention_widths(config: dict) -> list[int]:
    """Width of each cross-attention layer in diffusers' processor order (down, up, mid)."""
    channels = config["block_out_channels"]
    per_block = config["transformer_layers_per_block"]
    widths = []
    for i, kind in enumerate(config["down_block_types"]):
        if kind.startswith("CrossAttn"):
            widths += [channels[i]] * (per_block[i] * config["layers_per_block"])
    rev_channels, rev_layers = list(reversed(channels)), list(reversed(per_block))
    for i, kind in enumerate(config["up_block_types"]):
        if kind.startswith("CrossAttn"):
            widths += [rev_channels[i]] * (rev_layers[i] * (config["layers_per_block"] + 1))
    widths += [channels[-1]] * per_block[-1]
    return widths


def write_image_encoder(folder: Path) -> None:
    if (folder / "pytorch_model.bin").exists():
        return
    import torch
    from transformers import CLIPConfig, CLIPModel

    torch.manual_seed(22)
    CLIPModel(CLIPConfig(**CLIP_L_336)).save_pretrained(str(folder), safe_serialization=False)
    print(f"image encoder: {(folder / 'pytorch_model.bin').stat().st_size / 1e9:.2f} GB", flush=True)


def cmd_write(args) -> None:
    from _kolors_fixtures import write_text_encoder
    from bench_kolors import write_unet, write_vae

    folder = models_dir(args.root) / KOLORS
    write_vae(folder)
    write_unet(folder)
    if not (folder / "text_encoder" / "config.json").exists():
        write_text_encoder(folder / "text_encoder")  # tiny: the prompts' embeddings are given at full width
    ip = models_dir(args.root) / IP
    write_image_encoder(ip / "image_encoder")
    write_adapter(ip / "ip_adapter_plus_general.bin", json.loads((CONFIGS / "unet_config.json").read_text()))
    from kolorsc import models

    report = models.verify(["kolors", "ip-adapter"], models_dir(args.root))
    print("verify:", report.ok, report.problems(), flush=True)


# -- the inputs both sides get ----------------------------------------------------------------


def pictures() -> list[bytes]:
    """Two reference pictures, not square (the processor resizes and crops them)."""
    import io

    from PIL import Image, ImageDraw

    out = []
    for k, colour in enumerate([(200, 40, 40), (40, 60, 200)]):
        im = Image.new("RGB", (420, 560), (235, 230, 220))
        d = ImageDraw.Draw(im)
        for y in range(0, 560, 14):
            d.line((0, y, 420, (y * 3 + k * 50) % 560), fill=(y % 255, 120, 80 + 60 * k), width=3)
        d.ellipse((130, 80, 290, 260), fill=(230, 190, 160))
        d.rectangle((100, 260, 320, 540), fill=colour)
        buf = io.BytesIO()
        im.save(buf, format="PNG")
        out.append(buf.getvalue())
    return out


def prompt_embeddings(seed: int = 5):
    """Random prompt/negative embeddings at Kolors' width: [1, 256, 4096] and pooled [1, 4096]."""
    import torch

    g = torch.Generator().manual_seed(seed)
    return {name: (torch.randn(1, 256, 4096, generator=g) * 0.5, torch.randn(1, 4096, generator=g) * 0.5)
            for name in ("prompt", "negative")}


CASES = {  # name -> reference scales (one picture each)
    "one": [0.5],
    "two": [0.6, 0.4],
}


def kolorsc_engine(root: Path, cache: Path, low_memory: bool = False, loader=None):
    from kolorsc.engines.kolors import KolorsEngine
    from kolorsc.engines.kolors.encoding import Embedding, embedding_key

    engine = KolorsEngine(models_dir=models_dir(root), device="cpu", cache_dir=cache, low_memory=low_memory,
                          model_loader=loader)
    emb = prompt_embeddings()
    encoder_id = engine._text_encoder_id()
    for text, (seq, pooled) in (("PROMPT", emb["prompt"]), ("NEGATIVE", emb["negative"])):
        engine.embeddings.put(embedding_key(text, encoder_id), Embedding(seq, pooled))  # no text encoder runs
    return engine


def panel(index=1, seed=7, size=256, steps=3, cfg=4.0):
    from kolorsc.prompts import Panel

    return Panel(index=index, caption=f"p{index}", prompt="PROMPT", negative="NEGATIVE", seed=seed, steps=steps,
                 cfg=cfg, width=size, height=size)


def references(scales):
    import hashlib

    from kolorsc.engines.base import Reference

    pics = pictures()
    return tuple(Reference(f"c{i}", hashlib.sha256(pics[i]).hexdigest(), s, pics[i]) for i, s in enumerate(scales))


# -- compare ----------------------------------------------------------------------------------


def side_kolorsc(args, out: Path) -> dict:
    import torch

    from kolorsc.engines.base import RenderJob
    from kolorsc.engines.kolors import batch, sampling

    captured = {}
    real_decode = sampling.decode

    def capture(decoder, latents, counter=None):  # the final latents, before the VAE
        captured["latents"] = latents.detach().clone()
        return real_decode(decoder, latents, counter)

    sampling.decode = capture
    engine = kolorsc_engine(args.root, out / "kolorsc-cache")
    result = {}
    for name, scales in CASES.items():
        job = RenderJob(panel(size=args.size, steps=args.steps), 7, references(scales))
        t0 = time.perf_counter()
        [(_, image)] = list(engine.render([job], None))
        result[name] = time.perf_counter() - t0
        image.save(out / f"kolorsc-{name}.png")
        torch.save(captured["latents"], out / f"kolorsc-{name}.pt")
    _ = batch
    result["events"] = engine.events
    return result


def side_diffusers(args, out: Path) -> dict:
    import io

    import torch
    from diffusers import (
        AutoencoderKL,
        EulerDiscreteScheduler,
        KolorsPipeline,
        UNet2DConditionModel,
    )
    from PIL import Image
    from transformers import CLIPImageProcessor, CLIPVisionModelWithProjection

    from kolorsc.engines.kolors import sampling

    folder = models_dir(args.root) / KOLORS
    ip = models_dir(args.root) / IP
    unet = UNet2DConditionModel.from_pretrained(str(folder / "unet"), torch_dtype=torch.float32)
    vae = AutoencoderKL.from_pretrained(str(folder / "vae"), torch_dtype=torch.float32)
    image_encoder = CLIPVisionModelWithProjection.from_pretrained(str(ip / "image_encoder"), torch_dtype=torch.float32)
    scheduler = EulerDiscreteScheduler(num_train_timesteps=1100, beta_start=0.00085, beta_end=0.014, beta_schedule="scaled_linear",
                                       timestep_spacing="leading", steps_offset=1, prediction_type="epsilon")
    ddim = sampling.kolors_scheduler()
    ddim.set_timesteps(args.steps)
    timesteps = [int(t) for t in ddim.timesteps]
    emb = prompt_embeddings()
    noise = sampling.make_noise(7, args.size, args.size, "cpu", torch.float32)
    pics = [Image.open(io.BytesIO(p)).convert("RGB") for p in pictures()]
    result = {}
    for name, scales in CASES.items():
        pipe = KolorsPipeline(vae=vae, text_encoder=None, tokenizer=None, unet=unet, scheduler=scheduler,
                              image_encoder=image_encoder, feature_extractor=CLIPImageProcessor(size=336, crop_size=336))
        pipe.load_ip_adapter([str(ip)] * len(scales), subfolder=[""] * len(scales),
                             weight_name=["ip_adapter_plus_general.bin"] * len(scales), image_encoder_folder=None)
        pipe.set_ip_adapter_scale(scales)
        common = {"prompt_embeds": emb["prompt"][0], "pooled_prompt_embeds": emb["prompt"][1],
                  "negative_prompt_embeds": emb["negative"][0], "negative_pooled_prompt_embeds": emb["negative"][1],
                  "ip_adapter_image": [pics[i] for i in range(len(scales))], "height": args.size, "width": args.size,
                  "timesteps": timesteps, "guidance_scale": 4.0, "latents": noise.clone()}
        t0 = time.perf_counter()
        latents = pipe(**common, output_type="latent").images
        result[name] = time.perf_counter() - t0
        torch.save(latents, out / f"diffusers-{name}.pt")
        image = pipe.vae.decode(latents / pipe.vae.config.scaling_factor).sample
        array = image[0].float().permute(1, 2, 0).detach().numpy()
        import numpy as np

        Image.fromarray(((array / 2 + 0.5).clip(0, 1) * 255).astype(np.uint8)).save(out / f"diffusers-{name}.png")
        pipe.unload_ip_adapter()
        # diffusers 0.35.2: unloading leaves `text_encoder_hid_proj = None` behind, and the next
        # load_ip_adapter then drops Kolors' text projection (it only saves it when the attribute
        # is absent). Remove the leftover so a second load keeps it.
        if getattr(unet, "text_encoder_hid_proj", "absent") is None:
            del unet.text_encoder_hid_proj
    return result


def cmd_side(args) -> None:
    import contextlib
    import io

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with contextlib.redirect_stdout(io.StringIO()):
        result = (side_diffusers if args.which == "diffusers" else side_kolorsc)(args, out)
    result["peak_rss_gb"] = peak_rss_gb()
    (out / f"{args.which}.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result), flush=True)


def cmd_compare(args) -> None:
    import numpy as np
    import torch
    from PIL import Image

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    summary = {"size": args.size, "steps": args.steps}
    for which in args.sides.split(","):
        cmd = ["flock", LOCK, sys.executable, __file__, "--pydeps", args.pydeps, "side", "--which", which,
               "--root", str(args.root), "--size", str(args.size), "--steps", str(args.steps), "--out", str(out)]
        print("running", which, flush=True)
        subprocess.run(cmd, check=True)
        summary[which] = json.loads((out / f"{which}.json").read_text())
    for name in CASES:
        a, b = torch.load(out / f"kolorsc-{name}.pt"), torch.load(out / f"diffusers-{name}.pt")
        pa = np.asarray(Image.open(out / f"kolorsc-{name}.png"), dtype=np.int16)
        pb = np.asarray(Image.open(out / f"diffusers-{name}.png"), dtype=np.int16)
        summary[name] = {
            "latents_max_abs_diff": float((a - b).abs().max()),
            "latents_rel_error": float((a - b).norm() / b.norm()),
            "latents_abs_max": float(b.abs().max()),
            "pixels_max_diff": int(np.abs(pa - pb).max()),
            "pixels_mean_diff": float(np.abs(pa - pb).mean()),
        }
    # the same comparison without any reference would tell how much is the two UNet codes
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))


# -- cost ------------------------------------------------------------------------------------


def cmd_cost(args) -> None:
    """Denoising time per panel with 0, 1 and 2 references (same engine, models resident), the
    image encoder's and the projections' one-off costs, and the call counts."""
    import torch

    from kolorsc.engines.base import RenderJob
    from kolorsc.engines.kolors import batch, sampling

    # Wall time on a shared machine measures the neighbours; the process's CPU time (all its
    # threads) is what the denoising itself cost. Both are recorded.
    timing = {"denoise": 0.0, "denoise_cpu": 0.0}

    def timed(fn):
        def wrapper(*a, **k):
            t0, c0 = time.perf_counter(), time.process_time()
            r = fn(*a, **k)
            timing["denoise"] += time.perf_counter() - t0
            timing["denoise_cpu"] += time.process_time() - c0
            return r
        return wrapper

    sampling.denoise = timed(sampling.denoise)
    batch.denoise_batch = timed(batch.denoise_batch)
    from kolorsc.engines.kolors import engine as engine_module

    engine_module.batching.denoise_batch = batch.denoise_batch
    out = Path(args.out)
    engine = kolorsc_engine(args.root, out / "cost-cache")
    torch.set_num_threads(args.threads)
    results = {"size": args.size, "steps": args.steps, "threads": torch.get_num_threads()}
    # warm-up: load everything, encode and project both pictures (their one-off costs)
    t0 = time.perf_counter()
    list(engine.render([RenderJob(panel(size=args.size, steps=1), 7, references([0.5, 0.5]))], None))
    results["first_render_s_incl_loading"] = time.perf_counter() - t0
    results["image_encoder_calls_first_render"] = engine.calls.image_encoder
    results["projections_first_render"] = engine.calls.projections
    cases = {"none": [], "one": [0.5], "two": [0.5, 0.5]}
    runs: dict[str, list[float]] = {k: [] for k in cases}
    cpu: dict[str, list[float]] = {k: [] for k in cases}
    unet_calls: dict[str, int] = {}
    for _ in range(args.repeats):
        for name, scales in cases.items():  # interleaved: machine load drifts alike
            timing["denoise"] = timing["denoise_cpu"] = 0.0
            before = engine.calls.unet
            list(engine.render([RenderJob(panel(size=args.size, steps=args.steps), 7, references(scales))], None))
            runs[name].append(timing["denoise"])
            cpu[name].append(timing["denoise_cpu"])
            unet_calls[name] = engine.calls.unet - before
    results["denoise_wall_s"] = runs
    results["denoise_cpu_s"] = cpu
    best = {k: min(v) for k, v in cpu.items()}
    results["denoise_cpu_best_s"] = best
    results["overhead_one_cpu"] = best["one"] / best["none"] - 1
    results["overhead_two_cpu"] = best["two"] / best["none"] - 1
    results["flops_per_step"] = ip_flops(args.size)
    results["unet_calls_per_panel"] = unet_calls
    results["image_encoder_calls_total"] = engine.calls.image_encoder
    results["peak_rss_gb"] = peak_rss_gb()
    (out / "cost.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


def cmd_unetcost(args) -> None:
    """One UNet pass (batch 2: cond + uncond), repeated and interleaved: plain (today's call),
    through the adapter path with no picture term (lets_dance_xl + kwargs at scale 0), with one
    picture and with two. Single-threaded and timed by the thread's CPU clock, so neighbours on
    the machine disturb it least; median and minimum of --repeats passes each."""
    import statistics

    import torch

    from kolorsc.engines.base import RenderJob
    from kolorsc.engines.kolors import ipadapter

    torch.set_num_threads(1)
    out = Path(args.out)
    engine = kolorsc_engine(args.root, out / "unetcost-cache")
    refs = references([0.5, 0.5])
    list(engine.render([RenderJob(panel(size=args.size, steps=1), 7, refs)], None))  # load, encode, project
    unet, layers = engine.unet, engine._adapter_layers
    g = torch.Generator().manual_seed(0)
    latent = args.size // 8
    sample = torch.randn(2, 4, latent, latent, generator=g)
    emb = prompt_embeddings()
    kwargs = {"sample": sample, "timestep": torch.tensor([500.0]),
              "encoder_hidden_states": torch.cat([emb["prompt"][0], emb["negative"][0]]),
              "add_time_id": torch.tensor([args.size, args.size, 0, 0, args.size, args.size]).repeat(2),
              "add_text_embeds": torch.cat([emb["prompt"][1], emb["negative"][1]])}

    def ip(scales):
        cond = [[ipadapter.Slot(engine._picture_kv[r.sha256], s) for r, s in zip(refs, scales)]]
        return ipadapter.ipadapter_kwargs_list(layers, cond, engine._picture_kv[ipadapter.ZEROS], True, torch.float32)

    cases = {"plain": None, "path_scale_0": ip([0.0]), "one": ip([0.5]), "two": ip([0.5, 0.5])}
    times: dict[str, list[float]] = {k: [] for k in cases}
    with torch.no_grad(), ipadapter.installed(unet, layers):
        for _ in range(args.repeats):
            for name, ipk in cases.items():
                t0 = time.thread_time()
                if ipk is None:
                    unet(**kwargs)
                else:
                    ipadapter.unet_forward(unet, ipadapter_kwargs_list=ipk, **kwargs)
                times[name].append(time.thread_time() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    best = {k: min(v) for k, v in times.items()}
    result = {"size": args.size, "repeats": args.repeats, "cpu_s": times, "median_s": med, "min_s": best,
              "overhead_median": {k: med[k] / med["plain"] - 1 for k in cases if k != "plain"},
              "overhead_min": {k: best[k] / best["plain"] - 1 for k in cases if k != "plain"},
              "flops": ip_flops(args.size)}
    (out / "unetcost.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


def ip_flops(size: int) -> dict:
    """Multiply-adds counted from the shapes: the extra IP-Adapter attention per UNet pass
    (q against 16 picture tokens, then their values, in each of the 70 cross-attention layers,
    batch 2) beside the cross-attention the layers already do over 256 text tokens. The UNet
    does far more than its cross-attentions, so the second ratio bounds the first from above."""
    config = json.loads((CONFIGS / "unet_config.json").read_text())
    widths = cross_attention_widths(config)
    latent = size // 8
    tokens = {640: (latent // 2) ** 2, 1280: (latent // 4) ** 2}  # SDXL: 640-wide layers at 1/2, 1280-wide at 1/4
    ip = sum(2 * 2 * tokens[w] * 16 * w for w in widths)  # QK^T and AV over 16 tokens, batch 2
    text = sum(2 * (2 * tokens[w] * 256 * w + 2 * tokens[w] * w * w + 2 * 256 * 2048 * w) for w in widths)
    return {"ip_macs": ip, "cross_attention_macs": text, "ip_over_cross_attention": ip / text}


# -- memory ----------------------------------------------------------------------------------


def cmd_activations(args) -> None:
    """Peak memory of one denoising step and of one decode at full size, fp16, counted by
    PyTorch's MemTracker on fake tensors (the real modules and shapes, no storage, no compute:
    it runs on any machine in a minute or two). Steps: plain panel; a shared-attention batch of
    n panels (the hook, identity 2 or 1); the IP-Adapter path with two pictures per panel.
    Attention is SDPA's memory-efficient kernel here as on a GPU (no N x N matrix)."""
    import torch
    from diffsynth.models.sdxl_unet import SDXLUNet
    from diffsynth.models.sdxl_vae_decoder import SDXLVAEDecoder
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.distributed._tools.mem_tracker import MemTracker

    from kolorsc.engines.kolors import ipadapter, shared_attention
    from kolorsc.engines.kolors.unet_parts import (
        cross_attention_order,
        self_attention_layers,
    )

    size, lat, dtype = args.size, args.size // 8, torch.float16
    shared_attention.token_sample = lambda n, rate, member, step: torch.arange(round(rate * n))  # shapes only
    gib = 2**30
    out: dict = {"size": size, "dtype": "float16"}
    with FakeTensorMode():
        torch.set_default_dtype(dtype)
        unet, decoder = SDXLUNet(is_kolors=True), SDXLVAEDecoder()
        torch.set_default_dtype(torch.float32)
        layers = cross_attention_order(unet)

        def peak(fn, *modules) -> dict:
            tracker = MemTracker()
            tracker.track_external(*modules)
            with tracker, torch.no_grad():
                fn()
            snap = tracker.get_tracker_snapshot("peak")
            cpu = next(iter(snap.values()))
            return {str(getattr(k, "value", k)).lower(): v / gib for k, v in cpu.items()}

        def step(n, share=False, pictures=0):
            batch = 2 * n

            def run():
                kw = {"sample": torch.randn(batch, 4, lat, lat, dtype=dtype), "timestep": torch.tensor([500.0]),
                      "encoder_hidden_states": torch.randn(batch, 256, 4096, dtype=dtype),
                      "add_time_id": torch.tensor([size, size, 0, 0, size, size]).repeat(batch),
                      "add_text_embeds": torch.randn(batch, 4096, dtype=dtype)}
                import contextlib

                with contextlib.ExitStack() as stack:
                    if share:
                        identity = min(2, n - 1)
                        layout = shared_attention.ShareLayout(identity, [0.5] * n, [(i, i) for i in range(identity)], True, 0)
                        layout.step = 1
                        stack.enter_context(shared_attention.installed(self_attention_layers(unet, "up"), layout))
                    if pictures:
                        kv = [(torch.randn(1, 16, unet.blocks[b].transformer_blocks[t].attn2.to_k.out_features, dtype=dtype),) * 2
                              for b, t in layers]
                        cond = [[ipadapter.Slot(kv, 0.5)] * pictures for _ in range(n)]
                        ipk = ipadapter.ipadapter_kwargs_list(layers, cond, kv, True, dtype)
                        stack.enter_context(ipadapter.installed(unet, layers))
                        ipadapter.unet_forward(unet, ipadapter_kwargs_list=ipk, **kw)
                    else:
                        unet(**kw)
            return peak(run, unet)

        out["unet_params_gib"] = step(1)["parameter"]
        out["step_activations_gib"] = {
            "plain_1": step(1)["activation"],
            "ip_two_pictures_1": step(1, pictures=2)["activation"],
            **{f"shared_{n}": step(n, share=True)["activation"] for n in (2, 3, 4, 6, 8)},
        }
        dec = peak(lambda: decoder(torch.randn(1, 4, lat, lat, dtype=dtype)), decoder)
        out["vae_decoder_params_gib"], out["decode_activations_gib_fp16"] = dec["parameter"], dec["activation"]
    acts = out["step_activations_gib"]
    out["per_shared_panel_gib"] = (acts["shared_8"] - acts["shared_4"]) / 4
    (Path(args.out) / "activations.json").write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=2))


def cmd_memory_side(args) -> None:
    """One process: a shared-attention batch of `--panels` images (identity 1), or a plain panel
    (--panels 1); prints peak RSS and the denoising time."""
    import torch

    from kolorsc.engines.base import RenderJob, SharedAttention, SharedMember

    out = Path(args.out)
    engine = kolorsc_engine(args.root, out / "memory-cache")
    torch.set_num_threads(args.threads)
    list(engine.render([RenderJob(panel(size=args.size, steps=1), 7)], None))  # load everything first
    base = peak_rss_gb()
    panels = [panel(index=i, seed=i, size=args.size, steps=args.steps) for i in range(1, args.panels + 1)]
    t0 = time.perf_counter()
    if args.panels == 1:
        jobs = [RenderJob(panels[0], 1)]
    else:
        shared = SharedAttention((SharedMember(panels[0], 1),), group=args.panels)
        jobs = [RenderJob(p, p.seed, shared=shared) for p in panels]
    list(engine.render(jobs, None))
    result = {"panels": args.panels, "peak_after_load_gb": base, "peak_gb": peak_rss_gb(),
              "seconds": time.perf_counter() - t0, "unet_calls": engine.calls.unet}
    print(json.dumps(result), flush=True)
    (out / f"memory-{args.panels}.json").write_text(json.dumps(result))


def cmd_memory(args) -> None:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for n in [int(x) for x in args.panels.split(",")]:
        cmd = ["flock", LOCK, sys.executable, __file__, "--pydeps", args.pydeps, "memory-side", "--root", str(args.root),
               "--size", str(args.size), "--steps", str(args.steps), "--panels", str(n), "--out", str(out),
               "--threads", str(args.threads)]
        subprocess.run(cmd, check=True)
        rows.append(json.loads((out / f"memory-{n}.json").read_text()))
    summary = {"size": args.size, "rows": rows, "predicted_gpu": predicted_gpu(args.root, rows, args.size)}
    (out / "memory.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))


def vision_parameters(path: Path) -> int:
    """Parameters of the image encoder's vision half (what kolorsc loads) in the release file."""
    import torch

    state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    return sum(v.numel() for k, v in state.items() if k.startswith(("vision_model.", "visual_projection.")))


def predicted_gpu(root: Path, rows: list[dict], size: int) -> dict:
    """GPU memory of the low-memory plan with the adapter, fp16, 1024²: weights from the files,
    activations per panel scaled from the measured CPU growth per batch image (fp32 -> fp16: /2;
    size² tokens: x (1024/size)²; attention is memory-efficient, so linear in tokens)."""
    gb = 1024**3
    folder = models_dir(root)
    unet = (folder / KOLORS / "unet" / "diffusion_pytorch_model.safetensors").stat().st_size / 2
    vae = (folder / KOLORS / "vae" / "diffusion_pytorch_model.safetensors").stat().st_size  # fp32 (diffsynth)
    adapter = (folder / IP / "ip_adapter_plus_general.bin").stat().st_size  # fp16 as released
    vision = 2 * vision_parameters(folder / IP / "image_encoder" / "pytorch_model.bin")  # fp16
    text_encoder = 12.4 * gb  # the 28-layer ChatGLM3 in fp16 (bench_kolors `prove`)
    plain = next((r for r in rows if r["panels"] == 1), None)
    growth = None
    multi = sorted((r for r in rows if r["panels"] > 1), key=lambda r: r["panels"])
    if plain and multi:
        last = multi[-1]
        growth = (last["peak_gb"] - plain["peak_gb"]) * gb / (last["panels"] - 1)
    per_panel_gpu = None if growth is None else growth / 2 * (1024 / size) ** 2
    work = 1.5 * gb  # one panel's working set at 1024², batch-2 guidance, fp16 (bench_kolors' allowance)
    kv = 70 * 2 * 16 * 1280 * 2 * 2  # per picture: k and v of 16 tokens in 70 layers (cond + zero picture), fp16
    out = {
        "encode_phase_gb": (text_encoder + 0.3 * gb) / gb,
        "image_encoder_phase_gb": (vision + 0.1 * gb) / gb,
        "projection_phase_gb": (unet + vae + adapter) / gb,
        "denoise_phase_gb": (unet + vae / 2 + work) / gb,
        "denoise_phase_with_4_pictures_gb": (unet + vae / 2 + work + 4 * kv) / gb,
        "measured_cpu_growth_per_batch_image_gb_at_size": None if growth is None else growth / gb,
        "per_extra_panel_gpu_gb_1024": None if per_panel_gpu is None else per_panel_gpu / gb,
    }
    if per_panel_gpu is not None:
        out["shared_group_peak_gb"] = {g: (unet + vae / 2 + work + (g - 1) * per_panel_gpu) / gb for g in (2, 3, 4, 5, 6, 8)}
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pydeps", default="/work/bench-models/pydeps", help="sys.path entry holding diffusers")
    sub = parser.add_subparsers(dest="cmd", required=True)
    for name in ("write", "compare", "side", "cost", "unetcost", "activations", "memory", "memory-side"):
        p = sub.add_parser(name)
        p.add_argument("--root", type=Path, default=Path("/work/bench-models"))
        p.add_argument("--out", default="/work/bench-models/consistency-run")
        p.add_argument("--size", type=int, default=256)
        p.add_argument("--steps", type=int, default=3)
        p.add_argument("--threads", type=int, default=2)
        if name in ("compare",):
            p.add_argument("--sides", default="kolorsc,diffusers")
        if name == "side":
            p.add_argument("--which", required=True)
        if name in ("cost", "unetcost"):
            p.add_argument("--repeats", type=int, default=2)
        if name == "memory":
            p.add_argument("--panels", default="1,2,4")
        if name == "memory-side":
            p.add_argument("--panels", type=int, required=True)
    args = parser.parse_args(argv)
    sys.path.insert(0, args.pydeps)
    t0 = time.perf_counter()
    {"write": cmd_write, "compare": cmd_compare, "side": cmd_side, "cost": cmd_cost, "unetcost": cmd_unetcost,
     "activations": cmd_activations, "memory": cmd_memory, "memory-side": cmd_memory_side}[args.cmd](args)
    print(f"{args.cmd}: {time.perf_counter() - t0:.1f}s, peak RSS {peak_rss_gb():.2f} GB", flush=True)


if __name__ == "__main__":
    main()
