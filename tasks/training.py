"""Train the LoRA adapter."""

from __future__ import annotations

from pathlib import Path

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from motioncoach.config import Profile, TrainConfig, smoke_train_config
from motioncoach.dataset import SplitSummary, load_split
from motioncoach.training.session import TrainedAdapter, local_config, train
from tasks import reporting
from tasks.storage import keyed


@task(name="find-split", cache_policy=NO_CACHE)
def find_split(data_dir: Path) -> SplitSummary:
    """The split written by build-dataset, hashed, or a clear error if there is none."""
    return load_split(data_dir)


@task(name="train-adapter", cache_policy=keyed("training"))
def train_adapter(splits: SplitSummary, profile: Profile, data_dir: Path, smoke: bool = False) -> TrainedAdapter:
    """LoRA SFT with MS-Swift (tiny model on CPU, or 32B on 8xH200 on Modal); the best checkpoint by eval_loss."""
    logger = get_run_logger()
    if profile == Profile.modal:
        config = smoke_train_config() if smoke else TrainConfig()
    else:
        config = local_config(data_dir)
    total = config.max_steps or _expected_steps(splits, config)
    step_progress = reporting.progress("training", "Training steps")

    def on_log(record: dict) -> None:
        if "global_step" in record or "step" in record:
            step = int(record.get("global_step", record.get("step", 0)))
            step_progress(min(step, total), total)
        logger.info("train %s", {k: v for k, v in record.items() if k in ("step", "loss", "eval_loss", "lr")})

    if profile == Profile.modal:  # the production recipe, on the volume's copy of the split
        from remote import client as modal_client
        from remote import steps as modal_steps

        remote = modal_client.connect(data_dir)
        trained = modal_steps.train(remote, splits, config, Path(data_dir), on_log=on_log, smoke=smoke)
    else:
        trained = train(splits, config, data_dir, on_log=on_log)
    step_progress.finish()
    reporting.capped_table(
        "training-loss",
        [{"step": h.get("step"), "loss": h.get("loss"), "eval_loss": h.get("eval_loss")} for h in trained.history],
        "The loss curve: loss and eval_loss per logged step (the plot is loss.png beside the adapter)",
    )
    logger.info(
        "best checkpoint %s (eval_loss %s); sample output %r",
        trained.checkpoint,
        trained.eval_loss,
        trained.sample_output[:200],
    )
    return trained


def _expected_steps(splits: SplitSummary, config: TrainConfig) -> int:
    """Optimizer steps of a run over all epochs (what the progress artifact counts towards)."""
    micro_batches = -(-splits.train.rows // (config.per_device_train_batch_size * config.nproc_per_node))
    return max(1, micro_batches // config.gradient_accumulation_steps) * config.num_train_epochs
