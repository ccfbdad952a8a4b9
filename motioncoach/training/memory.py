"""GPU memory per training process, from parameter counts, and the ZeRO-2 decision that follows.

The static part (weights, LoRA, gradients, Adam, DDP buckets) is counted exactly from the
geometry. Activations are what a rehearsal measures: `bench/h200_rehearsal.py` fits them per
language layer on an H200 and its figures are the constants below (see
docs/modal-training-estimate.md for the run they come from).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from motioncoach.training.geometry import Qwen3VLGeometry

GIB = 1024**3
# An H200 as torch sees it: 143,771 MiB less what the driver keeps.
H200_GIB = 139.8
# What the estimate must leave free on the card; below it ZeRO-2 is chosen.
SAFE_MARGIN_GIB = 14.0

# Activations with gradient checkpointing, per micro-batch of 2 examples of 2.1k tokens (a
# 980-token image and a teacher-length conversation): a part per language layer (checkpointed
# inputs, DeepStack features) and a fixed part (the layer being recomputed, the logits over
# 151,936 classes, the vision tower, CUDA context, allocator slack). Measured on an H200 on
# 2026-11-30 as peak reserved memory less the counted static part, at 4 and 8 layers.
ACTIVATION_GIB_PER_LAYER = 0.059
ACTIVATION_GIB_FIXED = 4.8
# NCCL's buffers and communicator per rank when several processes train; not measured (one GPU).
NCCL_GIB = 1.5

DeepSpeed = Literal["auto", "zero2", "off"]


class MemoryEstimate(BaseModel):
    """Peak GPU memory of one training process, in GiB, by part."""

    weights: float = Field(description="The frozen base model in bf16.")
    lora: float = Field(description="LoRA parameters as trained.")
    gradients: float = Field(description="LoRA gradients (this process's share under ZeRO-2).")
    optimizer: float = Field(description="Adam moments, plus fp32 master weights under ZeRO-2.")
    buckets: float = Field(description="DDP or ZeRO communication buckets.")
    communication: float = Field(description="NCCL buffers when several processes train.")
    activations: float = Field(description="Checkpointed activations, logits and fixed overhead.")

    @property
    def static(self) -> float:
        return self.weights + self.lora + self.gradients + self.optimizer + self.buckets + self.communication

    @property
    def peak(self) -> float:
        return self.static + self.activations


def estimate_memory(
    geometry: Qwen3VLGeometry,
    *,
    lora_rank: int,
    processes: int,
    zero2: bool = False,
    activation_gib_per_layer: float = ACTIVATION_GIB_PER_LAYER,
    activation_gib_fixed: float = ACTIVATION_GIB_FIXED,
) -> MemoryEstimate:
    """Peak memory of one of `processes` data-parallel ranks (plain DDP, or DeepSpeed ZeRO-2)."""
    trainable = geometry.lora_params(lora_rank)
    base = geometry.total_params()
    activations = activation_gib_fixed + activation_gib_per_layer * geometry.text.num_hidden_layers
    communication = NCCL_GIB if processes > 1 else 0.0
    if zero2:
        # DeepSpeed casts the adapters to bf16 and keeps fp32 masters, fp32 gradient and Adam
        # partitions: 2 + 2 bytes everywhere, 16 bytes spread over the ranks; 2e8-element buckets.
        share = trainable / processes
        return MemoryEstimate(
            weights=base * 2 / GIB,
            lora=trainable * 2 / GIB,
            gradients=(trainable * 2 + share * 4) / GIB,
            optimizer=share * 12 / GIB,
            buckets=2 * 2e8 * 2 / GIB,
            communication=communication,
            activations=activations,
        )
    # PEFT keeps adapters in fp32; DDP (gradient_as_bucket_view off) copies gradients into buckets.
    return MemoryEstimate(
        weights=base * 2 / GIB,
        lora=trainable * 4 / GIB,
        gradients=trainable * 4 / GIB,
        optimizer=trainable * 8 / GIB,
        buckets=trainable * 4 / GIB if processes > 1 else 0.0,
        communication=communication,
        activations=activations,
    )


def needs_zero2(
    geometry: Qwen3VLGeometry,
    *,
    lora_rank: int,
    processes: int,
    gpu_gib: float = H200_GIB,
    margin_gib: float = SAFE_MARGIN_GIB,
) -> bool:
    """Whether plain DDP leaves less than the safe margin free on each GPU."""
    if processes <= 1:
        return False  # ZeRO shards over ranks: with one there is nothing to gain
    return estimate_memory(geometry, lora_rank=lora_rank, processes=processes).peak > gpu_gib - margin_gib


def resolve_deepspeed(
    choice: DeepSpeed, geometry: Qwen3VLGeometry | None, *, lora_rank: int, processes: int
) -> str | None:
    """The --deepspeed value for swift (None: plain DDP). 'auto' decides from the estimate."""
    if choice == "zero2":
        return "zero2"
    if choice == "off" or geometry is None:
        return None
    return "zero2" if needs_zero2(geometry, lora_rank=lora_rank, processes=processes) else None
