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
        from remote import client as modal_client
        from remote import steps as modal_steps

        settings = ModalConfig(max_download_bytes=max_download_mb * 1_000_000)
        remote = modal_client.connect(modal_steps.trained_data_dir(trained), settings)
        _, command = modal_steps.place_adapter(remote, trained, adapter_dir)
        if command:
            logger.warning("the adapter is too large to download; it stays on the volume. Fetch it with:\n%s", command)
            _publish_placed(adapter_dir, trained, command)
            return adapter_dir
    else:
        copy_adapter(trained.checkpoint, adapter_dir)
        shutil.copyfile(trained.loss_plot, adapter_dir / "loss.png")
    logger.info("adapter placed in %s (from %s)", adapter_dir, trained.checkpoint)
    _publish_placed(adapter_dir, trained, None)
    return adapter_dir


@task(name="merge-release", cache_policy=NO_CACHE)
def merge_release(trained: TrainedAdapter, adapter_dir: Path) -> str:
    """Modal: fold the adapter into its base model on the volume, the release vLLM loads whole (vision
    tower and mergers included); kept when already merged from the same adapter. Its volume path."""
    from remote import client as modal_client
    from remote import steps as modal_steps

    remote = modal_client.connect(modal_steps.trained_data_dir(trained))
    merged = modal_steps.merge_release(remote, trained, Path(adapter_dir))
    get_run_logger().info("merged release on the volume: %s", merged)
    return merged


def _publish_placed(adapter_dir: Path, trained: TrainedAdapter, command: str | None) -> None:
    """The adapter-download artifact, on every run: the files placed here, or how to fetch them."""
    if command:
        text = (
            f"The adapter (best checkpoint, eval_loss {trained.eval_loss}) stays on the Modal volume. "
            f"Fetch it with\n\n```\n{command}\n```\n"
        )
    else:
        files = "\n".join(
            f"| {p.name} | {p.stat().st_size:,} |" for p in sorted(Path(adapter_dir).iterdir()) if p.is_file()
        )
        text = (
            f"The adapter (best checkpoint, eval_loss {trained.eval_loss}) is in the adapter dir of the machine "
            f"that ran this flow.\n\n| file | bytes |\n|---|---|\n{files}\n"
        )
    reporting.markdown("adapter-download", text, "Where the trained adapter is, and how to get it")
