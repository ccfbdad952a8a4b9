"""The base model and the fine-tuned model as a release is served, one after the other.

Every measurement (the evaluation, the benchmarks) asks both through here, so the student is always
the served one and the base is never asked with the adapter on:
- vllm: the merged release, then the base, each in a `vllm serve` of its own (one GPU holds one);
- transformers with a merged release: the merged weights, then the base, each loaded whole;
- transformers with an adapter: one base model, answering with the adapter on and, for the base,
  switched off by PEFT (`TransformersBackend.without_adapter`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from motioncoach.serving.backends import Backend


@dataclass(frozen=True)
class Served:
    """One model to ask: its role (base or adapter), its backend, and how it is served, in words."""

    role: str
    backend: Backend
    served_as: str


def served_models(
    base: str,
    adapter: Path | None,
    merged: str | None,
    engine: str,
    *,
    max_new_tokens: int,
    batch_size: int,
    skip: frozenset[str] = frozenset(),
    log_dir: Path | None = None,
) -> Iterator[Served]:
    """Each model in turn, the adapter first (a vLLM server holds the GPU only while its model answers);
    the roles in skip are not loaded at all."""
    if engine == "vllm":
        from motioncoach.serving.backends import OpenAIChatBackend
        from motioncoach.serving.vllm import VLLM_VERSION, VLLMServer

        for role, weights in (("adapter", merged), ("base", base)):
            if role in skip:
                continue
            if weights is None:
                raise ValueError("vLLM serves the merged release: merge the adapter first")
            log_path = Path(log_dir) / f"vllm-{role}.log" if log_dir else None
            with VLLMServer(str(weights), log_path=log_path) as server:
                backend = OpenAIChatBackend(
                    server.base_url, server.served_model, max_tokens=max_new_tokens, concurrency=batch_size,
                    name=f"vLLM {VLLM_VERSION}",
                )  # fmt: skip
                yield Served(role, backend, f"{'the merged release' if role == 'adapter' else base} in vLLM")
        return
    from motioncoach.serving.backends import TransformersBackend

    if merged:
        for role, weights in (("adapter", merged), ("base", base)):
            if role not in skip:
                backend = TransformersBackend(weights, max_new_tokens=max_new_tokens, batch_size=batch_size)
                yield Served(role, backend, f"{'the merged release' if role == 'adapter' else base} in transformers")
        return
    if adapter is None:
        raise ValueError("no adapter and no merged release to ask")
    adapted = TransformersBackend(
        base, adapter, max_new_tokens=max_new_tokens, batch_size=batch_size, name="transformers + PEFT"
    )
    if "adapter" not in skip:
        yield Served("adapter", adapted, "the base model with the LoRA adapter applied by PEFT, in transformers")
    if "base" not in skip:
        yield Served("base", adapted.without_adapter(), "the base model (the adapter switched off), in transformers")
