"""Place the trained adapter where the user asked for it."""

from __future__ import annotations

import shutil
from pathlib import Path

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from motioncoach.config import ModalConfig, Profile
from motioncoach.training.checkpoints import copy_adapter
from motioncoach.training.session import TrainedAdapter
from tasks import reporting


@task(name="place-adapter", cache_policy=NO_CACHE)
def place_adapter(
    trained: TrainedAdapter, adapter_dir: Path, profile: Profile = Profile.local, max_download_mb: int = 2000
) -> Path:
    """Copy the best checkpoint's adapter and its loss plot into adapter_dir (always: it is cheap).

    On Modal the best checkpoint is packaged on the volume; it is downloaded when under the size
    limit (2 GB), otherwise the `modal volume get` command that fetches it is logged and published.
    """
    logger = get_run_logger()
    if profile == Profile.modal:
        from tasks import modal_client, modal_steps

        settings = ModalConfig(max_download_bytes=max_download_mb * 1_000_000)
        remote = modal_client.connect(modal_steps.trained_data_dir(trained), settings)
        _, command = modal_steps.place_adapter(remote, trained, adapter_dir)
        if command:
            logger.warning("the adapter is too large to download; it stays on the volume. Fetch it with:\n%s", command)
            reporting.markdown(
                "adapter-download",
                f"The adapter (best checkpoint {trained.checkpoint}) is on the Modal volume. Fetch it with\n\n"
                f"```\n{command}\n```\n",
                "How to download the adapter from the Modal volume",
            )
            return adapter_dir
    else:
        copy_adapter(trained.checkpoint, adapter_dir)
        shutil.copyfile(trained.loss_plot, adapter_dir / "loss.png")
    logger.info("adapter placed in %s (from %s)", adapter_dir, trained.checkpoint)
    reporting.link("adapter", adapter_dir, f"LoRA adapter (eval_loss {trained.eval_loss}) from {trained.checkpoint}")
    return adapter_dir
