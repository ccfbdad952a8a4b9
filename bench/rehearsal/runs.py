"""Training runs of the rehearsal, each through the project's own `run_sft` with production flags."""

from __future__ import annotations

import json
import shutil
import statistics
import time
from pathlib import Path

from pydantic import BaseModel

from motioncoach.config import TrainConfig
from motioncoach.training.checkpoints import list_checkpoints, record_step
from motioncoach.training.sft import latest_resumable_checkpoint, run_sft

GIB = 1024**3


class RunFigures(BaseModel):
    """What one training run measured."""

    layers: int
    steps: int
    peak_gib: float | None  # torch's max_memory_reserved on the GPU, as swift logs it
    step_seconds: float  # median of the steps that neither evaluated nor saved
    eval_seconds_per_row: float | None
    checkpoint_gib: float
    checkpoint_seconds: float | None
    losses: dict[int, float]
    wall_seconds: float


def rehearsal_config(model_dir: Path, *, gpu: bool, max_steps: int, save_steps: int, deepspeed: str) -> TrainConfig:
    """The production recipe (TrainConfig defaults) on one process, for a few steps."""
    changes: dict = {
        "base_model": str(model_dir),
        "nproc_per_node": 1,
        "max_steps": max_steps,
        "save_steps": save_steps,
        "eval_steps": save_steps,
        "logging_steps": 1,
        "deepspeed": deepspeed,
    }
    if not gpu:
        # bf16 matrix products on a CPU need --use_cpu and are slower than fp32 there; one example
        # per step keeps the 151,936-way logits of 2k-token rows to seconds on two cores.
        changes |= {
            "torch_dtype": "float32",
            "dataloader_num_workers": 0,
            "per_device_train_batch_size": 1,
            "per_device_eval_batch_size": 1,
            "gradient_accumulation_steps": 1,
        }
    return TrainConfig().model_copy(update=changes)


def train(
    config: TrainConfig,
    train_rows: Path,
    val_rows: Path,
    image_root: Path,
    run_dir: Path,
    *,
    layers: int,
    interrupt_after: int | None = None,
) -> RunFigures:
    """Run swift sft through run_sft; with interrupt_after, stop it as a preemption would once
    that checkpoint is complete (SIGINT to this process), then rerun it to resume."""
    started = time.monotonic()
    kwargs = {"dataset": train_rows, "val_dataset": val_rows, "image_root": image_root, "output_dir": run_dir}
    if interrupt_after is not None:
        _interrupted(config, run_dir, kwargs, interrupt_after)
    run_sft(config, **kwargs)
    return figures(run_dir, layers=layers, val_rows=_count_lines(val_rows), wall=time.monotonic() - started)


def _interrupted(config: TrainConfig, run_dir: Path, kwargs: dict, step: int) -> None:
    """Start the run and stop it, as a preemption would, at the first step logged after checkpoint-<step> is
    complete (its trainer_state.json is written last): the interrupt comes from the run's own progress, so a
    fast or a slow machine meets it at the same point."""
    marker = Path(run_dir) / f"checkpoint-{step}" / "trainer_state.json"

    def preempt(record: dict) -> None:
        if marker.exists():
            raise KeyboardInterrupt(f"preempted after checkpoint-{step}")

    try:
        run_sft(config, **kwargs, on_log=preempt)
    except KeyboardInterrupt:
        pass
    else:
        raise RuntimeError(f"the run finished before checkpoint-{step} could be interrupted")
    resumable = latest_resumable_checkpoint(Path(run_dir))
    if resumable is None or resumable.name != f"checkpoint-{step}":
        raise RuntimeError(f"after the interruption the latest resumable checkpoint is {resumable}")


def figures(run_dir: Path, *, layers: int, val_rows: int, wall: float) -> RunFigures:
    """Read memory, timing, losses and checkpoint size from swift's logging.jsonl and the run dir."""
    records = [json.loads(line) for line in (run_dir / "logging.jsonl").read_text().splitlines() if line.strip()]
    train = {}
    evals = {}
    peaks = []
    for record in records:
        step = record_step(record)
        if "memory(GiB)" in record:
            peaks.append(float(record["memory(GiB)"]))
        if step is None:
            continue
        if "loss" in record and "train_speed(s/it)" in record:
            train[step] = record  # later records win: a resumed run re-logs its steps
        if "eval_runtime" in record:
            evals[step] = record
    steps = sorted(train)
    # swift logs train_speed = elapsed / steps since it started: elapsed at each step follows.
    first = steps[0] - 1
    elapsed = {s: float(train[s]["train_speed(s/it)"]) * (s - first) for s in steps}
    saved = {int(c.name.split("-")[1]) for c in list_checkpoints(run_dir)} | set(evals)
    plain = [elapsed[s] - elapsed[s - 1] for s in steps if s - 1 in elapsed and s - 1 not in saved and s - 1 > first]
    step_seconds = statistics.median(plain) if plain else elapsed[steps[-1]] / len(steps)
    after_save = [
        elapsed[s + 1] - elapsed[s] - step_seconds - float(evals.get(s, {}).get("eval_runtime", 0))
        for s in steps
        if s in saved and s + 1 in elapsed
    ]
    eval_times = [float(e["eval_runtime"]) for e in evals.values()]
    checkpoint = list_checkpoints(run_dir)[0]
    return RunFigures(
        layers=layers,
        steps=steps[-1],
        peak_gib=max(peaks) if peaks else None,
        step_seconds=step_seconds,
        # The first evaluation includes warm-up; the fastest is what each later one costs.
        eval_seconds_per_row=min(eval_times) / val_rows if eval_times else None,
        checkpoint_gib=sum(f.stat().st_size for f in checkpoint.rglob("*") if f.is_file()) / GIB,
        checkpoint_seconds=max(0.0, statistics.median(after_save)) if after_save else None,
        losses={s: float(train[s]["loss"]) for s in steps},
        wall_seconds=wall,
    )


def drop_checkpoints(run_dir: Path) -> None:
    """Free the disk: checkpoints of a measured run are not needed again."""
    for checkpoint in list_checkpoints(run_dir):
        shutil.rmtree(checkpoint, ignore_errors=True)


def _count_lines(path: Path) -> int:
    return sum(1 for line in Path(path).read_text().splitlines() if line.strip())
