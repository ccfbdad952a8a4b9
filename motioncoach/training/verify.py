"""Prove a trained adapter is usable: load it onto its base model with PEFT and answer the first validation
row, through the serving path (motioncoach.serving), as the evaluation and the served model do."""

from __future__ import annotations

from pathlib import Path


def generate_with_adapter(
    base_model: Path, adapter_dir: Path, val_path: Path, data_dir: Path, max_pixels: int, max_new_tokens: int = 16
) -> str:
    """Greedy-decode the base model plus LoRA adapter's answer to the first row of a split file."""
    from motioncoach.dataset import read_jsonl
    from motioncoach.serving.backends import TransformersBackend
    from motioncoach.serving.prompt import row_prompt

    backend = TransformersBackend(base_model, adapter_dir, max_new_tokens=max_new_tokens, batch_size=1)
    return backend.generate([row_prompt(read_jsonl(val_path)[0], data_dir, max_pixels)])[0]
