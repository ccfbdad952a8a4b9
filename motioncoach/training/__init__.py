"""LoRA fine-tuning of Qwen3-VL with MS-Swift: command, run, checkpoints, verification, plot.

Every module here imports cheaply; torch, transformers, swift and peft load inside functions.
"""

from motioncoach.training.checkpoints import (
    adapter_size_bytes,
    copy_adapter,
    find_best_checkpoint,
    list_checkpoints,
    read_history,
)
from motioncoach.training.plot import plot_losses
from motioncoach.training.sft import TrainResult, latest_resumable_checkpoint, run_sft
from motioncoach.training.swift_command import swift_env, swift_launcher, swift_sft_args
from motioncoach.training.tiny_model import build_tiny_qwen3_vl
from motioncoach.training.verify import generate_with_adapter

__all__ = [
    "TrainResult",
    "adapter_size_bytes",
    "build_tiny_qwen3_vl",
    "copy_adapter",
    "find_best_checkpoint",
    "generate_with_adapter",
    "latest_resumable_checkpoint",
    "list_checkpoints",
    "plot_losses",
    "read_history",
    "run_sft",
    "swift_env",
    "swift_launcher",
    "swift_sft_args",
]
