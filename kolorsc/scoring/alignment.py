"""Prompt alignment: cosine similarity between a panel and its prompt under Chinese-CLIP.

Most prompts are Chinese, which OpenAI's CLIP cannot read, so alignment uses transformers'
ChineseCLIPModel. The number is a cosine in [-1, 1] (not CLIP's logit x100): comparable across
panels of one model, not across models.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kolorsc.scoring.models import CHINESE_CLIP, identity

# Chinese-CLIP was trained with 52 text tokens (cn_clip's context_length); longer prompts are
# cut there rather than fed to positions the model never learned.
CONTEXT_LENGTH = 52
DEFAULT_BATCH = 8


def scorer_identity(folder: Path) -> dict:
    """What decides this scorer's numbers (no model loaded)."""
    return {**identity(CHINESE_CLIP, folder), "context_length": CONTEXT_LENGTH}


class AlignmentScorer:
    def __init__(self, folder: Path, device: str, batch_size: int = DEFAULT_BATCH):
        from transformers import BertTokenizer, ChineseCLIPImageProcessor, ChineseCLIPModel

        self.device = device
        self.batch_size = max(1, int(batch_size))
        self.tokenizer = BertTokenizer.from_pretrained(str(folder))
        self.processor = ChineseCLIPImageProcessor.from_pretrained(str(folder))
        self.model = ChineseCLIPModel.from_pretrained(str(folder)).to(device)
        self.model.eval()
        self.identity = scorer_identity(folder)

    def score(self, images: list[Any], texts: list[str]) -> list[float]:
        """Cosine similarity of each image with the text at the same index."""
        if len(images) != len(texts):
            raise ValueError(f"{len(images)} images but {len(texts)} texts")
        import torch

        out: list[float] = []
        for start in range(0, len(images), self.batch_size):
            imgs = images[start : start + self.batch_size]
            txts = list(texts[start : start + self.batch_size])
            pixels = self.processor(images=imgs, return_tensors="pt")["pixel_values"].to(self.device)
            tokens = self.tokenizer(
                txts, padding=True, truncation=True, max_length=CONTEXT_LENGTH, return_tensors="pt"
            )
            tokens = {k: v.to(self.device) for k, v in tokens.items()}
            # model.forward, not get_text_features: in transformers 4.57 the latter reads a
            # pooler the text tower does not have (TypeError; fixed by transformers PR #42351).
            # forward returns both embeddings already L2-normalised, [CLS] for the text.
            with torch.no_grad():
                result = self.model(pixel_values=pixels, **tokens, return_dict=True)
            img = result.image_embeds.float()
            txt = result.text_embeds.float()
            out.extend((img * txt).sum(dim=-1).cpu().tolist())
        return out
