"""Reading an MS-Swift run directory: its loss history, its checkpoints and the best adapter."""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from pathlib import Path

from pydantic import BaseModel, Field

_CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")

# What an inference user needs beside the weights; optimizer and RNG state are left behind.
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")
EXTRA_FILES = (
    "args.json",
    "additional_config.json",
    "generation_config.json",
    "chat_template.jinja",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.json",
    "merges.txt",
    "preprocessor_config.json",
    "processor_config.json",
    "video_preprocessor_config.json",
    "README.md",
)


def list_checkpoints(run_dir: Path) -> list[Path]:
    """checkpoint-N directories holding an adapter, oldest step first."""
    found = []
    for path in Path(run_dir).iterdir() if Path(run_dir).is_dir() else []:
        match = _CHECKPOINT_RE.match(path.name)
        if match and path.is_dir() and (path / "adapter_model.safetensors").exists():
            found.append((int(match.group(1)), path))
    return [path for _, path in sorted(found)]


def checkpoint_step(checkpoint: Path) -> int:
    """The optimizer step a checkpoint-N directory was saved at."""
    match = _CHECKPOINT_RE.match(Path(checkpoint).name)
    if not match:
        raise ValueError(f"{checkpoint} is not a checkpoint-N directory")
    return int(match.group(1))


def read_history(run_dir: Path) -> list[dict]:
    """Loss and eval_loss per step, as {step, loss?, eval_loss?}, from logging.jsonl or trainer state."""
    records = _logging_records(Path(run_dir) / "logging.jsonl")
    if not records:
        checkpoints = list_checkpoints(run_dir)
        state = checkpoints[-1] / "trainer_state.json" if checkpoints else None
        if state and state.exists():
            records = json.loads(state.read_text()).get("log_history", [])
    by_step: dict[int, dict] = {}
    # Later records win: a resumed run re-logs the steps after its checkpoint.
    for record in records:
        step = record_step(record)
        if step is None:
            continue
        point = by_step.setdefault(step, {"step": step})
        for key in ("loss", "eval_loss"):
            if isinstance(record.get(key), int | float):
                point[key] = float(record[key])
    return [point for _, point in sorted(by_step.items()) if len(point) > 1]


def record_step(record: dict) -> int | None:
    """The step of a logging record: trainer's `step` or swift's `global_step/max_steps`."""
    if isinstance(record.get("step"), int):
        return record["step"]
    progress = record.get("global_step/max_steps")
    if isinstance(progress, str) and "/" in progress:
        return int(progress.split("/", 1)[0])
    return None


def find_best_checkpoint(run_dir: Path) -> Path:
    """The kept checkpoint with the lowest eval_loss, or the latest when none was evaluated."""
    checkpoints = list_checkpoints(run_dir)
    if not checkpoints:
        raise FileNotFoundError(f"no checkpoint-N/adapter_model.safetensors under {run_dir}")
    eval_loss = {p["step"]: p["eval_loss"] for p in read_history(run_dir) if "eval_loss" in p}
    # Evaluation at step N runs before the save at step N, so checkpoint-N carries that score.
    by_step = {checkpoint_step(c): c for c in checkpoints}
    evaluated = [step for step in by_step if step in eval_loss]
    if not evaluated:
        return checkpoints[-1]
    # Ties go to the earlier step, as transformers' own best-model tracking does.
    return by_step[min(evaluated, key=lambda step: (eval_loss[step], step))]


def copy_adapter(checkpoint: Path, dest: Path) -> list[Path]:
    """Copy the adapter and its inference files to dest atomically; return the copied paths."""
    checkpoint, dest = Path(checkpoint), Path(dest)
    missing = [name for name in ADAPTER_FILES if not (checkpoint / name).exists()]
    if missing:
        raise FileNotFoundError(f"{checkpoint} lacks {', '.join(missing)}: not a LoRA checkpoint")
    names = [*ADAPTER_FILES, *(n for n in EXTRA_FILES if (checkpoint / n).is_file())]
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; the result is an ordinary directory
    try:
        for name in names:
            shutil.copy2(checkpoint / name, tmp / name)
        if dest.exists():
            # Swap the old copy out first so dest never holds a mix of two adapters.
            old = dest.with_name(f".{dest.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            dest.rename(old)
            tmp.rename(dest)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return [dest / name for name in names]


def adapter_size_bytes(directory: Path) -> int:
    """Total size of the files in an adapter directory."""
    return sum(p.stat().st_size for p in Path(directory).rglob("*") if p.is_file())


def _logging_records(path: Path) -> list[dict]:
    """Complete JSON lines of swift's logging.jsonl; a torn last line is skipped."""
    if not path.exists():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


# What a checkpoint holds only so that training can resume: optimizer, schedule and random state, and
# DeepSpeed's ZeRO shards. For the 32B recipe that is about 27 GB of each 27.5 GB checkpoint.
OPTIMIZER_STATE = ("optimizer.pt", "scheduler.pt", "scaler.pt", "latest", "zero_to_fp32.py")
OPTIMIZER_STATE_GLOBS = ("rng_state*.pth", "global_step*")


class RunDirState(BaseModel):
    """What a run dir keeps: its checkpoints, and how much of it is state only a resume needs."""

    checkpoints: list[str]
    resumable: str | None = Field(description="The checkpoint a resume would start from (optimizer state kept).")
    best: str | None = Field(description="The checkpoint with the lowest eval_loss (its weights are the release).")
    total_bytes: int
    optimizer_state_bytes: int


def is_resumable(checkpoint: Path) -> bool:
    """Written completely (trainer_state.json is saved last) and still holding its optimizer state."""
    checkpoint = Path(checkpoint)
    return (checkpoint / "trainer_state.json").is_file() and (
        (checkpoint / "optimizer.pt").exists() or any(checkpoint.glob("global_step*"))
    )


def latest_resumable_checkpoint(run_dir: Path) -> Path | None:
    """The newest checkpoint a resume can start from."""
    complete = [c for c in list_checkpoints(run_dir) if is_resumable(c)]
    return complete[-1] if complete else None


def prune_checkpoints(run_dir: Path) -> RunDirState:
    """Keep what a resume and the release need: the latest resumable checkpoint whole, the best checkpoint's
    weights; older checkpoints go, newer ones (still being written) are left alone."""
    resumable = latest_resumable_checkpoint(run_dir)
    if resumable is not None:
        best = _best_or_none(run_dir)
        for checkpoint in list_checkpoints(run_dir):
            if checkpoint_step(checkpoint) >= checkpoint_step(resumable):
                continue
            if checkpoint == best:
                _drop_optimizer_state(checkpoint)
            else:
                shutil.rmtree(checkpoint, ignore_errors=True)
    return run_dir_state(run_dir)


def strip_optimizer_state(run_dir: Path) -> RunDirState:
    """After packaging: the best and the last checkpoint's weights stay, no optimizer state anywhere."""
    checkpoints = list_checkpoints(run_dir)
    keep = {c for c in (_best_or_none(run_dir), checkpoints[-1] if checkpoints else None) if c is not None}
    for checkpoint in checkpoints:
        if checkpoint in keep:
            _drop_optimizer_state(checkpoint)
        else:
            shutil.rmtree(checkpoint, ignore_errors=True)
    return run_dir_state(run_dir)


def run_dir_state(run_dir: Path) -> RunDirState:
    checkpoints = list_checkpoints(run_dir)
    state = 0
    for checkpoint in checkpoints:
        for path in _optimizer_state_paths(checkpoint):
            state += adapter_size_bytes(path) if path.is_dir() else path.stat().st_size
    resumable, best = latest_resumable_checkpoint(run_dir), _best_or_none(run_dir)
    return RunDirState(
        checkpoints=[c.name for c in checkpoints],
        resumable=resumable.name if resumable else None,
        best=best.name if best else None,
        total_bytes=adapter_size_bytes(run_dir) if Path(run_dir).is_dir() else 0,
        optimizer_state_bytes=state,
    )


def _best_or_none(run_dir: Path) -> Path | None:
    try:
        return find_best_checkpoint(run_dir)
    except FileNotFoundError:
        return None


def _optimizer_state_paths(checkpoint: Path) -> list[Path]:
    paths = [checkpoint / name for name in OPTIMIZER_STATE if (checkpoint / name).exists()]
    return paths + [p for pattern in OPTIMIZER_STATE_GLOBS for p in checkpoint.glob(pattern)]


def _drop_optimizer_state(checkpoint: Path) -> None:
    for path in _optimizer_state_paths(checkpoint):
        shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
