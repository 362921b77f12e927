"""Benchmark of scoring at full size: a random AestheticsPredictorV2Linear with the real
ViT-L/14 configuration (24 layers, hidden 1024, projection 768; ~1.2 GB pytorch_model.bin)
written in the ModelScope layout, loaded through kolorsc.scoring.load_scorers, scoring eight
1024x1024 panels batched, one by one, and with the seed's own per-image loop.

Run by hand: python bench/bench_scoring.py [--device cpu|cuda]  (prints seconds and peak RSS;
not a test). Needs ~3 GB of disk in the temp dir and ~3 GB of RAM.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

REPO = "AI-ModelScope/aesthetics-predictor-v2-sac-logos-ava1-l14-linearMSE"


def write_full_size_model(models_dir: Path) -> Path:
    import torch
    from aesthetics_predictor import AestheticsPredictorV2Linear
    from transformers import CLIPImageProcessor, CLIPVisionConfig

    folder = models_dir / REPO
    folder.mkdir(parents=True)
    torch.manual_seed(0)
    # openai/clip-vit-large-patch14's vision config, as in the released config.json
    config = CLIPVisionConfig(
        hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
        image_size=224, patch_size=14, projection_dim=768, hidden_act="quick_gelu",
    )
    AestheticsPredictorV2Linear(config).save_pretrained(folder, safe_serialization=False)
    CLIPImageProcessor(  # the released preprocessor_config.json: CLIP's defaults at 224
        size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224}
    ).save_pretrained(folder)
    return folder


def panels(n: int = 8):
    from PIL import Image

    return [Image.effect_noise((1024, 1024), 30 + 5 * i).convert("RGB") for i in range(n)]


def timed(label, fn):
    start = time.perf_counter()
    value = fn()
    print(f"{label:<40} {time.perf_counter() - start:7.2f} s")
    return value


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default=None)
    args = parser.parse_args()

    import torch

    from kolorsc.scoring import load_scorers, score_images

    with tempfile.TemporaryDirectory() as tmp:
        models = Path(tmp)
        folder = timed("write random ViT-L/14 predictor", lambda: write_full_size_model(models))
        size = (folder / "pytorch_model.bin").stat().st_size
        print(f"{'pytorch_model.bin':<40} {size / 1e9:7.2f} GB")
        scorers = timed("load_scorers (incl. identity)", lambda: load_scorers(models, args.device))
        images = panels()
        timed("warm-up: 1 image", lambda: scorers.aesthetic.score(images[:1]))
        batched = timed("score 8 panels, batch 8", lambda: score_images(images, None, scorers))
        scorers.aesthetic.batch_size = 1
        single = timed("score 8 panels, batch 1", lambda: scorers.aesthetic.score(images))
        diff = max(abs(a - b) for a, b in zip(batched.aesthetics, single))
        print(f"{'max |batch 8 - batch 1|':<40} {diff:.2e}")

        from aesthetics_predictor import AestheticsPredictorV2Linear
        # the seed loads CLIPProcessor; its image half is this class (no tokenizer files here)
        from transformers import CLIPImageProcessor

        device = scorers.device
        predictor = AestheticsPredictorV2Linear.from_pretrained(str(folder)).to(device)
        processor = CLIPImageProcessor.from_pretrained(str(folder))

        def seed_loop():
            out = []
            for image in images:
                inputs = {k: v.to(device) for k, v in processor(images=image, return_tensors="pt").items()}
                with torch.no_grad():
                    out.append(predictor(**inputs).logits.tolist()[0][0])
            return out

        ref = timed("seed's per-image loop, 8 panels", seed_loop)
        diff = max(abs(a - b) for a, b in zip(batched.aesthetics, ref))
        print(f"{'max |kolorsc - seed loop|':<40} {diff:.2e}")
        print(f"{'peak RSS':<40} {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6:7.2f} GB")


if __name__ == "__main__":
    main()
