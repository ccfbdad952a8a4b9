"""What only a GPU can answer: the bf16 merge as the modal profile makes it, and the serving parity bench with
vLLM. Marked `gpu`: skipped without a CUDA device (tests/conftest.py); on a GPU machine run
`uv run pytest -m gpu` (the bench needs the serving image's vLLM: `uv pip install vllm==0.33.0`)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from motioncoach.dataset import read_jsonl
from tests.release_data import build_release_data, tiny_adapter

pytestmark = pytest.mark.gpu

ROOT = Path(__file__).resolve().parents[1]
KEPT = 64  # positions compared: the answer's last tokens


@pytest.fixture(scope="module")
def bf16_release(tmp_path_factory, place_tiny_model):
    """The tiny Qwen3-VL saved in bf16 (as Qwen3-VL-32B is), an adapter trained on it, and the release data."""
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    root = tmp_path_factory.mktemp("gpu")
    data = build_release_data(root)
    tiny = place_tiny_model(root / "tiny-fp32")
    model = root / "tiny-bf16"
    AutoModelForImageTextToText.from_pretrained(tiny, dtype=torch.bfloat16).save_pretrained(model)
    AutoProcessor.from_pretrained(tiny).save_pretrained(model)
    trained = tiny_adapter(data.data_dir, model)
    return SimpleNamespace(data=data, model=model, trained=trained, root=root)


def test_the_bf16_merge_answers_as_base_plus_adapter_on_the_gpu(bf16_release):
    """The modal profile merges in the checkpoint's dtype (bf16): rounding the merged weights once must leave
    the next-token choice of base + adapter (PEFT, bf16, on the GPU) as it was on nearly every position."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from motioncoach.serving.backends import chat_messages
    from motioncoach.serving.merge import merge_adapter
    from motioncoach.serving.prompt import row_prompt

    release = bf16_release
    merged = release.root / "merged-bf16"
    merge_adapter(str(release.model), release.trained.checkpoint, merged, dtype="auto",
                  max_pixels=release.trained.config.max_pixels)  # fmt: skip
    row = read_jsonl(release.data.splits.val.path)[0]
    prompt = row_prompt(row, release.data.data_dir, release.trained.config.max_pixels)
    processor = AutoProcessor.from_pretrained(merged)
    text = processor.apply_chat_template(chat_messages(prompt, {"type": "image"}), add_generation_prompt=True,
                                         tokenize=False)  # fmt: skip
    inputs = processor(text=[text], images=[prompt.pixels()], return_tensors="pt").to("cuda")
    with torch.no_grad():
        base = AutoModelForImageTextToText.from_pretrained(release.model, dtype=torch.bfloat16).to("cuda")
        adapted = PeftModel.from_pretrained(base, release.trained.checkpoint).eval()(**inputs, logits_to_keep=KEPT)
        folded = AutoModelForImageTextToText.from_pretrained(merged, dtype=torch.bfloat16).to("cuda")
        served = folded(**inputs, logits_to_keep=KEPT)
    assert next(folded.parameters()).dtype == torch.bfloat16
    same = (adapted.logits.argmax(-1) == served.logits.argmax(-1)).float().mean().item()
    assert same >= 0.95, same  # one bf16 rounding of W + BA: at most a few near-ties flip


def test_the_serving_parity_bench_runs_on_a_gpu_with_vllm(bf16_release, tmp_path):
    """bench/serve_parity.py as the one prepared GPU run: PEFT, the merged release in transformers and vLLM,
    base + adapter in vLLM with and without tower LoRA; every setup answers every row, and the merged release
    in vLLM answers as PEFT does on most rows."""
    pytest.importorskip("vllm", reason="the serving image's vLLM is not installed")
    import sys

    sys.path.insert(0, str(ROOT / "bench"))
    import serve_parity

    out = tmp_path / "serve-parity.json"
    figures = serve_parity.main([
        "--data-dir", str(bf16_release.data.data_dir), "--adapter", str(bf16_release.trained.checkpoint),
        "--model", str(bf16_release.model), "--rows", "2", "--max-new-tokens", "16", "--out", str(out),
        "--work-dir", str(tmp_path / "work"),
    ])  # fmt: skip
    assert json.loads(out.read_text())["setups"] == figures["setups"]
    assert set(figures["setups"]) == {"peft", "merged-hf", "merged-vllm", "lora-tower", "lora-plain"}
    assert figures["setups"]["merged-vllm"]["same_as_peft"] >= 1
    assert all(s["requests_per_s"] > 0 for s in figures["setups"].values())
