"""The 8xH200 rehearsal: exact parameter counts, the memory estimate and ZeRO-2 choice, the bench."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from motioncoach.config import TrainConfig
from motioncoach.training.geometry import QWEN3_VL_32B, Qwen3VLGeometry, geometry_of
from motioncoach.training.memory import H200_GIB, SAFE_MARGIN_GIB, estimate_memory, needs_zero2
from motioncoach.training.swift_command import swift_env, swift_launcher, swift_sft_args
from motioncoach.training.tiny_model import TINY_GEOMETRY

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench" / "h200_rehearsal.py"
MEASURED = [
    ROOT / "docs" / "rehearsal" / "h200-2026-11-30.json",
    ROOT / "docs" / "rehearsal" / "h200-zero2-2026-11-30.json",
]


def _meta_model(geometry: Qwen3VLGeometry):
    import torch
    from transformers import Qwen3VLConfig, Qwen3VLForConditionalGeneration

    with torch.device("meta"):
        return Qwen3VLForConditionalGeneration(Qwen3VLConfig(**geometry.to_hf_config()))


@pytest.mark.parametrize(
    "geometry", [QWEN3_VL_32B, QWEN3_VL_32B.with_layers(4), TINY_GEOMETRY], ids=["32b", "32b-4", "tiny"]
)
def test_parameter_counts_are_those_of_the_model_transformers_builds(geometry):
    import torch

    model = _meta_model(geometry)
    assert geometry.total_params() == sum(p.numel() for p in model.parameters())
    assert geometry.vision_params() == sum(p.numel() for p in model.model.visual.parameters())
    linears = [m for name, m in model.named_modules() if isinstance(m, torch.nn.Linear) and "lm_head" not in name]
    assert geometry.lora_params(256) == sum(256 * (m.in_features + m.out_features) for m in linears)


def test_the_32b_counts_match_the_published_model():
    assert QWEN3_VL_32B.total_params() == 33_357_390_064
    assert QWEN3_VL_32B.lora_params(256) == 2_290_081_792
    assert QWEN3_VL_32B.to_hf_config()["text_config"]["rope_parameters"]["mrope_section"] == [24, 20, 20]


def test_geometry_is_read_from_a_model_directory(tmp_path):
    from transformers import Qwen3VLConfig

    Qwen3VLConfig(**QWEN3_VL_32B.with_layers(6).to_hf_config()).save_pretrained(tmp_path)
    assert geometry_of(str(tmp_path)) == QWEN3_VL_32B.with_layers(6)
    assert geometry_of("Qwen/Qwen3-VL-32B-Instruct") == QWEN3_VL_32B
    assert geometry_of("someone/unknown-model") is None


def test_the_recipe_fits_an_h200_under_ddp_with_the_measured_activations():
    import torch

    estimate = estimate_memory(QWEN3_VL_32B, lora_rank=256, processes=8)
    # From the model transformers builds: bf16 weights (2 bytes each), and per LoRA parameter fp32 weights,
    # fp32 gradients, Adam's two fp32 moments and DDP's fp32 gradient bucket (4 + 4 + 8 + 4 bytes), plus
    # NCCL's 1.5 GiB per rank.
    model = _meta_model(QWEN3_VL_32B)
    weights = sum(p.numel() for p in model.parameters())
    lora = sum(
        256 * (m.in_features + m.out_features)
        for name, m in model.named_modules()
        if isinstance(m, torch.nn.Linear) and "lm_head" not in name
    )
    assert estimate.static == pytest.approx((weights * 2 + lora * 20) / 1024**3 + 1.5, rel=1e-9)
    assert 100 < estimate.static < H200_GIB  # 62 GiB of weights, 43 of LoRA state: it fits before activations
    assert H200_GIB - estimate.peak > SAFE_MARGIN_GIB
    zero2 = estimate_memory(QWEN3_VL_32B, lora_rank=256, processes=8, zero2=True)
    assert estimate.peak - zero2.peak > 25  # ZeRO-2 sheds most of the fp32 LoRA state
    assert not needs_zero2(QWEN3_VL_32B, lora_rank=256, processes=8)
    assert needs_zero2(QWEN3_VL_32B, lora_rank=256, processes=8, gpu_gib=80.0)  # an 80 GB card


def test_production_command_stays_plain_ddp_with_the_expandable_allocator(tmp_path):
    config = TrainConfig()
    argv = swift_sft_args(config, dataset=tmp_path / "t", val_dataset=tmp_path / "v", output_dir=tmp_path)
    assert "--deepspeed" not in argv
    assert swift_env(config, tmp_path)["PYTORCH_CUDA_ALLOC_CONF"] == "expandable_segments:True"


def test_auto_chooses_zero2_when_the_estimate_leaves_too_little_memory(tmp_path):
    from transformers import Qwen3VLConfig

    # Twice the 32B's layers: static memory alone passes the card's capacity under DDP.
    model_dir = tmp_path / "qwen3-vl-128-layers"
    Qwen3VLConfig(**QWEN3_VL_32B.with_layers(128).to_hf_config()).save_pretrained(model_dir)
    config = TrainConfig(base_model=str(model_dir))
    argv = swift_sft_args(config, dataset=tmp_path / "t", val_dataset=tmp_path / "v", output_dir=tmp_path)
    assert argv[argv.index("--deepspeed") + 1] == "zero2"
    assert swift_launcher(config)[-2:] == ["swift.cli.main", "sft"]  # DeepSpeed runs under torchrun
    assert swift_env(config, tmp_path)["NPROC_PER_NODE"] == "8"
    off = config.model_copy(update={"deepspeed": "off"})
    assert "--deepspeed" not in swift_sft_args(
        off, dataset=tmp_path / "t", val_dataset=tmp_path / "v", output_dir=tmp_path
    )
    # Hyperparameters are the original recipe's either way.
    for flag, value in [("--lora_rank", "256"), ("--lora_alpha", "512"), ("--learning_rate", "0.0001")]:
        assert argv[argv.index(flag) + 1] == value


def test_the_documented_figures_are_what_the_measured_runs_give():
    out = subprocess.run(
        [sys.executable, str(BENCH), "--report", *map(str, MEASURED)], capture_output=True, text=True, check=True
    ).stdout
    peak = re.search(r"DDP on 8 GPUs\): ([\d.]+) of", out).group(1)
    epoch = re.search(r"time per epoch on 8xH200: ([\d.]+) min", out).group(1)
    doc = (ROOT / "docs" / "modal-training-estimate.md").read_text()
    assert f"{float(peak):.0f} GiB of 139.8" in doc and f"**{epoch} min**" in doc
    assert "resume: PASS" in out


@pytest.mark.e2e
@pytest.mark.timeout(900)
def test_dry_rehearsal_trains_resumes_and_extrapolates(tmp_path):
    """The whole rehearsal on the CPU: two tiny geometries, a preemption and its resume, the report."""
    result = subprocess.run(
        [sys.executable, str(BENCH), "--dry", "--work", str(tmp_path), "--train-rows", "12", "--val-rows", "2"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    assert re.fullmatch(r"extrapolated peak GiB per GPU \(Qwen3-VL-32B, DDP on 8 GPUs\): [\d.]+ of 139.8", lines[-2])
    assert re.fullmatch(r"time per epoch on 8xH200: [\d.]+ min \(33 steps\)", lines[-1])
    figures = json.loads((tmp_path / "rehearsal.json").read_text())
    assert [r["layers"] for r in figures["runs"]] == [1, 2]
    assert all(r["steps"] == 4 and r["checkpoint_gib"] > 0 for r in figures["runs"])
    assert figures["resume"]["passed"] and figures["resume"]["final_step"] == 4
    assert figures["tokens_per_example"]["image"] == 980
    # Without a GPU the peak comes from parameter counts, and says so.
    assert figures["extrapolation"]["peak_source"].startswith("estimate from parameter counts")
    assert figures["extrapolation"]["peak_gib_ddp"] == pytest.approx(
        estimate_memory(QWEN3_VL_32B, lora_rank=256, processes=8).peak
    )
