"""Collapsed-padding prompt encoding against diffsynth's own KolorsPrompter (256 padded tokens),
on diffsynth's real ChatGLMModel at tiny size (3 layers, so the pad state is carried through
more than one layer) with random weights. In float64 the two agree to ~1e-12 (the maths is
the same); in float32 to float rounding (~2e-6 of the values' scale)."""

from __future__ import annotations

from _extras import require_models

require_models()

import pytest
import torch
from _kolors_fixtures import tiny_chatglm_config

from kolorsc.engines.kolors import encoding


@pytest.fixture(scope="module", params=[torch.float64, torch.float32], ids=["fp64", "fp32"])
def text_encoder(request):
    from diffsynth.models.kolors_text_encoder import ChatGLMConfig, ChatGLMModel

    torch.manual_seed(5)
    model = ChatGLMModel(ChatGLMConfig(**tiny_chatglm_config(num_layers=3)), empty_init=False)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "layernorm" in name:
                p.fill_(1.0)
            else:  # larger than the default init so that attention weights are far from uniform
                p.normal_(0.0, 0.5)
    return model.to(request.param).eval()


def stock(text_encoder, text: str):
    """diffsynth's KolorsPrompter path: 256 tokens, left padding, the full mask."""
    from diffsynth.prompters import KolorsPrompter

    prompter = KolorsPrompter()
    with torch.no_grad():
        return prompter.encode_prompt_using_ChatGLM(text, text_encoder, prompter.tokenizer, 256, 2, "cpu")


def close(model, reference) -> float:
    """Absolute tolerance: rounding of the model's dtype at the scale of the values."""
    eps = 1e-10 if next(model.parameters()).dtype == torch.float64 else 1e-5
    return eps * float(reference.abs().max())


def text_with_tokens(n: int) -> str:
    """A string the ChatGLM tokenizer turns into exactly n tokens (special tokens included)."""
    tok = encoding.tokenizer()
    text = ""
    while True:
        count = len(tok(text, truncation=False)["input_ids"])
        if count == n:
            return text
        assert count < n, (count, n)
        text += "山猫"[len(text) % 2]


def real_tokens(text: str) -> int:
    return int(encoding.tokenizer()(text, padding="max_length", max_length=256, truncation=True,
                                    return_tensors="pt")["attention_mask"].sum())


@pytest.mark.parametrize("case", ["short", "one pad", "truncated", "empty"])
def test_collapsed_padding_equals_the_padded_encoding(text_encoder, case):
    text = {
        "short": "二次元，一个紫色长发小女孩穿着粉色吊带漏肩连衣裙，在练习室练习唱歌",
        "one pad": text_with_tokens(255),
        "truncated": "一只猫在屋顶上晒太阳，" * 40,
        "empty": "",
    }[case]
    expected_pads = {"one pad": 1, "truncated": 0}.get(case)
    if expected_pads is not None:
        assert 256 - real_tokens(text) == expected_pads
    want_seq, want_pooled = stock(text_encoder, text)
    got = encoding.encode_text(text_encoder, text, "cpu")
    assert got.sequence.shape == want_seq.shape == (1, 256, 32)
    assert got.pooled.shape == want_pooled.shape
    tol = close(text_encoder, want_seq)
    torch.testing.assert_close(got.sequence, want_seq, rtol=0, atol=tol)
    torch.testing.assert_close(got.pooled, want_pooled, rtol=0, atol=tol)


def test_the_pad_bias_is_what_makes_it_equal(text_encoder, monkeypatch):
    """Without log(pads) on the pad key the pad positions come out different: the test above
    would catch a collapsed encoding that merely drops padding."""
    text = "一只猫"
    want_seq, _ = stock(text_encoder, text)
    real = encoding.pad_bias

    def no_log(real_n, pads, dtype, device="cpu"):
        bias = real(real_n, pads, dtype, device)
        bias[0, 0, 0, 0] = 0.0
        return bias

    monkeypatch.setattr(encoding, "pad_bias", no_log)
    got = encoding.encode_text(text_encoder, text, "cpu")
    pads = 256 - real_tokens(text)
    tol = close(text_encoder, want_seq)
    assert (got.sequence[:, :pads] - want_seq[:, :pads]).abs().max() > 1000 * tol
    torch.testing.assert_close(got.sequence[:, pads:], want_seq[:, pads:], rtol=0, atol=tol)


def test_pad_bias_layout():
    bias = encoding.pad_bias(3, 10, torch.float32)[0, 0]
    inf = float("-inf")
    assert bias.tolist() == [
        [pytest.approx(2.302585, abs=1e-6), 0.0, 0.0, 0.0],
        [inf, 0.0, inf, inf],
        [inf, 0.0, 0.0, inf],
        [inf, 0.0, 0.0, 0.0],
    ]
