"""Small StoryResult objects with real PNGs and a real (tiny) kohya-style LoRA file, for emit tests."""

from __future__ import annotations

import io
import json
import struct
from dataclasses import replace
from pathlib import Path

from PIL import Image, ImageDraw

from kolorsc.prompts import Panel
from kolorsc.results import Candidate, LoraResult, PanelResult, Scores, StoryResult
from kolorsc.spec.model import Character, Defaults, Loc, Lora, Scene, Story, Style

CAPTIONS = [
    "清晨，女孩在窗边醒来",
    "她骑车穿过老街，阳光洒在石板路上",
    "The market is busy: she buys a red umbrella",
    "午后下起雨，她在屋檐下躲雨",
    "她遇见一只迷路的小猫",
    "两人一起在雨中回家",
    "晚上，她给小猫做了一个小窝，窗外的雨一直下个不停，灯光很温暖",
    "第二天早晨，雨过天晴",
]


def make_png(index: int, size: tuple[int, int] = (96, 96)) -> bytes:
    """A distinct little image per panel (colour and a shape), PNG bytes."""
    image = Image.new("RGB", size, ((index * 37) % 256, (index * 91) % 256, (index * 53) % 256))
    draw = ImageDraw.Draw(image)
    draw.ellipse((10, 10, size[0] - 10, size[1] - 10), outline="white", width=4)
    draw.rectangle((index * 5, index * 5, index * 5 + 20, index * 5 + 20), fill="black")
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def write_safetensors(path: Path, tensors: dict[str, tuple[str, list[int]]]) -> Path:
    """A real safetensors file (header + zero data) without needing numpy or torch."""
    sizes = {"F16": 2, "F32": 4, "BF16": 2}
    header: dict = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, (dtype, shape) in sorted(tensors.items()):
        n = sizes[dtype]
        for dim in shape:
            n *= dim
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + n]}
        offset += n
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + b"\0" * offset)
    return path


def write_lora(path: Path, rank: int = 4) -> Path:
    base = "lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn1_to_q"
    return write_safetensors(
        path,
        {
            f"{base}.lora_down.weight": ("F16", [rank, 8]),
            f"{base}.lora_up.weight": ("F16", [8, rank]),
            f"{base}.alpha": ("F32", []),
        },
    )


def make_result(
    tmp_path: Path,
    *,
    preview: bool = False,
    aesthetic: list[float] | None = None,
    lora: bool = True,
    threshold: float = 6.0,
) -> StoryResult:
    root = tmp_path / "project"
    root.mkdir(exist_ok=True)
    story_path = root / "stories" / "rain.yaml"
    loc = Loc(str(story_path), 1, 1)
    style = Style(id="watercolor", name="水彩", trigger="水彩画风格", negative="模糊，低质量", lora=Lora(scale=2.0))
    scenes = tuple(
        Scene(index=i, caption=c, prompt="{{ girl }} " + c, loc=loc, prompt_loc=loc) for i, c in enumerate(CAPTIONS)
    )
    story = Story(
        id="rainy-day",
        title="雨天的小猫 A Rainy Day",
        team="星河队",
        style=style,
        characters={"girl": Character(key="girl", look="黑色长发的女孩")},
        defaults=Defaults(negative="丑陋", steps=30, cfg=4.0, size=(1024, 1024), seed=7),
        scenes=scenes,
        path=story_path,
        root=root,
        threshold=threshold,
    )
    panels = []
    for i, caption in enumerate(CAPTIONS):
        panel = Panel(
            index=i + 1,
            caption=caption,
            prompt=f"水彩画风格，黑色长发的女孩，{caption}",
            negative="模糊，低质量，丑陋",
            seed=7 + i,
            steps=30,
            cfg=4.0,
            width=1024,
            height=1024,
            candidates=2,
        )
        score = aesthetic[i] if aesthetic else None
        cands = tuple(
            Candidate(seed=panel.seed + k, image=tmp_path / f"c{i}{k}.png", image_hash=f"{i}{k}" * 8,
                      aesthetic=None if score is None else score - k * 0.5)
            for k in range(2)
        )
        panels.append(PanelResult(panel=panel, chosen=cands[0], candidates=cands))
    mean = sum(aesthetic) / len(aesthetic) if aesthetic else None
    scores = Scores(
        aesthetic_mean=mean,
        threshold=threshold,
        scorer={"aesthetic": "fake"} if aesthetic else {},
        note=None if aesthetic else "not computed: run `kolorsc models pull aesthetic`",
    )
    lora_result = None
    if lora:
        lora_file = write_lora(tmp_path / "style.safetensors")
        lora_result = LoraResult(path=lora_file, key="ab" * 32, rank=16, alpha=4.0, scale=2.0, trained=True,
                                 info={"rank": 16, "alpha": 4.0, "steps_per_epoch": 500, "dataset_hash": "cd" * 8})
    engine = {"name": "preview" if preview else "kolors", "version": "1"}
    return StoryResult(story=story, panels=tuple(panels), engine=engine, preview=preview, scores=scores, lora=lora_result)


def images() -> list[bytes]:
    return [make_png(i + 1) for i in range(8)]


__all__ = ["make_result", "images", "make_png", "write_lora", "write_safetensors", "replace"]
