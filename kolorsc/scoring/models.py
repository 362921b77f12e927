"""The scoring models: registry entries and a stable identity for each.

Importing this module registers `aesthetic` and `chinese-clip` in kolorsc.models.REGISTRY
(so `kolorsc models pull` knows them). It imports nothing heavy.

`required` lists exactly the files the loaders read:
- aesthetic: `AestheticsPredictorV2Linear.from_pretrained` reads config.json and the weights;
  the seed's `CLIPProcessor.from_pretrained` would also read the CLIP tokenizer files, but
  scoring only uses its image half, so kolorsc loads `CLIPImageProcessor` (the same slow class
  CLIPProcessor picks in transformers 4.x) from preprocessor_config.json and needs no tokenizer.
- chinese-clip: `ChineseCLIPModel` (config.json + weights), `ChineseCLIPImageProcessor`
  (preprocessor_config.json) and `BertTokenizer` (vocab.txt).
"""

from __future__ import annotations

from pathlib import Path

from kolorsc.hashing import file_fingerprint, sha256_file
from kolorsc.models import ModelSpec, register

AESTHETIC = register(
    ModelSpec(
        name="aesthetic",
        repo="AI-ModelScope/aesthetics-predictor-v2-sac-logos-ava1-l14-linearMSE",
        required=("config.json", "preprocessor_config.json", "pytorch_model.bin"),
        purpose="the challenge's aesthetic score: LAION predictor v2, linear MSE head on CLIP ViT-L/14",
    )
)

# The HF-format mirror of OFA-Sys/chinese-clip-vit-base-patch16 (ViT-B/16 + RoBERTa-wwm-base,
# 188M parameters): transformers' ChineseCLIPModel loads it as is. damo/multi-modal_clip-vit-
# base-patch16_zh holds the same weights in cn_clip's own format, which transformers cannot load.
CHINESE_CLIP = register(
    ModelSpec(
        name="chinese-clip",
        repo="AI-ModelScope/chinese-clip-vit-base-patch16",
        required=("config.json", "preprocessor_config.json", "vocab.txt", "pytorch_model.bin"),
        purpose="prompt alignment: Chinese-CLIP text-image similarity (optional)",
    )
)

# transformers prefers safetensors when both exist; the fingerprint follows the file it loads.
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


def weights_file(folder: Path) -> Path | None:
    for name in WEIGHT_FILES:
        if (Path(folder) / name).is_file():
            return Path(folder) / name
    return None


def identity(spec: ModelSpec, folder: Path) -> dict:
    """Who scored: model id plus a cheap fingerprint of the files that decide the numbers
    (kolorsc.hashing.file_fingerprint: size and sampled blocks of the weights, so a re-download
    of different weights changes it without hashing 1.2 GB on every run); the small config
    files are hashed whole. Stable across runs and machines."""
    folder = Path(folder)
    weights = weights_file(folder)
    ident = {"model": spec.repo}
    if weights is not None:
        ident["weights"] = {"file": weights.name, "fingerprint": file_fingerprint(weights)}
    for name in ("config.json", "preprocessor_config.json"):
        path = folder / name
        if path.is_file():
            ident[name] = sha256_file(path)
    return ident
