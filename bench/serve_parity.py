"""Is the served model the measured model? Greedy answers of one adapter, four ways, on the validation rows.

The gate measures base + adapter (LoRA on the language model, the vision tower and the mergers). This bench
answers the same validation prompts with:

  peft          transformers + PEFT: the adapter as trained and as the local evaluation scores it
  merged-hf     the merged release in transformers (`motioncoach merge`)
  merged-vllm   the merged release in vLLM: what the modal profile evaluates and the endpoint serves
  lora-tower    base + adapter in vLLM with --enable-lora --enable-tower-connector-lora
  lora-plain    base + adapter in vLLM with plain --enable-lora, as the app's backend loads it today:
                vLLM drops the tower and merger LoRA, so its answers drift from the measured ones

and prints, for each, how many answers are identical to PEFT's, the requests per second with every row in
flight at once, and for the vLLM setups the cold start (process start to /health answering). The inputs are
what `uv run motioncoach run` leaves: the tiny Qwen3-VL in data/models, ./lora-adapter trained by swift
(ViT and aligner unfrozen, so it has tower LoRA) and data/splits/val.jsonl.

One prepared run where a GPU is lent (the serving image's vLLM installed, nothing to download): it checks
what it needs first and says what is missing, writes every figure with the date and the GPU to --out, and
prints the row docs/serving.md records.

    uv run python bench/serve_parity.py --out serve-parity.json   # a CUDA GPU and vLLM (the serve image)
    uv run python bench/serve_parity.py --dry                     # the transformers half, on the CPU
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from motioncoach.config import local_train_config  # noqa: E402
from motioncoach.evaluation.items import load_items  # noqa: E402
from motioncoach.serving.backends import OpenAIChatBackend, TransformersBackend, adapter_base_model  # noqa: E402
from motioncoach.serving.merge import lora_placement, merge_adapter  # noqa: E402
from motioncoach.serving.release import recorded_max_pixels  # noqa: E402

REFERENCE = "peft"
LOCAL_MAX_PIXELS = local_train_config(Path("tiny")).max_pixels  # `motioncoach run`'s recipe on the tiny model


def answer(backend, prompts) -> tuple[list[str], float]:
    """The answers, and requests per second over all of them."""
    started = time.perf_counter()
    texts = backend.generate(prompts)
    return texts, len(prompts) / max(time.perf_counter() - started, 1e-9)


def preflight(args: argparse.Namespace) -> str:
    """The device the run measures on; SystemExit naming what is missing for a full (not --dry) run."""
    import importlib.util

    import torch

    if args.dry:
        return "cpu"
    if not torch.cuda.is_available():
        raise SystemExit("no CUDA device: the vLLM half needs a GPU (run with --dry for the transformers half)")
    if importlib.util.find_spec("vllm") is None:
        raise SystemExit("vllm is not installed: run in the serving image (remote/requirements/serve.txt)")
    return torch.cuda.get_device_name(0)


def vllm_setups(model: str, adapter: Path, merged: Path) -> dict[str, dict]:
    return {
        "merged-vllm": {"model": str(merged)},
        "lora-tower": {"model": model, "lora": adapter, "tower_lora": True},
        "lora-plain": {"model": model, "lora": adapter, "tower_lora": False},
    }


def run(args: argparse.Namespace) -> dict:
    device = preflight(args)
    data_dir, adapter = Path(args.data_dir), Path(args.adapter)
    model = args.model or adapter_base_model(adapter)
    args.max_pixels = args.max_pixels or recorded_max_pixels([adapter]) or LOCAL_MAX_PIXELS
    items, skipped = load_items(data_dir / "splits" / "val.jsonl", data_dir, args.rows)
    if not items:
        raise SystemExit(f"no validation rows in {data_dir}/splits/val.jsonl: run `uv run motioncoach run` first")
    prompts = [item.prompt(args.max_pixels) for item in items]
    placement = lora_placement(adapter)
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="serve-parity-"))
    merged = work / "merged"
    merge_adapter(model, adapter, merged, dtype="float32" if args.dry else "auto", max_pixels=args.max_pixels)

    answers: dict[str, list[str]] = {}
    speed: dict[str, float] = {}
    cold: dict[str, float] = {}
    answers[REFERENCE], speed[REFERENCE] = answer(
        TransformersBackend(model, adapter, max_new_tokens=args.max_new_tokens, batch_size=args.batch_size), prompts
    )
    answers["merged-hf"], speed["merged-hf"] = answer(
        TransformersBackend(merged, max_new_tokens=args.max_new_tokens, batch_size=args.batch_size), prompts
    )
    if not args.dry:
        from motioncoach.serving.vllm import VLLM_VERSION, VLLMServer

        for name, setup in vllm_setups(model, adapter, merged).items():
            started = time.perf_counter()
            server = VLLMServer(**setup, log_path=work / f"{name}.log", max_model_len=args.max_model_len,
                                max_pixels=args.max_pixels, cache_dir=work / "vllm-cache")  # fmt: skip
            with server:
                cold[name] = round(time.perf_counter() - started, 1)
                backend = OpenAIChatBackend(
                    server.base_url, server.served_model, max_tokens=args.max_new_tokens,
                    concurrency=len(prompts), name=f"vLLM {VLLM_VERSION}",
                )  # fmt: skip
                answers[name], speed[name] = answer(backend, prompts)

    reference = answers[REFERENCE]
    results = {
        "date": date.today().isoformat(),
        "device": device,
        "rows": len(prompts),
        "skipped": len(skipped),
        "lora_modules": placement.model_dump(),
        "max_new_tokens": args.max_new_tokens,
        "setups": {
            name: {
                "same_as_peft": sum(a == b for a, b in zip(texts, reference, strict=True)),
                "requests_per_s": round(speed[name], 3),
                **({"cold_start_s": cold[name]} if name in cold else {}),
            }
            for name, texts in answers.items()
        },
    }
    if args.answers_out:
        Path(args.answers_out).write_text(json.dumps(answers, indent=1))
    return results


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry", action="store_true", help="transformers only, on the CPU (no vLLM)")
    parser.add_argument("--data-dir", default="data", help="the data dir with splits/val.jsonl")
    parser.add_argument("--adapter", default="lora-adapter", help="a LoRA adapter folder")
    parser.add_argument("--model", help="the base model (default: the adapter's base_model_name_or_path)")
    parser.add_argument("--rows", type=int, default=None, help="validation rows to answer (default: all)")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--max-pixels", type=int, help="the training MAX_PIXELS (default: the adapter's lineage)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-model-len", type=int, default=8192)
    parser.add_argument("--work-dir", help="where the merged model and vLLM logs go (default: a temporary folder)")
    parser.add_argument("--answers-out", help="write every setup's answers to this JSON file")
    parser.add_argument("--out", help="write the figures (with the date and the device) to this JSON file")
    args = parser.parse_args(argv)
    results = run(args)
    rows = results["rows"]
    print(f"{rows} validation rows, {args.max_new_tokens} new tokens, greedy; LoRA modules {results['lora_modules']}")
    for name, figures in results["setups"].items():
        cold = f"   cold start {figures['cold_start_s']:6.1f} s" if "cold_start_s" in figures else ""
        same, speed = f"{figures['same_as_peft']:4d}/{rows}", f"{figures['requests_per_s']:8.2f} req/s"
        print(f"{name:12s} same as peft {same}   {speed}{cold}")
    print("| date | device | " + " | ".join(results["setups"]) + " |")  # the row docs/serving.md records
    cells = [f"{f['same_as_peft']}/{rows}, {f['requests_per_s']:.2f} req/s" for f in results["setups"].values()]
    print(f"| {results['date']} | {results['device']} | " + " | ".join(cells) + " |")
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results))
    return results


if __name__ == "__main__":
    main()
