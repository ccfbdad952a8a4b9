"""The models that answer prompts: transformers (with a LoRA adapter through PEFT, or merged weights) and any
OpenAI-compatible chat server (vLLM's). All decode greedily, so one prompt gets one answer whoever asks.

Heavy imports (torch, transformers, peft, openai) stay inside the classes.
"""

from __future__ import annotations

import base64
import io
import json
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Protocol

from motioncoach.errors import ConfigurationError
from motioncoach.serving.prompt import Prompt

log = logging.getLogger(__name__)

ADAPTER_CONFIG = "adapter_config.json"


class Backend(Protocol):
    """Prompts in, one answer text per prompt out, in order."""

    name: str

    def generate(self, prompts: Sequence[Prompt]) -> list[str]: ...


def chat_messages(prompt: Prompt, image_part: dict) -> list[dict]:
    """The conversation a prompt is: the system turn, then the photo before the user's text (as in training)."""
    system = [{"role": "system", "content": [{"type": "text", "text": prompt.system}]}] if prompt.system else []
    return system + [{"role": "user", "content": [image_part, {"type": "text", "text": prompt.user}]}]


class TransformersBackend:
    """A Qwen3-VL in transformers: a merged model, or a base model with a LoRA adapter applied by PEFT.

    Answers in batches, greedily. `without_adapter()` answers as the base model with the same loaded
    weights, prompts and decoding (PEFT switches the adapter off), which is how the evaluation compares them.
    """

    def __init__(
        self,
        model_dir: str | Path,
        adapter_dir: str | Path | None = None,
        *,
        max_new_tokens: int,
        batch_size: int = 8,
        name: str = "transformers",
    ):
        import torch
        from transformers import AutoModelForImageTextToText, AutoProcessor

        self.name = name
        self.max_new_tokens = max_new_tokens
        self.batch_size = batch_size
        self.processor = AutoProcessor.from_pretrained(model_dir)
        self.processor.tokenizer.padding_side = "left"  # decoder-only batches pad on the left
        cuda = torch.cuda.is_available()
        # float32 on CPU (bf16 matmuls there are slow or unsupported); the checkpoint's dtype on GPU.
        model = AutoModelForImageTextToText.from_pretrained(
            model_dir, dtype="auto" if cuda else torch.float32, device_map="auto" if cuda else None
        )
        self.has_adapter = adapter_dir is not None
        if adapter_dir is not None:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, adapter_dir)
        self.model = model.eval()
        self._adapter_enabled = True

    def generate(self, prompts: Sequence[Prompt]) -> list[str]:
        answers: list[str] = []
        for start in range(0, len(prompts), self.batch_size):
            answers += self._batch(prompts[start : start + self.batch_size])
        return answers

    def without_adapter(self) -> Backend:
        """The base model's answers from the same loaded weights (the adapter switched off)."""
        if not self.has_adapter:
            raise ConfigurationError("this model has no adapter to switch off")
        return _BaseView(self)

    def _batch(self, prompts: Sequence[Prompt]) -> list[str]:
        import torch

        texts = [
            self.processor.apply_chat_template(
                chat_messages(p, {"type": "image"}), add_generation_prompt=True, tokenize=False
            )
            for p in prompts
        ]
        images = [p.pixels() for p in prompts]
        inputs = self.processor(text=texts, images=images, padding=True, return_tensors="pt").to(self.model.device)
        with torch.no_grad():
            output = self.model.generate(**inputs, max_new_tokens=self.max_new_tokens, do_sample=False)
        prompt_length = inputs["input_ids"].shape[1]
        return [self.processor.decode(row[prompt_length:], skip_special_tokens=True) for row in output]


class _BaseView:
    """The base model inside a TransformersBackend with an adapter."""

    def __init__(self, backend: TransformersBackend):
        self.backend = backend
        self.name = f"{backend.name} (adapter off)"

    def generate(self, prompts: Sequence[Prompt]) -> list[str]:
        with self.backend.model.disable_adapter():
            return self.backend.generate(prompts)


class OpenAIChatBackend:
    """A model behind an OpenAI-compatible chat API: `vllm serve`, or the app's own vLLM server.

    Each prompt is one chat completion at temperature 0; up to `concurrency` are in flight at once, so
    the server batches them (vLLM schedules continuously). Photos go as lossless PNG data URLs, already
    resized as training resized them. timeout_s and max_retries bound one answer's wait: a server in front
    of this backend keeps them inside its own request deadline.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        max_tokens: int,
        api_key: str | None = None,
        concurrency: int = 64,
        timeout_s: float = 300.0,
        max_retries: int = 2,
        name: str = "openai-chat",
    ):
        self.name = name
        self.model = model
        self.max_tokens = max_tokens
        self.concurrency = concurrency
        self.client = openai_client(base_url, api_key, timeout_s=timeout_s, max_retries=max_retries)

    def generate(self, prompts: Sequence[Prompt]) -> list[str]:
        if not prompts:
            return []
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(prompts))) as pool:
            return list(pool.map(self._answer, prompts))

    def _answer(self, prompt: Prompt) -> str:
        part = {"type": "image_url", "image_url": {"url": png_data_url(prompt.pixels())}}
        messages = [
            {"role": m["role"], "content": m["content"] if m["role"] == "user" else m["content"][0]["text"]}
            for m in chat_messages(prompt, part)
        ]
        completion = self.client.chat.completions.create(
            model=self.model, messages=messages, temperature=0.0, max_tokens=self.max_tokens, seed=0
        )
        return completion.choices[0].message.content or ""


def openai_client(base_url: str, api_key: str | None, *, timeout_s: float = 30.0, max_retries: int = 2):
    """The OpenAI SDK's client for a server's /v1 base URL."""
    from openai import OpenAI

    # vLLM accepts any key unless started with --api-key; the SDK insists on one being set.
    return OpenAI(base_url=base_url, api_key=api_key or "EMPTY", timeout=timeout_s, max_retries=max_retries)


def served_model_id(base_url: str, api_key: str | None = None) -> str:
    """The model an OpenAI-compatible server serves (the first it lists: vLLM serves one per process)."""
    import openai

    try:
        models = openai_client(base_url, api_key, max_retries=0).models.list().data
    except openai.APIError as exc:
        raise ConfigurationError(f"{base_url}/models did not list the served model: {exc}") from None
    if not models:
        raise ConfigurationError(f"{base_url}/models lists no model: start the server with one")
    return models[0].id


def png_data_url(image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def is_adapter(path: Path) -> bool:
    """A LoRA adapter directory (PEFT's adapter_config.json), as opposed to a whole model."""
    return (Path(path) / ADAPTER_CONFIG).is_file()


def adapter_base_model(adapter_dir: Path) -> str:
    """The base model an adapter was trained on, as its adapter_config.json records it."""
    config = json.loads((Path(adapter_dir) / ADAPTER_CONFIG).read_text())
    base = config.get("base_model_name_or_path")
    if not base:
        raise ConfigurationError(f"{adapter_dir}/{ADAPTER_CONFIG} names no base model: pass --base-model")
    return base
