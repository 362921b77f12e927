"""What Kolors actually reads of a prompt: its text encoder sees 256 tokens, the rest is cut.

Kolors' ChatGLM3 tokenizer puts two tokens ([gMASK], sop) before the text and truncates to
256, so 254 tokens of text survive (diffsynth's KolorsPrompter: max_length 256,
truncation=True). `kolorsc check` warns when a compiled prompt or negative is longer, and
says where the cut falls.

Exact when the `models` extra is installed: the tokenizer that ships inside diffsynth
(`tokenizer_configs/kolors/tokenizer/tokenizer.model`) is a SentencePiece model, read here
with sentencepiece directly. diffsynth's `ChatGLMTokenizer` wraps the same model, but
importing it imports torch and diffsynth (~10 s): far too slow for `check`. A test asserts
that both give the same tokens. Without the extra the count is an estimate from character
classes (measured on the example stories), and the warning says "about".
"""

from __future__ import annotations

import functools
import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path

from kolorsc.errors import WARNING, Diagnostic
from kolorsc.i18n import N_, _
from kolorsc.spec.compose import compiled_negative, compiled_prompt
from kolorsc.spec.model import Story

MAX_TOKENS = 256  # diffsynth KolorsPrompter: padding="max_length", max_length=256, truncation
PREFIX_TOKENS = 2  # [gMASK] and sop, added by ChatGLMTokenizer before the text
TEXT_TOKENS = MAX_TOKENS - PREFIX_TOKENS
TOKENIZER_MODEL = ("tokenizer_configs", "kolors", "tokenizer", "tokenizer.model")

# Estimate without the tokenizer: ChatGLM3 gives ~0.8 token per CJK character and ~0.25 per
# other character on the example stories (measured with the real tokenizer); rounded up.
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af\u3000-\u303f\uff00-\uffef]")
_PER_CJK = 0.85
_PER_OTHER = 0.27


@dataclass(frozen=True)
class TokenCount:
    tokens: int  # text tokens (without the two prefix tokens)
    exact: bool  # counted with Kolors' tokenizer, or estimated
    kept: int  # characters of the text Kolors reads (all of them when tokens <= TEXT_TOKENS)


def tokenizer_model() -> Path | None:
    """diffsynth's Kolors tokenizer model file, found without importing diffsynth (or None)."""
    try:
        spec = importlib.util.find_spec("diffsynth")
        has_sentencepiece = importlib.util.find_spec("sentencepiece") is not None
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations or not has_sentencepiece:
        return None
    path = Path(list(spec.submodule_search_locations)[0]).joinpath(*TOKENIZER_MODEL)
    return path if path.is_file() else None


@functools.lru_cache(maxsize=1)
def _processor():
    path = tokenizer_model()
    if path is None:
        return None
    try:
        import sentencepiece

        return sentencepiece.SentencePieceProcessor(model_file=str(path))
    except Exception:  # noqa: BLE001 - a broken install means "estimate", never a failed check
        return None


def count_tokens(text: str) -> TokenCount:
    """How many tokens Kolors' text encoder gets from `text`, and how much of it it keeps."""
    sp = _processor()
    if sp is None:
        return _estimate(text)
    ids = sp.encode(text)
    if len(ids) <= TEXT_TOKENS:
        return TokenCount(len(ids), True, len(text))
    return TokenCount(len(ids), True, _kept_characters(sp, text, ids))


def _kept_characters(sp, text: str, ids: list[int]) -> int:
    """Characters of `text` covered by its first TEXT_TOKENS tokens."""
    try:
        proto = sp.encode(text, return_type="proto")
        end = proto.pieces[TEXT_TOKENS - 1].end  # byte offset in the UTF-8 text
        return len(text.encode("utf-8")[:end].decode("utf-8", errors="ignore"))
    except Exception:  # noqa: BLE001 - older sentencepiece: decode the kept tokens instead
        return len(sp.decode(ids[:TEXT_TOKENS]))


def _estimate(text: str) -> TokenCount:
    total, kept = 0.0, len(text)
    for i, ch in enumerate(text):
        total += _PER_CJK if _CJK.match(ch) else _PER_OTHER
        if total > TEXT_TOKENS and kept == len(text):
            kept = i
    return TokenCount(int(total + 0.999), False, kept)


def truncation_warnings(story: Story, rendered) -> list[Diagnostic]:
    """A warning for each compiled prompt or negative longer than Kolors reads.
    `rendered` are the story's RenderedScenes (kolorsc.spec.templates)."""
    out = []
    for r in rendered:
        scene = r.scene
        texts = [("prompt", compiled_prompt(story, scene, r.prompt), scene.prompt_loc)]
        texts.append(("negative", compiled_negative(story, r.negative), scene.negative_loc or scene.loc))
        for what, text, loc in texts:
            if len(text.encode("utf-8")) < TEXT_TOKENS:
                continue  # every token but the leading space covers a byte or more: it cannot be cut
            count = count_tokens(text)
            if count.tokens > TEXT_TOKENS:
                out.append(_warning(scene.index, what, text, count, loc))
    return out


_WHAT = {"prompt": N_("prompt"), "negative": N_("negative")}
_EXACT = N_("the compiled {what} of scene {n} is {tokens} tokens; Kolors reads {limit} (its text encoder takes "
            "{max} with 2 start tokens) and cuts it after character {kept} of {length}: …{before}| {after}…")
_ESTIMATE = N_("the compiled {what} of scene {n} is about {tokens} tokens; Kolors reads {limit} (its text encoder "
               "takes {max} with 2 start tokens) and cuts it after character {kept} of {length}: …{before}| {after}…")


def _warning(index: int, what: str, text: str, count: TokenCount, loc) -> Diagnostic:
    before = text[max(0, count.kept - 12):count.kept]
    after = text[count.kept:count.kept + 12]
    message = _(_EXACT if count.exact else _ESTIMATE).format(
        what=_(_WHAT[what]), n=index + 1, tokens=count.tokens, limit=TEXT_TOKENS, max=MAX_TOKENS, kept=count.kept,
        length=len(text), before=before, after=after)
    hint = _("shorten it, or put what matters first") + (
        "" if count.exact else _(" (an estimate: install kolorsc[models] for an exact count)"))
    return Diagnostic(loc.file, loc.line, loc.col, f"scenes[{index}].{what}", message, hint, severity=WARNING)
