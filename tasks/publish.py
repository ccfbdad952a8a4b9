"""Place the trained adapter where the user asked for it."""

from __future__ import annotations

import shutil
from pathlib import Path

from motioncoach.training.checkpoints import copy_adapter
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from motioncoach.training.session import TrainedAdapter
from tasks import reporting


@task(name="place-adapter", cache_policy=NO_CACHE)
def place_adapter(trained: TrainedAdapter, adapter_dir: Path) -> Path:
    """Copy the best checkpoint's adapter and its loss plot into adapter_dir (always: it is cheap)."""
    copy_adapter(trained.checkpoint, adapter_dir)
    shutil.copyfile(trained.loss_plot, adapter_dir / "loss.png")
    get_run_logger().info("adapter placed in %s (from %s)", adapter_dir, trained.checkpoint)
    reporting.link("adapter", adapter_dir, f"LoRA adapter (eval_loss {trained.eval_loss}) from {trained.checkpoint}")
    return adapter_dir
