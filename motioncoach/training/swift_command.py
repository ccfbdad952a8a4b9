"""The `swift sft` command line and environment, built from one TrainConfig.

The same functions serve the 2-core local run and the 8-GPU production run: only the config
differs, so what is tested locally is the command production executes.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from motioncoach.config import TrainConfig
from motioncoach.training.geometry import geometry_of
from motioncoach.training.memory import resolve_deepspeed


def deepspeed_choice(config: TrainConfig) -> str | None:
    """The --deepspeed value this config trains with (None: plain DDP)."""
    return resolve_deepspeed(
        config.deepspeed,
        geometry_of(config.base_model),
        lora_rank=config.lora_rank,
        processes=config.nproc_per_node,
    )


def _distributed(config: TrainConfig) -> bool:
    """Whether swift runs under torchrun: several processes, or DeepSpeed (which needs a process group)."""
    return config.nproc_per_node > 1 or deepspeed_choice(config) is not None


def swift_launcher(config: TrainConfig) -> list[str]:
    """The interpreter-relative command that starts `swift sft` for config's process count."""
    if _distributed(config):
        # What the `swift` console script runs: it starts torchrun when NPROC_PER_NODE is set.
        return [sys.executable, "-m", "swift.cli.main", "sft"]
    # The module that launcher would spawn anyway; calling it directly saves an interpreter start
    # that imports torch (about 10 s on 2 cores).
    return [sys.executable, "-m", "swift.cli.sft"]


def swift_sft_args(
    config: TrainConfig,
    *,
    dataset: Path,
    val_dataset: Path,
    output_dir: Path,
    resume_from_checkpoint: Path | None = None,
) -> list[str]:
    """The arguments after `swift sft`, every flag checked against ms-swift 4.6."""
    c = config
    args = {
        "model": _model_ref(c.base_model),
        # Auto-detection is ambiguous for a local directory; name both explicitly.
        "model_type": c.model_type,
        "template": c.template,
        # ms-swift 4.6 renamed --train_type to --tuner_type and rejects the old name.
        "tuner_type": "lora",
        "lora_rank": c.lora_rank,
        "lora_alpha": c.lora_alpha,
        "lora_dropout": c.lora_dropout,
        "target_modules": c.target_modules,
        "freeze_vit": c.freeze_vit,
        "freeze_aligner": c.freeze_aligner,
        "dataset": Path(dataset).resolve(),
        "val_dataset": Path(val_dataset).resolve(),
        "num_train_epochs": c.num_train_epochs,
        "max_steps": c.max_steps,
        "learning_rate": c.learning_rate,
        "lr_scheduler_type": c.lr_scheduler_type,
        "warmup_ratio": c.warmup_ratio,
        "per_device_train_batch_size": c.per_device_train_batch_size,
        "per_device_eval_batch_size": c.per_device_eval_batch_size,
        "gradient_accumulation_steps": c.gradient_accumulation_steps,
        "torch_dtype": c.torch_dtype,
        "attn_impl": c.attn_impl,
        "max_length": c.max_length,
        "save_strategy": "steps",
        "eval_strategy": "steps",
        "save_steps": c.save_steps,
        "eval_steps": c.eval_steps,
        "logging_steps": c.logging_steps,
        "save_total_limit": c.save_total_limit,
        # With a metric set, transformers tracks the best checkpoint and never rotates it away.
        # --load_best_model_at_end is left off: we pick the best checkpoint from disk ourselves,
        # and it would also force save_steps to be a multiple of eval_steps.
        "metric_for_best_model": "eval_loss",
        "gradient_checkpointing": c.gradient_checkpointing,
        "deepspeed": deepspeed_choice(c),
        "dataloader_num_workers": c.dataloader_num_workers,
        "seed": c.seed,
        # Otherwise swift asks ModelScope about the model, with retries, even for a local dir.
        "check_model": False,
        "report_to": "none",
        # Keep checkpoints directly under output_dir (no v0-<timestamp>/), so resume finds them.
        "add_version": False,
        "output_dir": Path(output_dir).resolve(),
        "resume_from_checkpoint": Path(resume_from_checkpoint).resolve() if resume_from_checkpoint else None,
    }
    argv: list[str] = []
    for name, value in args.items():
        if value is None:
            continue
        argv += [f"--{name}", _flag_value(value)]
    return argv


def swift_env(config: TrainConfig, image_root: Path) -> dict[str, str]:
    """Environment variables `swift sft` needs, to be merged over os.environ."""
    env = {
        # Dataset rows name images relative to the data dir; swift joins them onto this.
        "ROOT_IMAGE_DIR": str(Path(image_root).resolve()),
        # swift turns this into qwen_vl_utils' IMAGE_MAX_TOKEN_NUM (pixels / 32**2 for Qwen3-VL).
        "MAX_PIXELS": str(config.max_pixels),
        # Everything is local: without these, datasets and hub send HEAD requests and wait.
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        # Grow segments instead of fragmenting fixed blocks: images of different sizes otherwise
        # leave reserved-but-unusable memory that the 32B run cannot spare.
        "PYTORCH_CUDA_ALLOC_CONF": "expandable_segments:True",
    }
    # Split the cores between the training processes instead of letting each take them all.
    threads = str(max(1, _cpu_count() // config.nproc_per_node))
    env |= {"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
    if _distributed(config):
        # swift's CLI launches torchrun with this many processes.
        env["NPROC_PER_NODE"] = str(config.nproc_per_node)
    return env


def _model_ref(base_model: str) -> str:
    """A local model directory made absolute (swift runs in the output dir); a hub id unchanged."""
    path = Path(base_model).expanduser()
    return str(path.resolve()) if path.exists() else base_model


def _flag_value(value: object) -> str:
    """Render a value the way swift's HfArgumentParser reads it."""
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def _cpu_count() -> int:
    """CPUs this process may use (respects affinity and container limits better than cpu_count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1
