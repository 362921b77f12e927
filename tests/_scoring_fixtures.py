"""Tiny random scoring models of the real classes, saved in the real ModelScope layouts.

Real configs, tokenizers and processors with small sizes: the code under test loads them
exactly as it loads the released weights.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

AESTHETIC_REPO = "AI-ModelScope/aesthetics-predictor-v2-sac-logos-ava1-l14-linearMSE"
CHINESE_CLIP_REPO = "AI-ModelScope/chinese-clip-vit-base-patch16"
IMAGE_SIZE = 28  # two 14-pixel patches a side, like ViT-L/14 at 224 but tiny


def write_clip_tokenizer(folder: Path) -> None:
    """A tiny byte-level BPE vocabulary for CLIPTokenizer: the seed's CLIPProcessor needs one."""
    letters = "abcdefghijklmnopqrstuvwxyz"
    tokens = ["<|startoftext|>", "<|endoftext|>"] + list(letters) + [c + "</w>" for c in letters]
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")


def make_aesthetic_model(models_dir: Path, seed: int = 0) -> Path:
    import torch
    from aesthetics_predictor import AestheticsPredictorV2Linear
    from transformers import CLIPImageProcessor, CLIPProcessor, CLIPTokenizer, CLIPVisionConfig

    folder = Path(models_dir) / AESTHETIC_REPO
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    config = CLIPVisionConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        image_size=IMAGE_SIZE,
        patch_size=14,
        projection_dim=16,
    )
    model = AestheticsPredictorV2Linear(config)
    # random heads give scores near 0; a larger last bias makes the numbers look like the
    # real predictor's (~5-7) so that gate tests around 6 are meaningful
    with torch.no_grad():
        model.layers[-1].bias.fill_(6.0)
    # the released repo ships pytorch_model.bin, not safetensors
    model.save_pretrained(folder, safe_serialization=False)
    write_clip_tokenizer(folder)
    image_processor = CLIPImageProcessor(
        size={"shortest_edge": IMAGE_SIZE}, crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}
    )
    processor = CLIPProcessor(image_processor=image_processor, tokenizer=CLIPTokenizer(
        vocab_file=str(folder / "vocab.json"), merges_file=str(folder / "merges.txt")))
    processor.save_pretrained(folder)
    return folder


CHINESE_CHARS = "女孩王子骑马教室梦水墨古风红色长裙白袍少年山河花"


def make_chinese_clip(models_dir: Path, seed: int = 0) -> Path:
    import torch
    from transformers import (
        BertTokenizer,
        ChineseCLIPConfig,
        ChineseCLIPImageProcessor,
        ChineseCLIPModel,
    )

    folder = Path(models_dir) / CHINESE_CLIP_REPO
    folder.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "，", "。"] + list(CHINESE_CHARS)
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    torch.manual_seed(seed)
    config = ChineseCLIPConfig(
        text_config={
            "vocab_size": len(vocab),
            "hidden_size": 32,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "intermediate_size": 64,
            "max_position_embeddings": 64,
        },
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "image_size": IMAGE_SIZE,
            "patch_size": 14,
        },
        projection_dim=16,
    )
    ChineseCLIPModel(config).save_pretrained(folder, safe_serialization=False)
    ChineseCLIPImageProcessor(
        size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}, crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}
    ).save_pretrained(folder)
    BertTokenizer(vocab_file=str(folder / "vocab.txt")).save_pretrained(folder)
    return folder


def make_images(folder: Path, n: int = 8, seed: int = 0, size=(40, 32)) -> list[Path]:
    """n small PNGs of random noise (one RGBA with varying alpha, one grayscale)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        arr = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
        image = Image.fromarray(arr, "RGB")
        if i == 1:  # semi-transparent: kolorsc must hand it to the processor as the seed does
            alpha = Image.fromarray(rng.integers(0, 256, size=(size[1], size[0]), dtype=np.uint8), "L")
            image = image.convert("RGBA")
            image.putalpha(alpha)
        elif i == 2:
            image = image.convert("L")
        path = folder / f"{i + 1:02d}.png"
        image.save(path)
        paths.append(path)
    return paths
