"""What a failed `swift sft` run means for the user, and what to change before running it again."""

from __future__ import annotations

import re

from motioncoach.config import TrainConfig

_STALLED = "logged no training step"
_OUT_OF_MEMORY = re.compile(r"CUDA out of memory|OutOfMemoryError|CUBLAS_STATUS_ALLOC_FAILED", re.IGNORECASE)


def is_out_of_memory(text: str) -> bool:
    return bool(_OUT_OF_MEMORY.search(text))


def explain_training_failure(text: str, config: TrainConfig) -> str:
    """The error a user sees: deterministic failures are not retried, so say what to change."""
    if is_out_of_memory(text):
        return (
            "Training ran out of GPU memory. It was not retried: the same data, seed and settings run out "
            "at the same step. Change one of: TrainConfig.per_device_train_batch_size "
            f"({config.per_device_train_batch_size}; keep the effective batch by raising "
            f"gradient_accumulation_steps, now {config.gradient_accumulation_steps}), max_length "
            f"({config.max_length}), max_pixels ({config.max_pixels}), or deepspeed "
            f"('{config.deepspeed}': 'zero2' shards gradients and Adam states over the GPUs). "
            "A rerun with changed settings is a new run and starts from the beginning; one with the same settings "
            "starts again from this run's latest resumable checkpoint.\n" + text
        )
    if _STALLED in text:
        return (
            "Training stopped making progress and was stopped, not retried (a hang would hang again at the same "
            "price). A rerun starts it again from the run's latest resumable checkpoint; raise "
            "TrainConfig.stall_timeout_s if steps are legitimately that slow.\n" + text
        )
    return (
        "Training failed inside swift sft; it was not retried, since a failing command fails the same way "
        "again. Fix what the last lines say; a rerun starts it again from the run's latest resumable checkpoint.\n"
        + text
    )
