"""Rehearse the 8xH200 training run on one GPU, before anyone pays for it.

Builds randomly initialised Qwen3-VL models with Qwen3-VL-32B's real layer geometry (hidden
5120, MLP 25600, 64/8 heads, the 27-block vision tower and its mergers), cut to a few language
layers, and trains each through the project's own `run_sft` with the production TrainConfig
(only the process count and the number of steps changed) on rows shaped like the dataset: the
project's prompts, a teacher-length label and photos at MAX_PIXELS (980 visual tokens), counted
with Qwen's real tokenizer. It measures peak GPU memory, step time and checkpoint size, fits them
per layer, and extrapolates to 64 layers under DDP on 8 GPUs. It also stops a run after its
first checkpoint, as a preemption would, and checks that the rerun resumes with the same losses.

    uv run python bench/h200_rehearsal.py            # on a machine with a CUDA GPU (~6 min on an H200)
    uv run python bench/h200_rehearsal.py --dry      # the same code on the CPU, tiny geometry (~2 min)

The last two lines give the extrapolated peak GiB per GPU and the time per epoch.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rehearsal import extrapolate as ex  # noqa: E402
from rehearsal.qwen_tokenizer import build_qwen_tokenizer  # noqa: E402
from rehearsal.rows import IMAGE_SIZE, image_tokens, text_tokens, write_rows  # noqa: E402
from rehearsal.runs import RunFigures, drop_checkpoints, rehearsal_config, train  # noqa: E402

from motioncoach.config import TrainConfig  # noqa: E402
from motioncoach.dataset.rows import read_jsonl  # noqa: E402
from motioncoach.training.geometry import QWEN3_VL_32B  # noqa: E402
from motioncoach.training.memory import H200_GIB, estimate_memory  # noqa: E402
from motioncoach.training.tiny_model import TINY_GEOMETRY, build_processor, write_random_qwen3_vl  # noqa: E402

# Losses of the resumed steps may differ from the uninterrupted run's by bf16 rounding only.
RESUME_RTOL = 0.02


def main() -> None:
    args = parse_args()
    if args.report:
        return report_from_files(args.report)
    gpu = not args.dry
    if gpu:
        import torch

        if not torch.cuda.is_available():
            sys.exit("no CUDA device here: run with --dry for the CPU rehearsal, or on a machine with a GPU")
    work = Path(args.work or tempfile.mkdtemp(prefix="h200-rehearsal-"))
    work.mkdir(parents=True, exist_ok=True)
    clock = time.monotonic()

    def say(text: str) -> None:
        print(f"[{time.monotonic() - clock:6.0f} s] {text}", flush=True)

    production = TrainConfig()
    geometry = TINY_GEOMETRY if args.dry else QWEN3_VL_32B
    layers = sorted(args.layers or ([1, 2] if args.dry else [4, 8]))
    steps, save_every = (4, 2) if args.dry else (args.steps, args.save_every)

    say(f"device: {device_name(gpu)}; work dir {work}")
    tokenizer = build_qwen_tokenizer()
    processor = build_processor(tokenizer, min_pixels=64 * 32 * 32, max_pixels=production.max_pixels)
    size = IMAGE_SIZE if gpu else (448, 448)
    train_rows, val_rows = write_rows(work / "data", args.train_rows, args.val_rows, size)
    rows = read_jsonl(train_rows)
    text = round(sum(text_tokens(tokenizer, r) for r in rows) / len(rows))
    image = image_tokens(IMAGE_SIZE, production.max_pixels)
    say(f"rows: {len(rows)} train, {args.val_rows} val; tokens per example: text {text} + image {image}")

    out = Path(args.out) if args.out else work / "rehearsal.json"
    runs: list[RunFigures] = []
    resume = zero2 = None

    def save(**extra) -> None:
        """Write what is measured so far, so a run cut short still leaves its figures."""
        partial = {"device": device_name(gpu), "runs": [r.model_dump() for r in runs], "resume": resume}
        partial["zero2_run"] = zero2.model_dump() if zero2 else None
        out.write_text(json.dumps(partial | extra, indent=2))

    def config(model: Path, deepspeed: str = "off") -> TrainConfig:
        return rehearsal_config(model, gpu=gpu, max_steps=steps, save_steps=save_every, deepspeed=deepspeed)

    def model_dir(n: int) -> Path:
        return work / "models" / f"layers-{n}"

    for n in [] if args.zero2_only else layers:
        say(f"building a random Qwen3-VL, {n} language layers of the 32B geometry" if gpu else f"tiny, {n} layers")
        write_random_qwen3_vl(
            model_dir(n),
            geometry.with_layers(n),
            processor,
            dtype="bfloat16" if gpu else "float32",
            device="cuda" if gpu else "cpu",
        )
        run_dir = work / "runs" / f"layers-{n}"
        figures = train(config(model_dir(n)), train_rows, val_rows, work / "data", run_dir, layers=n)
        runs.append(figures)
        save()
        say(
            f"{n} layers: peak {fmt(figures.peak_gib)} GiB, {figures.step_seconds:.2f} s/step, "
            f"checkpoint {figures.checkpoint_gib:.2f} GiB in {fmt(figures.checkpoint_seconds)} s"
        )
        drop_checkpoints(run_dir)
        if n != layers[0]:
            shutil.rmtree(model_dir(n), ignore_errors=True)
            continue
        say(f"preemption: stopping a {n}-layer run after checkpoint-{save_every}, then rerunning it")
        resume_dir = work / "runs" / "resume"
        resumed = train(
            config(model_dir(n)), train_rows, val_rows, work / "data", resume_dir, layers=n, interrupt_after=save_every
        )
        resume = resume_check(figures, resumed, after=save_every)
        save()
        say(resume["summary"])
        drop_checkpoints(resume_dir)

    if gpu and args.zero2 and importlib.util.find_spec("deepspeed") is not None:
        n = layers[0]
        if args.zero2_only:
            write_random_qwen3_vl(model_dir(n), geometry.with_layers(n), processor, dtype="bfloat16", device="cuda")
        say(f"ZeRO-2 on one GPU, {n} layers")
        try:
            zero2 = train(
                config(model_dir(n), "zero2"), train_rows, val_rows, work / "data", work / "runs" / "zero2", layers=n
            )
            save()
            say(f"ZeRO-2: peak {fmt(zero2.peak_gib)} GiB, {zero2.step_seconds:.2f} s/step")
        except Exception as error:  # noqa: BLE001 - the DDP figures stand without it
            say(f"ZeRO-2 run failed, left out of the report: {str(error)[-2000:]}")
        drop_checkpoints(work / "runs" / "zero2")
    shutil.rmtree(model_dir(layers[0]), ignore_errors=True)
    if args.zero2_only:
        return

    result = extrapolate_recipe(runs, {"text": text, "image": image}, zero2, gpu)
    report = {
        "date": date.today().isoformat(),
        "device": device_name(gpu),
        "tokens_per_example": {"text": text, "image": image},
        "runs": [r.model_dump() for r in runs],
        "zero2_run": zero2.model_dump() if zero2 else None,
        "resume": resume,
        "extrapolation": result.model_dump(),
    }
    out.write_text(json.dumps(report, indent=2))
    print_report(report, runs, result, resume, zero2, gpu)
    print(f"figures: {out}")
    if resume and not resume["passed"]:
        sys.exit("the resumed run's losses differ from the uninterrupted run's")
    print_last_lines(result)


def extrapolate_recipe(runs: list[RunFigures], tokens: dict, zero2: RunFigures | None, gpu: bool) -> ex.Extrapolation:
    """The production recipe (TrainConfig defaults) on the full 32B model, from the measured runs."""
    production = TrainConfig()
    return ex.extrapolate(
        QWEN3_VL_32B,
        runs,
        lora_rank=production.lora_rank,
        per_device_batch=production.per_device_train_batch_size,
        accumulation=production.gradient_accumulation_steps,
        text_tokens=tokens["text"],
        image_tokens=tokens["image"],
        zero2_run=zero2,
        gpu=gpu,
    )


def report_from_files(paths: list[str]) -> None:
    """Print the report of earlier GPU runs from their JSON figures (a --zero2-only file may follow)."""
    reports = [json.loads(Path(p).read_text()) for p in paths]
    runs = [RunFigures(**r) for report in reports for r in report.get("runs", [])]
    zero2 = next((RunFigures(**r["zero2_run"]) for r in reports if r.get("zero2_run")), None)
    resume = next((r["resume"] for r in reports if r.get("resume")), None)
    result = extrapolate_recipe(runs, reports[0]["tokens_per_example"], zero2, gpu=True)
    print_report(reports[0], runs, result, resume, zero2, gpu=True)
    print_last_lines(result)


def print_last_lines(result: ex.Extrapolation) -> None:
    print(f"extrapolated peak GiB per GPU (Qwen3-VL-32B, DDP on 8 GPUs): {result.peak_gib_ddp:.1f} of {H200_GIB}")
    print(f"time per epoch on 8xH200: {result.epoch_minutes:.1f} min ({result.steps_per_epoch} steps)")


def resume_check(reference: RunFigures, resumed: RunFigures, *, after: int) -> dict:
    """The resumed run continues from the checkpoint with the uninterrupted run's losses."""
    later = [s for s in reference.losses if s > after]
    diffs = {
        s: abs(resumed.losses.get(s, float("nan")) - reference.losses[s]) / abs(reference.losses[s]) for s in later
    }
    worst = max(diffs.values()) if diffs else float("nan")
    passed = bool(later) and resumed.steps == reference.steps and worst <= RESUME_RTOL
    return {
        "interrupted_after": after,
        "final_step": resumed.steps,
        "max_relative_loss_difference": worst,
        "passed": passed,
        "summary": (
            f"resume: {'PASS' if passed else 'FAIL'}: stopped after checkpoint-{after}, resumed to step "
            f"{resumed.steps}; losses of steps {later[0] if later else '-'}-{reference.steps} within {worst:.2%}"
        ),
    }


def print_report(report, runs, result, resume, zero2, gpu) -> None:
    print(f"\nMotionCoach 8xH200 rehearsal, {report['date']}, {report['device']}")
    tokens = report["tokens_per_example"]
    print(f"tokens per example: text {tokens['text']} + image {tokens['image']}")
    print("layers  peak GiB  s/step  checkpoint GiB  save s  eval s/row")
    for r in runs:
        print(
            f"{r.layers:>6}  {fmt(r.peak_gib):>8}  {r.step_seconds:6.2f}  {r.checkpoint_gib:14.2f}  "
            f"{fmt(r.checkpoint_seconds):>6}  {fmt(r.eval_seconds_per_row, 3):>10}"
        )
    if zero2:
        print(
            f"ZeRO-2, {zero2.layers} layers, one GPU: peak {fmt(zero2.peak_gib)} GiB, {zero2.step_seconds:.2f} s/step"
        )
    if resume:
        print(resume["summary"])
    counted = estimate_memory(QWEN3_VL_32B, lora_rank=TrainConfig().lora_rank, processes=ex.GPUS)
    print(f"\nQwen3-VL-32B, 64 layers, 8 GPUs (peak: {result.peak_source}):")
    print(
        f"  static per GPU from parameter counts: weights {counted.weights:.1f} + LoRA {counted.lora:.1f} + grads "
        f"{counted.gradients:.1f} + Adam {counted.optimizer:.1f} + DDP buckets {counted.buckets:.1f} + NCCL "
        f"{counted.communication:.1f} = "
        f"{counted.static:.1f} GiB"
    )
    if result.activation_gib_per_layer is not None:
        print(
            f"  activations measured: {result.activation_gib_fixed:.2f} GiB fixed + "
            f"{result.activation_gib_per_layer:.3f} GiB per layer"
        )
    print(f"  DDP peak per GPU: {result.peak_gib_ddp:.1f} GiB of {H200_GIB}: {ex.verdict(result.peak_gib_ddp)}")
    print(f"  ZeRO-2 peak per GPU: {result.peak_gib_zero2:.1f} GiB")
    print(f"  step: {result.step_seconds:.2f} s ({result.step_source}); MFU {fmt(result.mfu, 2)}")
    lo, hi = result.total_minutes
    print(
        f"  10 epochs: {result.steps_per_epoch * ex.EPOCHS} steps; evals {result.eval_minutes:.1f} min; "
        f"checkpoints {result.checkpoint_gb:.1f} GB each, {result.checkpoint_minutes[0]:.0f}-"
        f"{result.checkpoint_minutes[1]:.0f} min; total {lo:.0f}-{hi:.0f} min, "
        f"${result.cost_usd[0]:.0f}-{result.cost_usd[1]:.0f}"
    )


def device_name(gpu: bool) -> str:
    if not gpu:
        return "CPU dry run"
    import torch

    props = torch.cuda.get_device_properties(0)
    return f"{props.name}, {props.total_memory / 1024**3:.1f} GiB, torch {torch.__version__}"


def fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dry", action="store_true", help="run on the CPU with a tiny geometry")
    parser.add_argument("--report", nargs="+", metavar="JSON", help="print the report of earlier runs' figures")
    parser.add_argument("--layers", type=int, nargs="+", help="language layer counts to measure (default 4 8)")
    parser.add_argument("--steps", type=int, default=6, help="optimizer steps per run")
    parser.add_argument("--save-every", type=int, default=3, help="checkpoint and validation interval")
    parser.add_argument("--train-rows", type=int, default=48, help="training rows")
    parser.add_argument("--val-rows", type=int, default=4, help="validation rows")
    parser.add_argument("--no-zero2", dest="zero2", action="store_false", help="skip the ZeRO-2 measurement")
    parser.add_argument("--zero2-only", action="store_true", help="measure only the ZeRO-2 run")
    parser.add_argument("--work", help="working folder (default: a new temporary one)")
    parser.add_argument("--out", help="where to write the figures as JSON")
    return parser.parse_args()


if __name__ == "__main__":
    main()
