"""Full-size Kolors benchmark on random weights of the real architecture (run by hand, not in CI).

    python bench/bench_kolors.py write  --root /work/bench-models      # once: ~27 GB of files
    python bench/bench_kolors.py prove  --root /work/bench-models      # load the 28-layer TE in fp16
    python bench/bench_kolors.py run    --root /work/bench-models --short-name models-short6 --cold
                                        # both sides; --cold drops the page cache before each (root)

`write` puts random weights in the exact Kolors release layout under
`<root>/models/Kwai-Kolors/Kolors/` (UNet safetensors with diffusers key names, the seven
ChatGLM3 .bin shards + config + index, the VAE), plus a second models dir
`<root>/models-short/` whose text encoder has the real width but fewer layers (for timing;
its UNet and VAE are hard links to the same files). The UNet/VAE key names come from
diffusers' own classes built from ../shared/kolors-configs (diffusers is not a kolorsc
dependency: install it for the bench only, e.g. `pip install --target <root>/pydeps
diffusers==0.35.2 --no-deps` and pass `--pydeps <root>/pydeps`).

Every step that holds more than ~4 GB runs under `flock /tmp/kolorsc-bigmem.lock` (shared
machine). `run` measures one side per process so that peak RSS is that side's alone.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

CONFIGS = Path(os.environ.get("KOLORS_CONFIGS", "/work/shared/kolors-configs"))
REPO = "Kwai-Kolors/Kolors"


def _atomic_save_file(tensors, path: Path) -> None:
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    save_file(tensors, str(tmp))
    os.replace(tmp, path)


def write_unet(folder: Path) -> None:
    dest = folder / "unet" / "diffusion_pytorch_model.safetensors"
    if dest.exists():
        return
    import torch
    from diffusers import UNet2DConditionModel

    torch.manual_seed(0)
    config = json.loads((CONFIGS / "unet_config.json").read_text())
    unet = UNet2DConditionModel.from_config(config)  # diffusers' own init: finite, sensible outputs
    state = {k: v.contiguous() for k, v in unet.state_dict().items()}
    print(f"unet: {len(state)} tensors, {sum(v.numel() for v in state.values()):,} params", flush=True)
    (folder / "unet").mkdir(parents=True, exist_ok=True)
    (folder / "unet" / "config.json").write_text(json.dumps(config, indent=2))
    _atomic_save_file(state, dest)


def write_vae(folder: Path) -> None:
    dest = folder / "vae" / "diffusion_pytorch_model.safetensors"
    if dest.exists():
        return
    import torch
    from diffusers import AutoencoderKL

    torch.manual_seed(1)
    config = json.loads((CONFIGS / "vae_config.json").read_text())
    vae = AutoencoderKL.from_config(config)
    (folder / "vae").mkdir(parents=True, exist_ok=True)
    (folder / "vae" / "config.json").write_text(json.dumps(config, indent=2))
    _atomic_save_file({k: v.contiguous() for k, v in vae.state_dict().items()}, dest)


def write_text_encoder(folder: Path, num_layers: int, dtype: str, shards: int = 7) -> None:
    """The release layout: config.json, pytorch_model-0000N-of-00007.bin, pytorch_model.bin.index.json.
    Written shard by shard so that no more than one shard is ever in memory."""
    import torch
    from diffsynth.models.kolors_text_encoder import ChatGLMConfig, ChatGLMModel

    te = folder / "text_encoder"
    index_path = te / "pytorch_model.bin.index.json"
    if index_path.exists():
        return
    te.mkdir(parents=True, exist_ok=True)
    config = json.loads((CONFIGS / "text_encoder_config.json").read_text())
    config["num_layers"] = num_layers
    config["torch_dtype"] = dtype
    cfg = ChatGLMConfig(**config)
    meta = ChatGLMModel(cfg, device="meta")
    shapes = {f"transformer.{k}": v.shape for k, v in meta.state_dict().items()}
    torch_dtype = getattr(torch, dtype)
    keys = list(shapes)
    sizes = [int(torch.Size(shapes[k]).numel()) for k in keys]
    per_shard = sum(sizes) / shards
    groups, current, acc = [], [], 0
    for key, size in zip(keys, sizes):
        if acc >= per_shard * (len(groups) + 1) and len(groups) < shards - 1:
            groups.append(current)
            current = []
        current.append(key)
        acc += size
    groups.append(current)
    while len(groups) < shards:
        groups.append([])
    gen = torch.Generator().manual_seed(2)
    weight_map = {}
    total_bytes = 0
    for i, group in enumerate(groups, start=1):
        name = f"pytorch_model-{i:05d}-of-{shards:05d}.bin"
        state = {}
        for key in group:
            shape = shapes[key]
            if key.endswith("inv_freq"):
                dim = shape[0] * 2
                state[key] = 1.0 / (10000 ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim))
                continue
            if "layernorm" in key:
                tensor = torch.ones(shape)
            elif key.endswith("bias"):
                tensor = torch.zeros(shape)
            else:
                tensor = torch.randn(shape, generator=gen) * 0.02
            state[key] = tensor.to(torch_dtype)
            weight_map[key] = name
            total_bytes += state[key].numel() * state[key].element_size()
        for key in group:
            weight_map[key] = name
        tmp = te / (name + ".partial")
        torch.save(state, tmp)
        os.replace(tmp, te / name)
        print(f"text encoder shard {name}: {len(state)} tensors", flush=True)
        del state
    (te / "config.json").write_text(json.dumps(config, indent=2))
    index = {"metadata": {"total_size": total_bytes}, "weight_map": weight_map}
    tmp = index_path.with_name(index_path.name + ".partial")
    tmp.write_text(json.dumps(index, indent=2))
    os.replace(tmp, index_path)


def cmd_write(args) -> None:
    full = Path(args.root) / "models" / REPO
    short = Path(args.root) / args.short_name / REPO
    write_vae(full)
    write_unet(full)
    for part in ("unet", "vae"):  # the short dir shares UNet/VAE files (hard links: no extra disk)
        (short / part).mkdir(parents=True, exist_ok=True)
        for f in (full / part).iterdir():
            if not (short / part / f.name).exists():
                os.link(f, short / part / f.name)
    write_text_encoder(short, num_layers=args.short_layers, dtype="float32")
    write_text_encoder(full, num_layers=28, dtype="float16")
    print("done", flush=True)


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


# --- the LoRA both sides apply ------------------------------------------------------------

LORA_TARGETS = ("to_q", "to_k", "to_v", "to_out")  # the seed baseline's peft target_modules


def write_lora(path: Path, rank: int = 16) -> None:
    """A random rank-16 LoRA on every attention projection of the real UNet, in diffsynth's
    checkpoint names (what the seed's trainer writes), shapes read from a meta-device UNet."""
    if path.exists():
        return
    import torch
    from diffsynth.models.sdxl_unet import SDXLUNet

    from kolorsc.lora import LoraLayer, write_diffsynth

    with torch.device("meta"):
        unet = SDXLUNet(is_kolors=True)
    gen = torch.Generator().manual_seed(3)
    layers = {}
    for name, module in unet.named_modules():
        if isinstance(module, torch.nn.Linear) and name.rsplit(".", 1)[-1] in LORA_TARGETS:
            out_f, in_f = module.weight.shape
            layers[name] = LoraLayer(torch.randn(rank, in_f, generator=gen) * 0.01,
                                     torch.randn(out_f, rank, generator=gen) * 0.01, alpha=4.0)
    write_diffsynth(path, layers, {"lora_alpha": 4.0, "rank": rank})


# --- timing hooks -------------------------------------------------------------------------


class Meter:
    """Seconds and calls per model, measured with forward hooks (the same on both sides)."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self._t0: dict[str, float] = {}

    def attach(self, name: str, module) -> None:
        self.seconds.setdefault(name, 0.0)
        self.calls.setdefault(name, 0)

        def pre(*_):
            self._t0[name] = time.perf_counter()

        def post(*_):
            self.seconds[name] += time.perf_counter() - self._t0[name]
            self.calls[name] += 1

        module.register_forward_pre_hook(pre)
        module.register_forward_hook(post)


def story_jobs(story: Path, size: int, steps: int):
    from dataclasses import replace

    from kolorsc import api

    _, panels = api.load(story)
    return [replace(p, width=size, height=size, steps=steps) for p in panels]


def side_kolorsc(args, meter: Meter, out_dir: Path) -> dict:
    from kolorsc.engines.base import LoraWeights, RenderJob
    from kolorsc.engines.kolors import KolorsEngine
    from kolorsc.engines.kolors.loading import DiffSynthLoader

    load_seconds = [0.0]

    class MeteredLoader(DiffSynthLoader):
        def _timed(self, fn, *a):
            t0 = time.perf_counter()
            model = fn(*a)
            load_seconds[0] += time.perf_counter() - t0
            return model

        def load_text_encoder(self, *a):
            model = self._timed(super().load_text_encoder, *a)
            meter.attach("text_encoder", model)
            return model

        def load_unet(self, *a):
            model = self._timed(super().load_unet, *a)
            meter.attach("unet", model.conv_in)  # conv_in runs once per UNet pass, on both sides
            return model

        def load_vae(self, *a):
            vae = self._timed(super().load_vae, *a)
            meter.attach("vae_decoder", vae.decoder)
            return vae

    from kolorsc.engines.kolors import lora_merge

    merge_seconds = [0.0]
    real_merge = lora_merge.merge

    def timed_merge(*a):  # stock's peft injection is part of its loading; time ours apart
        t0 = time.perf_counter()
        n = real_merge(*a)
        merge_seconds[0] += time.perf_counter() - t0
        return n

    lora_merge.merge = timed_merge
    engine = KolorsEngine(models_dir=args.models, device="cpu", cache_dir=out_dir / "cache",
                          low_memory=not args.resident, model_loader=MeteredLoader())
    lora = LoraWeights(path=Path(args.lora), scale=args.lora_scale, key="bench-lora")
    panels = story_jobs(Path(args.story), args.size, args.steps)
    t0 = time.perf_counter()
    for job, image in engine.render([RenderJob(p, p.seed) for p in panels], lora):
        image.save(out_dir / f"kolorsc-{job.panel.index:02d}.png")
    total = time.perf_counter() - t0
    return {"total": total, "load": load_seconds[0], "lora_merge_s": merge_seconds[0], "events": engine.events,
            "plan": engine.plan.reason}


def side_stock(args, meter: Meter, out_dir: Path) -> dict:
    """diffsynth's SDXLImagePipeline as the seed baseline calls it: ModelManager with the three
    paths, LoRA injected with peft (inject_adapter_in_model + load_state_dict, not merged), one
    pipe(...) call per panel (both prompts encoded each time, guidance passes as two UNet calls)."""
    import torch
    from diffsynth import ModelManager, SDXLImagePipeline
    from peft import LoraConfig, inject_adapter_in_model

    from kolorsc.lora import read_lora

    folder = Path(args.models) / REPO
    t0 = time.perf_counter()
    mm = ModelManager(torch_dtype=torch.float32, device="cpu", file_path_list=[
        str(folder / "text_encoder"), str(folder / "unet" / "diffusion_pytorch_model.safetensors"),
        str(folder / "vae" / "diffusion_pytorch_model.safetensors")])
    pipe = SDXLImagePipeline.from_model_manager(mm)
    lora = read_lora(Path(args.lora))
    rank = lora.rank
    # peft scales by lora_alpha / r: alpha = scale * r gives W + scale * B @ A, the merge's maths
    config = LoraConfig(r=rank, lora_alpha=args.lora_scale * rank, init_lora_weights="gaussian",
                        target_modules=list(LORA_TARGETS))
    pipe.unet = inject_adapter_in_model(config, pipe.unet)
    state = {}
    for name, layer in lora.layers.items():
        state[f"{name}.lora_A.default.weight"] = layer.down
        state[f"{name}.lora_B.default.weight"] = layer.up
    missing = pipe.unet.load_state_dict(state, strict=False)
    assert not missing.unexpected_keys, missing.unexpected_keys[:3]
    load = time.perf_counter() - t0
    meter.attach("text_encoder", pipe.text_encoder_kolors)
    meter.attach("unet", pipe.unet.conv_in)
    meter.attach("vae_decoder", pipe.vae_decoder)
    panels = story_jobs(Path(args.story), args.size, args.steps)
    t1 = time.perf_counter()
    for p in panels:
        image = pipe(prompt=p.prompt, negative_prompt=p.negative, cfg_scale=p.cfg, num_inference_steps=p.steps,
                     height=p.height, width=p.width, seed=p.seed, progress_bar_cmd=lambda x: x)
        image.save(out_dir / f"stock-{p.index:02d}.png")
    total = time.perf_counter() - t1 + load
    return {"total": total, "load": load}


def cmd_side(args) -> None:
    import contextlib
    import io

    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    meter = Meter()
    with contextlib.redirect_stdout(io.StringIO()):  # diffsynth narrates every load
        result = (side_stock if args.which == "stock" else side_kolorsc)(args, meter, out_dir)
    te, vae = meter.seconds.get("text_encoder", 0.0), meter.seconds.get("vae_decoder", 0.0)
    result.update({
        "side": args.which,
        "encode_s": te,
        "decode_s": vae,
        "denoise_s": result["total"] - result["load"] - result.get("lora_merge_s", 0.0) - te - vae,
        "calls": meter.calls,
        "peak_rss_gb": peak_rss_gb(),
        "cpu_s": resource.getrusage(resource.RUSAGE_SELF).ru_utime + resource.getrusage(resource.RUSAGE_SELF).ru_stime,
    })
    (out_dir / f"{args.which}.json").write_text(json.dumps(result, indent=2, ensure_ascii=False))
    print(json.dumps(result, ensure_ascii=False), flush=True)


def predicted_gpu_peak(full: Path) -> dict:
    """GPU memory predicted for the real 28-layer model in fp16 (weights only, from the files),
    plus a working-set allowance for 1024x1024 with batch-2 guidance."""
    index = json.loads((full / "text_encoder" / "pytorch_model.bin.index.json").read_text())
    te = index["metadata"]["total_size"]  # fp16 bytes as written
    unet = (full / "unet" / "diffusion_pytorch_model.safetensors").stat().st_size / 2  # fp32 file -> fp16
    vae = (full / "vae" / "diffusion_pytorch_model.safetensors").stat().st_size  # diffsynth keeps it fp32
    work = 1.5 * 1024**3  # activations at 1024², batch 2, fp16 (attention at 64x64 latents)
    gb = 1024**3
    return {
        "text_encoder_fp16_gb": te / gb, "unet_fp16_gb": unet / gb, "vae_fp32_gb": vae / gb,
        "stock_all_resident_gb": (te + unet + vae + work) / gb,
        "low_memory_encode_phase_gb": (te + 0.3 * gb) / gb,
        "low_memory_denoise_phase_gb": (unet + vae / 2 + work) / gb,
    }


def drop_page_cache() -> bool:
    """Start a side with no model file in the page cache, so that neither side inherits the
    other's reads (needs root; the weights are larger than what the cache can keep for both)."""
    os.sync()
    try:
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
    except OSError:
        return False
    return True


def cmd_run(args) -> None:
    """Both sides, one process each (peak RSS is per side), under the big-memory lock."""
    import subprocess

    root = Path(args.root)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    lora = root / "bench-lora.safetensors"
    write_lora(lora)
    results = {"page_cache_dropped_before_each_side": False}
    for which in args.sides.split(","):
        if args.cold:
            results["page_cache_dropped_before_each_side"] = drop_page_cache()
        cmd = ["flock", "/tmp/kolorsc-bigmem.lock", sys.executable, __file__, "side", "--which", which,
               "--models", str(root / args.short_name), "--story", args.story, "--size", str(args.size),
               "--steps", str(args.steps), "--lora", str(lora), "--lora-scale", str(args.lora_scale), "--out", str(out)]
        print("running", which, flush=True)
        subprocess.run(cmd, check=True)
        results[which] = json.loads((out / f"{which}.json").read_text())
    if {"stock", "kolorsc"} <= results.keys():
        import numpy as np
        from PIL import Image

        diffs = [int(np.abs(np.asarray(Image.open(out / f"stock-{i:02d}.png"), dtype=np.int16)
                            - np.asarray(Image.open(out / f"kolorsc-{i:02d}.png"), dtype=np.int16)).max()) for i in range(1, 9)]
        results["max_pixel_difference_per_panel"] = diffs
        s, k = results["stock"], results["kolorsc"]
        results["speedup_total"] = s["total"] / k["total"]
        results["speedup_denoise"] = s["denoise_s"] / k["denoise_s"]
        results["peak_rss_ratio"] = k["peak_rss_gb"] / s["peak_rss_gb"]
    results["predicted_gpu"] = predicted_gpu_peak(root / "models" / REPO)
    (out / "summary.json").write_text(json.dumps(results, indent=2, ensure_ascii=False))
    print(json.dumps(results, indent=2, ensure_ascii=False))


def cmd_prove(args) -> None:
    """Load the full 28-layer text encoder in fp16 through kolorsc's loader (proves the layout),
    optionally encode one prompt with it."""
    import torch

    from kolorsc.engines.kolors.encoding import encode_text
    from kolorsc.engines.kolors.loading import DiffSynthLoader
    from kolorsc.models import verify

    models_dir = Path(args.root) / "models"
    t0 = time.perf_counter()
    report = verify(["kolors"], models_dir)
    print(f"verify: ok={report.ok} {report.problems()} ({time.perf_counter() - t0:.1f}s)", flush=True)
    t0 = time.perf_counter()
    te = DiffSynthLoader().load_text_encoder(models_dir / REPO / "text_encoder", torch.float16, "cpu")
    n = sum(p.numel() for p in te.parameters())
    print(f"text encoder: {te.config.num_layers} layers, {n:,} params, dtype {next(te.parameters()).dtype}, "
          f"loaded in {time.perf_counter() - t0:.1f}s, peak RSS {peak_rss_gb():.2f} GB", flush=True)
    if args.encode:
        t0 = time.perf_counter()
        emb = encode_text(te, "一只猫", "cpu")
        print(f"encode: sequence {tuple(emb.sequence.shape)}, pooled {tuple(emb.pooled.shape)}, "
              f"finite={bool(torch.isfinite(emb.sequence).all())}, {time.perf_counter() - t0:.1f}s", flush=True)
    if args.encode and args.compare:  # diffsynth's padded 256-token pass on the same model
        from diffsynth.prompters import KolorsPrompter

        prompter = KolorsPrompter()
        t0 = time.perf_counter()
        with torch.no_grad():
            seq, pooled = prompter.encode_prompt_using_ChatGLM("一只猫", te, prompter.tokenizer, 256, 2, "cpu")
        real = int(prompter.tokenizer("一只猫", return_tensors="pt")["input_ids"].shape[1])
        ours = emb.sequence.float()
        diff = (seq.float() - ours).abs()

        def rel(a, b):  # relative Frobenius error
            return float((a - b).norm() / b.norm())

        print(f"stock padded encode: {time.perf_counter() - t0:.1f}s; values up to {float(seq.float().abs().max()):.3g}; "
              f"max |difference| real tokens {float(diff[:, -real:].max()):.3g}, pads {float(diff[:, :-real].max()):.3g}, "
              f"pooled {float((pooled.float() - emb.pooled.float()).abs().max()):.3g}; relative error real tokens "
              f"{rel(ours[:, -real:], seq.float()[:, -real:]):.2e}, pads {rel(ours[:, :-real], seq.float()[:, :-real]):.2e}",
              flush=True)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pydeps", default=None, help="extra sys.path entry holding diffusers (write only)")
    sub = parser.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("write")
    w.add_argument("--root", default="/work/bench-models")
    w.add_argument("--short-layers", type=int, default=2)
    w.add_argument("--short-name", default="models-short")
    p = sub.add_parser("prove")
    p.add_argument("--root", default="/work/bench-models")
    p.add_argument("--encode", action="store_true")
    p.add_argument("--compare", action="store_true", help="with --encode: also diffsynth's padded pass, and the difference")
    r = sub.add_parser("run")
    r.add_argument("--root", default="/work/bench-models")
    r.add_argument("--story", default=str(Path(__file__).resolve().parents[1] / "stories" / "classroom-dream.yaml"))
    r.add_argument("--size", type=int, default=256)
    r.add_argument("--steps", type=int, default=2)
    r.add_argument("--lora-scale", type=float, default=2.0)
    r.add_argument("--sides", default="stock,kolorsc")
    r.add_argument("--cold", action="store_true", help="drop the page cache before each side (root only)")
    r.add_argument("--short-name", default="models-short", help="models dir whose text encoder has fewer layers")
    r.add_argument("--out", default="/work/bench-models/run")
    s = sub.add_parser("side")
    for name in ("--which", "--models", "--story", "--lora", "--out"):
        s.add_argument(name, required=True)
    s.add_argument("--size", type=int, required=True)
    s.add_argument("--steps", type=int, required=True)
    s.add_argument("--lora-scale", type=float, required=True)
    s.add_argument("--resident", action="store_true", help="kolorsc: keep every model resident")
    args = parser.parse_args(argv)
    if args.pydeps:
        sys.path.insert(0, args.pydeps)
    t0 = time.perf_counter()
    {"write": cmd_write, "prove": cmd_prove, "run": cmd_run, "side": cmd_side}[args.cmd](args)
    print(f"{args.cmd}: {time.perf_counter() - t0:.1f}s, peak RSS {peak_rss_gb():.2f} GB", flush=True)


if __name__ == "__main__":
    main()
