"""Qwen's real byte-level BPE, built offline from the vocabulary file the dashscope wheel ships.

Qwen2 and Qwen3 kept Qwen's 151,643 merge ranks and its pre-tokenizer, so this tokenizer counts
the tokens of our rows exactly as the released Qwen3-VL tokenizer does.
"""

from __future__ import annotations

import base64
import importlib.util
from pathlib import Path

from motioncoach.training.tiny_model import qwen2_tokenizer

VOCAB_PACKAGE = "dashscope"
VOCAB_FILE = "resources/qwen.tiktoken"


def qwen_vocab_file() -> Path:
    """Where the installed dashscope keeps qwen.tiktoken (found without importing dashscope)."""
    spec = importlib.util.find_spec(VOCAB_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"{VOCAB_PACKAGE} is not installed: it ships Qwen's vocabulary ({VOCAB_FILE}). Run `uv sync` "
            "(it is in the dev group), or pip install dashscope."
        )
    path = Path(next(iter(spec.submodule_search_locations))) / VOCAB_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the installed {VOCAB_PACKAGE}")
    return path


def build_qwen_tokenizer():
    """A Qwen2Tokenizer with Qwen's merges and the special tokens at Qwen3-VL's ids."""
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    ranks = {
        base64.b64decode(token): int(rank)
        for token, rank in (line.split() for line in qwen_vocab_file().read_bytes().splitlines() if line)
    }
    byte_encoder = bytes_to_unicode()

    def as_text(token: bytes) -> str:
        return "".join(byte_encoder[b] for b in token)

    # A tiktoken rank table is a BPE whose merges are every split of a token into two tokens.
    merges = []
    for token, rank in ranks.items():
        splits = [
            (token[:i], token[i:], rank) for i in range(1, len(token)) if token[:i] in ranks and token[i:] in ranks
        ]
        merges += sorted(splits, key=lambda m: (ranks[m[0]], ranks[m[1]]))
    merges.sort(key=lambda m: m[2])
    return qwen2_tokenizer(
        {as_text(token): rank for token, rank in ranks.items()},
        [(as_text(left), as_text(right)) for left, right, _ in merges],
        model_max_length=262144,
    )
