"""One training session: which config, where it runs, and the proof that its adapter works."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel

from motioncoach.config import TrainConfig, local_train_config
from motioncoach.dataset import SplitSummary

TINY_MODEL_DIR = "models/tiny-qwen3-vl"
RUNS_DIR = "runs"


class TrainedAdapter(BaseModel):
    """What a finished training session leaves: its best checkpoint and how it got there."""

    config: TrainConfig
    run_dir: Path
    checkpoint: Path
    eval_loss: float | None
    history: list[dict]
    loss_plot: Path
    sample_output: str


def local_config(data_dir: Path) -> TrainConfig:
    """The CPU recipe on the tiny Qwen3-VL, built once inside the data dir."""
    from motioncoach.training.tiny_model import build_tiny_qwen3_vl

    return local_train_config(build_tiny_qwen3_vl(Path(data_dir) / TINY_MODEL_DIR))


def run_dir_for(split: SplitSummary, config: TrainConfig, data_dir: Path) -> Path:
    """A run folder per (data, config): a rerun of the same pair resumes instead of starting over."""
    key = hashlib.sha256(f"{split.train.sha256}:{split.val.sha256}:{config.fingerprint()}".encode()).hexdigest()
    return Path(data_dir) / RUNS_DIR / key[:16]


def train(
    split: SplitSummary,
    config: TrainConfig,
    data_dir: Path,
    on_log: Callable[[dict], None] | None = None,
) -> TrainedAdapter:
    """Run `swift sft`, keep the checkpoint with the lowest eval_loss, and generate once with it."""
    from motioncoach.training.plot import plot_losses
    from motioncoach.training.sft import run_sft

    run_dir = run_dir_for(split, config, data_dir)
    result = run_sft(
        config,
        dataset=split.train.path,
        val_dataset=split.val.path,
        image_root=Path(data_dir),
        output_dir=run_dir,
        on_log=on_log,
    )
    return TrainedAdapter(
        config=config,
        run_dir=result.output_dir,
        checkpoint=result.best_checkpoint,
        eval_loss=result.best_eval_loss,
        history=result.history,
        loss_plot=plot_losses(result.history, result.output_dir / "loss.png"),
        sample_output=generate_on_first_val_row(config, result.best_checkpoint, split, Path(data_dir)),
    )


def generate_on_first_val_row(config: TrainConfig, adapter: Path, split: SplitSummary, data_dir: Path) -> str:
    """Load the adapter on its base with PEFT and answer the first validation prompt."""
    from motioncoach.training.verify import generate_with_adapter

    return generate_with_adapter(Path(config.base_model), adapter, split.val.path, Path(data_dir), config.max_pixels)
