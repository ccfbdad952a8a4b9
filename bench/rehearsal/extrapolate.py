"""From a few measured layer counts to the full model on 8 GPUs: memory, time and money."""

from __future__ import annotations

import math

from pydantic import BaseModel

from motioncoach.training.geometry import Qwen3VLGeometry
from motioncoach.training.memory import GIB, H200_GIB, NCCL_GIB, SAFE_MARGIN_GIB, estimate_memory

from .runs import RunFigures

# The original recipe's run: about 2,300 kept photos, 90/10 split, 10 epochs, 2 x 4 x 8.
EXAMPLES = 2300
TRAIN_SHARE = 0.9
EPOCHS = 10
GPUS = 8
# Dense bf16 peak of an H100/H200 SXM (datasheet), the usual MFU denominator.
PEAK_FLOPS = 989e12
# Modal list prices, 2026-11: H200 per GPU-hour, and the 32 CPUs + 256 GiB the train function reserves.
GPU_HOUR_USD = 4.54
HOST_HOUR_USD = 3.6
# Not measured here: one ring all-reduce of the fp32 LoRA gradients over NVLink per step (partly
# hidden behind the backward pass), NCCL's buffers, the volume's write rate and model loading.
NVLINK_BUS_GBPS = (300, 450)
# torch.save of a checkpoint ran at 0.43-0.66 GB/s to the H200 host's own disk (2026-11-30).
VOLUME_WRITE_GBPS = (0.4, 1.0)
STARTUP_MINUTES = (3, 8)  # image pull, container start, 67 GB of weights read from the volume


class Fit(BaseModel):
    """y = intercept + slope * layers, through the measured points."""

    intercept: float
    slope: float

    @classmethod
    def through(cls, points: list[tuple[int, float]]) -> Fit:
        (x0, y0), (x1, y1) = points[0], points[-1]
        slope = (y1 - y0) / (x1 - x0) if x1 != x0 else 0.0
        return cls(intercept=y0 - slope * x0, slope=slope)

    def at(self, layers: int) -> float:
        return self.intercept + self.slope * layers


class Extrapolation(BaseModel):
    peak_gib_ddp: float
    peak_gib_zero2: float
    peak_source: str
    activation_gib_fixed: float | None
    activation_gib_per_layer: float | None
    step_seconds: float
    step_source: str
    steps_per_epoch: int
    epoch_minutes: float
    eval_minutes: float
    checkpoint_gb: float
    checkpoint_minutes: tuple[float, float]
    total_minutes: tuple[float, float]
    cost_usd: tuple[float, float]
    mfu: float | None


def model_flops_per_example(geometry: Qwen3VLGeometry, text_tokens: int, image_tokens: int) -> float:
    """6 x matmul weights x tokens, language model and vision blocks (4 patches per visual token)."""
    text = 6 * geometry.text_matmul_params() * (text_tokens + image_tokens)
    vision = 6 * geometry.vision_matmul_params() * image_tokens * geometry.vision.spatial_merge_size**2
    return text + vision


def extrapolate(
    full: Qwen3VLGeometry,
    runs: list[RunFigures],
    *,
    lora_rank: int,
    per_device_batch: int,
    accumulation: int,
    text_tokens: int,
    image_tokens: int,
    zero2_run: RunFigures | None,
    gpu: bool,
    assumed_mfu: float = 0.30,
) -> Extrapolation:
    """The 64-layer model under DDP on 8 GPUs, from runs at a few layer counts on one."""
    layers = full.text.num_hidden_layers
    examples_per_step = per_device_batch * accumulation  # per GPU
    trainable = full.lora_params(lora_rank)
    analytic = estimate_memory(full, lora_rank=lora_rank, processes=GPUS)
    analytic_zero2 = estimate_memory(full, lora_rank=lora_rank, processes=GPUS, zero2=True)
    fixed = per_layer = None
    if gpu and all(r.peak_gib is not None for r in runs):
        # What the measured peak holds beyond the counted static memory is activations.
        residual = Fit.through(
            [
                (
                    r.layers,
                    r.peak_gib - estimate_memory(full.with_layers(r.layers), lora_rank=lora_rank, processes=1).static,
                )
                for r in runs
            ]
        )
        fixed, per_layer = residual.intercept, residual.slope
        one_gpu = Fit.through([(r.layers, r.peak_gib) for r in runs]).at(layers)
        peak = one_gpu + trainable * 4 / GIB + NCCL_GIB  # plus the DDP bucket copy of the gradients
        peak_zero2 = analytic_zero2.static + fixed + per_layer * layers
        if zero2_run is not None and zero2_run.peak_gib is not None:
            # ZeRO-2's own overhead, measured on one GPU, carried over to the 8-GPU sharding.
            small = full.with_layers(zero2_run.layers)
            counted = estimate_memory(small, lora_rank=lora_rank, processes=1, zero2=True).static
            measured_rest = zero2_run.peak_gib - counted - per_layer * zero2_run.layers
            peak_zero2 = analytic_zero2.static + measured_rest + per_layer * layers
        source = f"measured at {', '.join(str(r.layers) for r in runs)} layers, fitted per layer"
    else:
        peak, peak_zero2 = analytic.peak, analytic_zero2.peak
        source = "estimate from parameter counts (no GPU)"

    flops_step = examples_per_step * model_flops_per_example(full, text_tokens, image_tokens)
    allreduce = [2 * trainable * 4 * (GPUS - 1) / GPUS / (bw * 1e9) for bw in NVLINK_BUS_GBPS]
    mfu = None
    if gpu:
        step = Fit.through([(r.layers, r.step_seconds) for r in runs]).at(layers) + max(allreduce) / 2
        mfu = flops_step / (step * PEAK_FLOPS)
        step_source = "measured, fitted per layer, plus half an all-reduce"
    else:
        step = flops_step / (assumed_mfu * PEAK_FLOPS)
        step_source = f"estimate: model FLOPs at {assumed_mfu:.0%} MFU (no GPU)"

    train_examples = math.floor(EXAMPLES * TRAIN_SHARE)
    val_examples = EXAMPLES - train_examples
    micro_batches = math.ceil(train_examples / (per_device_batch * GPUS))  # per rank
    steps_per_epoch = math.ceil(micro_batches / accumulation)
    total_steps = steps_per_epoch * EPOCHS
    saves = total_steps // 25 + (1 if total_steps % 25 else 0)  # every 25 steps and at the end
    eval_rows = [r for r in runs if r.eval_seconds_per_row is not None]
    if gpu and eval_rows:
        per_row = Fit.through([(r.layers, r.eval_seconds_per_row) for r in eval_rows]).at(layers)
    else:
        per_row = step / examples_per_step / 3  # forward only, no recompute: about a third
    eval_minutes = saves * per_row * val_examples / GPUS / 60
    checkpoint_gb = trainable * (4 + 8) / 1e9  # fp32 adapter + Adam moments (optimizer.pt)
    checkpoint_minutes = tuple(saves * checkpoint_gb / bw / 60 for bw in reversed(VOLUME_WRITE_GBPS))
    compute_minutes = total_steps * step / 60
    total = tuple(
        compute_minutes + eval_minutes + ckpt + start
        for ckpt, start in zip(checkpoint_minutes, STARTUP_MINUTES, strict=True)
    )
    hourly = GPUS * GPU_HOUR_USD + HOST_HOUR_USD
    return Extrapolation(
        peak_gib_ddp=peak,
        peak_gib_zero2=peak_zero2,
        peak_source=source,
        activation_gib_fixed=fixed,
        activation_gib_per_layer=per_layer,
        step_seconds=step,
        step_source=step_source,
        steps_per_epoch=steps_per_epoch,
        epoch_minutes=steps_per_epoch * step / 60,
        eval_minutes=eval_minutes,
        checkpoint_gb=checkpoint_gb,
        checkpoint_minutes=checkpoint_minutes,
        total_minutes=total,
        cost_usd=tuple(t / 60 * hourly for t in total),
        mfu=mfu,
    )


def verdict(peak_gib: float, capacity_gib: float = H200_GIB, margin_gib: float = SAFE_MARGIN_GIB) -> str:
    free = capacity_gib - peak_gib
    if free >= margin_gib:
        return f"fits, {free:.1f} GiB free (margin {margin_gib:.0f})"
    if free > 0:
        return f"tight, {free:.1f} GiB free, under the {margin_gib:.0f} GiB margin: ZeRO-2"
    return f"does not fit: {-free:.1f} GiB over"
