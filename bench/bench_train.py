"""LoRA training benchmark on the random-weight full-size Kolors UNet (run by hand, not in CI).

    python bench/bench_train.py --models /work/bench-models/models-short --steps 3 --resolution 128

Side by side in one run: kolorsc's trainer (`kolorsc.train.train_lora`: encode once, cache,
encoders freed, UNet alone while training) and diffsynth's stock `LightningModelForT2ILoRA`
set up as diffsynth's Kolors example does (ModelManager with the three models, Kolors
pipeline, LoRA through `add_lora_to_model`, `TextImageDataset`, Lightning), which runs the
text encoder and the VAE encoder on every step. Same UNet file, rank 16 / alpha 4 on
to_q,to_k,to_v,to_out, gradient checkpointing on, fp32 (no bf16 instructions on this CPU),
batch 1, centre crop, the same four images and captions.

Each side runs in its own process (so its peak RSS is its own) under
`flock /tmp/kolorsc-bigmem.lock` (shared machine). Measured per side: wall time of steps
2..N (step 1 is warm-up), peak RSS of the whole process (`ru_maxrss`: loading, encoding and
training), and forward calls of each model per training step.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = "Kwai-Kolors/Kolors"
RANK, ALPHA = 16, 4.0


def _dataset(folder: Path, resolution: int) -> Path:
    import numpy as np
    from PIL import Image

    from kolorsc.data import prepare_dataset
    from kolorsc.spec.model import Dataset

    src = folder / "src"
    src.mkdir(parents=True, exist_ok=True)
    for i in range(4):
        rng = np.random.default_rng(i)
        size = (resolution + 16 * i, resolution)
        Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(src / f"{i}.png")
        (src / f"{i}.txt").write_text(["水墨画，山水", "水墨画，竹林", "水墨画，小桥流水", "水墨画，远山"][i], encoding="utf-8")
    prepare_dataset(Dataset(source="local", path=src, caption="sidecar"), folder, folder / "prepared")
    return folder / "prepared"


def _step_timer(times: list):
    from lightning.pytorch.callbacks import Callback

    class StepTimer(Callback):
        def on_train_batch_start(self, trainer, module, batch, batch_idx):
            self.t = time.perf_counter()

        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            times.append(time.perf_counter() - self.t)

    return StepTimer()


def run_kolorsc(models: Path, steps: int, resolution: int, work: Path) -> dict:
    from kolorsc.spec.model import Lora, Style, Training
    from kolorsc.train import train_lora

    dataset = _dataset(work / "data", resolution)
    training = Training(rank=RANK, alpha=ALPHA, steps_per_epoch=steps, epochs=1, precision="32",
                        resolution=resolution, gradient_checkpointing=True, center_crop=True,
                        accelerator="cpu", devices=1, seed=0)
    style = Style(id="bench", name="bench", trigger="", negative="", lora=Lora(training=training))
    times: list[float] = []
    t0 = time.perf_counter()
    result = train_lora(style, dataset, work / "out", models_dir=models, device="cpu", callbacks=[_step_timer(times)])
    calls = json.loads(result.metadata["kolorsc.model_calls"])
    # The encoders are freed before the first step: every call they made was the one-time encode.
    return {"side": "kolorsc", "step_seconds": times, "total_seconds": time.perf_counter() - t0,
            "calls": {"unet": calls["unet"], "text_encoder": 0, "vae_encoder": 0},
            "one_time_calls": {"text_encoder": calls["text_encoder"], "vae_encoder": calls["vae_encoder"]},
            "steps": result.steps}


def run_stock(models: Path, steps: int, resolution: int, work: Path) -> dict:
    import lightning as pl
    import torch
    from diffsynth import ModelManager, SDXLImagePipeline
    from diffsynth.data.simple_text_image import TextImageDataset
    from diffsynth.trainers.text_to_image import LightningModelForT2ILoRA

    from kolorsc.engines.kolors.calls import CallCounter

    dataset = _dataset(work / "data", resolution)
    folder = models / REPO

    class StockKolors(LightningModelForT2ILoRA):  # as diffsynth's examples/train/kolors script builds it
        def __init__(self):
            super().__init__(learning_rate=1e-4, use_gradient_checkpointing=True)
            mm = ModelManager(torch_dtype=torch.float32, device="cpu")
            mm.load_models([str(folder / "text_encoder"), str(folder / "unet/diffusion_pytorch_model.safetensors"),
                            str(folder / "vae/diffusion_pytorch_model.safetensors")])
            self.pipe = SDXLImagePipeline.from_model_manager(mm)
            self.pipe.scheduler.set_timesteps(1100)
            self.freeze_parameters()
            self.add_lora_to_model(self.pipe.denoising_model(), lora_rank=RANK, lora_alpha=ALPHA,
                                   lora_target_modules="to_q,to_k,to_v,to_out", init_lora_weights="kaiming")

    t0 = time.perf_counter()
    model = StockKolors()
    calls = CallCounter("text_encoder", "vae_encoder", "unet")
    calls.attach("text_encoder", model.pipe.text_encoder_kolors)
    calls.attach("vae_encoder", model.pipe.vae_encoder)
    calls.attach("unet", model.pipe.unet)
    data = TextImageDataset(str(dataset), steps_per_epoch=steps, height=resolution, width=resolution, center_crop=True)
    loader = torch.utils.data.DataLoader(data, shuffle=True, batch_size=1, num_workers=0)
    times: list[float] = []
    trainer = pl.Trainer(max_epochs=1, accelerator="cpu", devices=1, precision="32", default_root_dir=str(work / "stock"),
                         callbacks=[_step_timer(times)], logger=False, enable_checkpointing=False,
                         enable_model_summary=False)
    trainer.fit(model=model, train_dataloaders=loader)
    return {"side": "stock", "step_seconds": times, "total_seconds": time.perf_counter() - t0,
            "calls": calls.counts, "one_time_calls": {}, "steps": trainer.global_step}


def run_components(models: Path, steps: int, resolution: int, work: Path) -> dict:
    """Seconds of one text-encoder call and one VAE-encoder call (what stock adds to every step)."""
    import torch
    from diffsynth.prompters import KolorsPrompter

    from kolorsc.engines.kolors.loading import TEXT_ENCODER, VAE, DiffSynthLoader
    from kolorsc.spec.model import Training
    from kolorsc.train import _encode_image

    folder = models / REPO
    prompter = KolorsPrompter()
    loader = DiffSynthLoader()
    te = loader.load_text_encoder(folder / TEXT_ENCODER, torch.float32, "cpu")
    out = {"side": "components", "text_encoder_layers": te.encoder.num_layers}
    times = []
    for caption in ("水墨画，山水", "水墨画，竹林", "水墨画，远山"):
        t = time.perf_counter()
        with torch.no_grad():  # what stock's training step runs: 256 padded tokens
            prompter.encode_prompt_using_ChatGLM(caption, te, prompter.tokenizer, 256, 2, "cpu")
        times.append(time.perf_counter() - t)
    out["text_encoder_seconds"] = times
    del te
    vae = loader.load_vae(folder / VAE, torch.float32, "cpu").encoder
    dataset = _dataset(work / "data", resolution)
    spec = Training(resolution=resolution)
    times = []
    for image in sorted((dataset / "train").glob("*.png"))[:3]:
        t = time.perf_counter()
        _encode_image(vae, image, spec, "cpu")
        times.append(time.perf_counter() - t)
    out["vae_encoder_seconds"] = times
    return out


def side(args) -> None:
    import torch

    torch.manual_seed(0)
    with tempfile.TemporaryDirectory(prefix=f"bench-train-{args.side}-") as tmp:
        run = {"kolorsc": run_kolorsc, "stock": run_stock, "components": run_components}[args.side]
        out = run(Path(args.models), args.steps, args.resolution, Path(tmp))
    out["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    print("RESULT " + json.dumps(out), flush=True)


def both(args) -> None:
    results = {}
    for name in ("stock", "kolorsc"):
        cmd = ["flock", "/tmp/kolorsc-bigmem.lock", sys.executable, __file__, "--side", name,
               "--models", args.models, "--steps", str(args.steps), "--resolution", str(args.resolution)]
        print("running", name, flush=True)
        proc = subprocess.run(cmd, check=False, capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
        lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
        if proc.returncode != 0 or not lines:
            print(proc.stdout[-3000:], proc.stderr[-3000:], file=sys.stderr)
            raise SystemExit(f"{name} failed")
        results[name] = json.loads(lines[-1][len("RESULT "):])
    print(json.dumps(results, indent=1))
    rows = []
    for name, r in results.items():
        timed = r["step_seconds"][1:] or r["step_seconds"]
        r["steps_per_s"] = len(timed) / sum(timed)
        per_step = {k: v / max(r["steps"], 1) for k, v in r["calls"].items()}
        rows.append(f"| {name} | {r['steps_per_s']:.4f} | {sum(timed) / len(timed):.1f} | {r['peak_rss_gb']:.2f} | "
                    f"{per_step['unet']:.2f} / {per_step['text_encoder']:.2f} / {per_step['vae_encoder']:.2f} | "
                    f"{r['total_seconds']:.0f} |")
    k, s = results["kolorsc"], results["stock"]
    print("| side | steps/s | s/step | peak RSS GB | calls per step unet / text enc / VAE | total s |")
    print("|---|---|---|---|---|---|")
    print("one-time encoder calls (kolorsc, before training):", results["kolorsc"]["one_time_calls"])
    print("\n".join(rows))
    print(f"speed-up {k['steps_per_s'] / s['steps_per_s']:.2f}x (target >= 2x), "
          f"peak RSS {k['peak_rss_gb'] / s['peak_rss_gb']:.0%} of stock (target <= 75%)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="/work/bench-models/models-short")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--resolution", type=int, default=128)
    parser.add_argument("--side", choices=["kolorsc", "stock", "components", "both"], default="both")
    args = parser.parse_args()
    (both if args.side == "both" else side)(args)


if __name__ == "__main__":
    main()
