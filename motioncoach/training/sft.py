"""Run `swift sft` as a subprocess: stream its output, report progress, resume, summarise."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel, Field

from motioncoach.config import TrainConfig
from motioncoach.errors import TrainingError
from motioncoach.training.checkpoints import (
    checkpoint_step,
    find_best_checkpoint,
    latest_resumable_checkpoint,
    list_checkpoints,
    prune_checkpoints,
    read_history,
    record_step,
)
from motioncoach.training.swift_command import swift_env, swift_launcher, swift_sft_args

logger = logging.getLogger(__name__)

_TQDM_LINE = re.compile(r"\d+%\|.*\|")
_SECRET_NAME = re.compile(r"TOKEN|SECRET|KEY|PASSWORD", re.IGNORECASE)
_POLL_SECONDS = 0.5
_TAIL_LINES = 60
_ERROR_LINES = 12  # of the tail, quoted in the error; the whole output is in swift.log
MIN_DATASETS = "4.7"


class TrainResult(BaseModel):
    """What a finished `swift sft` run left behind."""

    output_dir: Path = Field(description="The run directory holding checkpoint-N/ and logging.jsonl.")
    best_checkpoint: Path = Field(description="Checkpoint with the lowest eval_loss (the latest if none).")
    best_eval_loss: float | None = Field(description="eval_loss of best_checkpoint, when it was evaluated.")
    last_checkpoint: Path = Field(description="The most recent checkpoint.")
    history: list[dict] = Field(description="Per step: {step, loss?, eval_loss?}.")


def run_sft(
    config: TrainConfig,
    *,
    dataset: Path,
    val_dataset: Path,
    image_root: Path,
    output_dir: Path,
    on_log: Callable[[dict], None] | None = None,
    log_path: Path | None = None,
) -> TrainResult:
    """Train with `swift sft`; an output_dir holding checkpoints is resumed from its latest one.

    Use a fresh output_dir for a new dataset or recipe: resuming continues the old run's state. swift's
    output goes to log_path (default output_dir/swift.log), appended to, and open while swift runs.
    """
    _check_dependencies()
    output_dir = Path(output_dir).resolve()
    output_dir.mkdir(parents=True, exist_ok=True)
    resume = latest_resumable_checkpoint(output_dir)
    if resume is not None:
        logger.info("resuming from %s", resume)
    cmd = swift_launcher(config) + swift_sft_args(
        config, dataset=dataset, val_dataset=val_dataset, output_dir=output_dir, resume_from_checkpoint=resume
    )
    # Unbuffered so lines arrive as they are printed, not in 8 KiB blocks.
    env = os.environ | swift_env(config, image_root) | {"PYTHONUNBUFFERED": "1"}
    logger.info("running %s", " ".join(cmd))

    jsonl = _JsonlFollower(output_dir / "logging.jsonl")
    tail: deque[str] = deque(maxlen=_TAIL_LINES)
    started = last_step = time.monotonic()
    pruned_at = resume
    # cwd is the run dir, so relative image paths can only resolve through ROOT_IMAGE_DIR.
    proc = subprocess.Popen(
        cmd,
        cwd=output_dir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        start_new_session=True,  # its own process group, so torchrun's workers stop with it
    )
    log_path = Path(log_path) if log_path else output_dir / "swift.log"
    reader = threading.Thread(target=_pump, args=(proc, tail, log_path), daemon=True)
    reader.start()
    try:
        while proc.poll() is None:
            if jsonl.emit(on_log):
                last_step = time.monotonic()
            if time.monotonic() - last_step > config.stall_timeout_s:
                _stop(proc)
                raise TrainingStalled(
                    f"swift sft logged no training step for {config.stall_timeout_s} s (TrainConfig.stall_timeout_s) "
                    f"and was stopped (full output: {log_path}): a hang (NCCL, a dataloader, the volume), or a step "
                    "slower than the limit allows; last lines:\n" + "\n".join(_last_lines(tail))
                )
            latest = latest_resumable_checkpoint(output_dir)
            if latest != pruned_at:  # a checkpoint completed: older ones give their space back
                prune_checkpoints(output_dir)
                pruned_at = latest
            time.sleep(_POLL_SECONDS)
        reader.join()
        jsonl.emit(on_log)
    except BaseException:
        _stop(proc)
        raise
    if proc.returncode != 0:
        raise TrainingError(
            f"swift sft exited with code {proc.returncode} after {time.monotonic() - started:.0f} s "
            f"(full output: {log_path}); last lines:\n" + "\n".join(_last_lines(tail))
        )
    logger.info("swift sft finished in %.1f s", time.monotonic() - started)
    prune_checkpoints(output_dir)
    return summarize_run(output_dir)


class TrainingStalled(TrainingError):
    """swift stopped logging steps: stopped by the watchdog, and not retried (it would hang again)."""


def _last_lines(tail: deque[str]) -> list[str]:
    return [line.rstrip() for line in tail if line.strip() and not _TQDM_LINE.search(line)][-_ERROR_LINES:]


def summarize_run(output_dir: Path) -> TrainResult:
    """Collect the checkpoints and loss history of a finished run."""
    checkpoints = list_checkpoints(output_dir)
    if not checkpoints:
        raise TrainingError(f"swift sft succeeded but wrote no checkpoint under {output_dir}")
    history = read_history(output_dir)
    best = find_best_checkpoint(output_dir)
    step = checkpoint_step(best)
    best_eval_loss = next((p["eval_loss"] for p in history if p["step"] == step and "eval_loss" in p), None)
    return TrainResult(
        output_dir=output_dir,
        best_checkpoint=best,
        best_eval_loss=best_eval_loss,
        last_checkpoint=checkpoints[-1],
        history=history,
    )


def _check_dependencies() -> None:
    """Fail fast on a datasets too old for ms-swift 4.6, instead of a traceback a minute in."""
    from importlib.metadata import PackageNotFoundError, version

    from packaging.version import Version

    try:
        installed = version("datasets")
    except PackageNotFoundError:
        installed = None
    # ms-swift 4.6 declares datasets>=4.0 but imports datasets.features.Json, added in 4.7.
    if installed is None or Version(installed) < Version(MIN_DATASETS):
        raise TrainingError(
            f"ms-swift needs datasets>={MIN_DATASETS} (it imports datasets.features.Json); found "
            f"{installed or 'none'}. Add 'datasets>={MIN_DATASETS},<4.8.5' to the project dependencies "
            "(it requires huggingface-hub<2) and sync."
        )


class _JsonlFollower:
    """Reads the lines appended to swift's logging.jsonl since this run started."""

    def __init__(self, path: Path):
        self.path = path
        # A resumed run appends to the old file; report only what this run writes.
        self.offset = path.stat().st_size if path.exists() else 0

    def emit(self, on_log: Callable[[dict], None] | None) -> bool:
        """Pass each new complete step record to on_log (with a `step` key added); True when there was one."""
        if not self.path.exists():
            return False
        with self.path.open("rb") as f:
            f.seek(self.offset)
            chunk = f.read()
        complete = chunk[: chunk.rfind(b"\n") + 1]  # a line still being written waits for next time
        self.offset += len(complete)
        stepped = False
        for line in complete.decode("utf-8", errors="replace").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            step = record_step(record) if isinstance(record, dict) else None
            if step is not None:
                stepped = True
                if on_log is not None:
                    try:
                        on_log({**record, "step": step})
                    except Exception:  # a progress report that failed is no reason to stop training
                        logger.warning("reporting training step %s failed", step, exc_info=True)
        return stepped


def _pump(proc: subprocess.Popen, tail: deque[str], log_path: Path) -> None:
    """Forward the subprocess output to our logger and a log file, keeping its last lines; secrets blanked."""
    assert proc.stdout is not None
    with open(log_path, "a") as log_file:
        for raw in proc.stdout:
            line = _redact(raw)
            tail.append(line)
            log_file.write(line)
            _forward(line)


def _forward(line: str) -> None:
    text = line.rstrip()
    if text:
        # Progress bars redraw many times a second; keep them out of INFO.
        logger.log(logging.DEBUG if _TQDM_LINE.search(text) else logging.INFO, "swift: %s", text)


def _stop(proc: subprocess.Popen) -> None:
    """Terminate the swift process group we started, then kill it if it lingers."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _redact(text: str) -> str:
    """Blank out values of secret-looking environment variables that may appear in output."""
    for name, value in os.environ.items():
        if _SECRET_NAME.search(name) and len(value) >= 8:
            text = text.replace(value, "***")
    return text
