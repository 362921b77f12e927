"""The challenge's aesthetic score: simple-aesthetics-predictor's AestheticsPredictorV2Linear
(LAION predictor v2, linear MSE head on CLIP ViT-L/14) with CLIP's image preprocessing.

Numerically the seed's `get_aesthetics_score` (processor(images=...), predictor(**inputs),
logits[0][0], fp32), but several images per forward pass. The same forward also yields the
predictor's own normalised CLIP image embeddings, which coherence uses: no second model.
torch/transformers are imported inside the functions: importing this module is free.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kolorsc.scoring.models import AESTHETIC, identity

DEFAULT_BATCH = 8  # one story's panels in one pass; ViT-L/14 at 224² fits easily on any GPU


def pick_device(device: str | None = None) -> str:
    """The device asked for, else CUDA when present, else CPU."""
    if device:
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def scorer_identity(folder: Path) -> dict:
    """What decides this scorer's numbers (no model loaded): weights, configs, processor."""
    return {**identity(AESTHETIC, folder), "processor": "CLIPImageProcessor"}


class AestheticScorer:
    def __init__(self, folder: Path, device: str | None = None, batch_size: int = DEFAULT_BATCH):
        from aesthetics_predictor import AestheticsPredictorV2Linear
        from transformers import CLIPImageProcessor

        self.device = pick_device(device)
        self.batch_size = max(1, int(batch_size))
        # CLIPProcessor.from_pretrained (the seed) builds exactly this slow CLIPImageProcessor
        # in transformers 4.x; loading it alone spares the tokenizer files scoring never uses.
        self.processor = CLIPImageProcessor.from_pretrained(str(folder))
        # from_pretrained returns the model in eval mode (dropout off), as in the seed
        self.model = AestheticsPredictorV2Linear.from_pretrained(str(folder)).to(self.device)
        self.model.eval()
        self.identity = scorer_identity(folder)

    def score_and_embed(self, images: list[Any]) -> tuple[list[float], list[list[float]]]:
        """Per-image aesthetic scores and normalised CLIP image embeddings, in input order."""
        import torch

        scores: list[float] = []
        embeds: list[list[float]] = []
        for start in range(0, len(images), self.batch_size):
            batch = images[start : start + self.batch_size]
            inputs = self.processor(images=batch, return_tensors="pt")
            inputs = {k: v.to(self.device) for k, v in inputs.items()}
            with torch.no_grad():
                out = self.model(**inputs)
            scores.extend(float(row[0]) for row in out.logits.float().cpu().tolist())
            # hidden_states of the predictor's output = image_embeds / ||image_embeds||
            embeds.extend(out.hidden_states.float().cpu().tolist())
        return scores, embeds

    def score(self, images: list[Any]) -> list[float]:
        return self.score_and_embed(images)[0]

    def embed(self, images: list[Any]):
        """Embeddings as a numpy array (n, projection_dim), rows of unit length."""
        import numpy as np

        return np.asarray(self.score_and_embed(images)[1], dtype=np.float64)
