"""Answers to validation prompts: the base model and the base model plus the LoRA adapter.

The base is loaded once; PEFT's disable_adapter() gives its own answers, so both models are
compared on identical weights, prompts, image sizes and greedy decoding. Heavy imports stay inside.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Prompt:
    """What a model is asked for one validation row."""

    key: str  # the row's image path relative to the data dir: identifies the row
    system: str
    user: str  # without the image tag: the image goes first, as in training
    image: Path


# The evaluator's seam: prompts in, one answer text per prompt out, in order.
Generate = Callable[[list[Prompt]], list[str]]


class PeftGenerators:
    """A base model with a LoRA adapter on top, answering greedily in batches."""

    def __init__(
        self, base_model: str | Path, adapter_dir: Path, *, max_new_tokens: int, batch_size: int, max_pixels: int
    ):
        import torch
        from peft import PeftModel
        from transformers import AutoModelForImageTextToText, AutoProcessor

        self.max_new_tokens = max_new_tokens
        self.batch_size = batch_size
        self.max_pixels = max_pixels
        self.processor = AutoProcessor.from_pretrained(base_model)
        self.processor.tokenizer.padding_side = "left"  # decoder-only batches pad on the left
        cuda = torch.cuda.is_available()
        # float32 on CPU (bf16 matmuls there are slow or unsupported); the checkpoint's dtype on GPU.
        base = AutoModelForImageTextToText.from_pretrained(
            base_model, dtype="auto" if cuda else torch.float32, device_map="auto" if cuda else None
        )
        self.model = PeftModel.from_pretrained(base, adapter_dir).eval()

    def base(self, prompts: list[Prompt]) -> list[str]:
        """The base model's answers (the adapter switched off)."""
        with self.model.disable_adapter():
            return self._answer(prompts)

    def adapter(self, prompts: list[Prompt]) -> list[str]:
        """The fine-tuned answers."""
        return self._answer(prompts)

    def _answer(self, prompts: Sequence[Prompt]) -> list[str]:
        answers: list[str] = []
        for start in range(0, len(prompts), self.batch_size):
            answers += self._batch(prompts[start : start + self.batch_size])
        return answers

    def _batch(self, prompts: Sequence[Prompt]) -> list[str]:
        import torch

        texts = [
            self.processor.apply_chat_template(_messages(p), add_generation_prompt=True, tokenize=False)
            for p in prompts
        ]
        images = [_load_image(p.image, self.max_pixels) for p in prompts]
        inputs = self.processor(text=texts, images=images, padding=True, return_tensors="pt").to(self.model.device)
        with torch.no_grad():
            output = self.model.generate(**inputs, max_new_tokens=self.max_new_tokens, do_sample=False)
        prompt_length = inputs["input_ids"].shape[1]
        return [self.processor.decode(row[prompt_length:], skip_special_tokens=True) for row in output]


def load_generators(base_model: str | Path, adapter_dir: Path, **settings: Any) -> dict[str, Generate]:
    """{"base": ..., "adapter": ...} sharing one loaded model."""
    models = PeftGenerators(base_model, adapter_dir, **settings)
    return {"base": models.base, "adapter": models.adapter}


def _messages(prompt: Prompt) -> list[dict]:
    messages = [{"role": "system", "content": [{"type": "text", "text": prompt.system}]}] if prompt.system else []
    return messages + [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt.user}]},
    ]


def _load_image(path: Path, max_pixels: int):
    """The image in RGB, shrunk to at most max_pixels as MS-Swift does for training."""
    from PIL import Image

    with Image.open(path) as img:
        image = img.convert("RGB")
    pixels = image.width * image.height
    if pixels > max_pixels:
        scale = math.sqrt(max_pixels / pixels)
        image = image.resize((max(1, int(image.width * scale)), max(1, int(image.height * scale))), Image.BICUBIC)
    return image
