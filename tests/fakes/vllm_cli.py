"""A stand-in `vllm` command: `vllm serve MODEL [flags]` as vLLM 0.33's CLI parses it, serving the
OpenAI stand-in (tests/fakes/openai_chat.py) on --host/--port until SIGTERM.

It refuses what vLLM refuses: an unknown flag (argparse's "unrecognized arguments"), flag values that are
not JSON where vLLM wants JSON, a model folder without config.json. FAKE_VLLM_CRASH=<message> makes the
start fail after a few log lines, as a CUDA error would; every line goes to stdout, where VLLMServer logs.

    tests/fakes/vllm_cli.py serve /models/merged --port 8000 ...
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script, not a package module


def _json(text: str):
    try:
        return json.loads(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not valid JSON: {text!r}") from None


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="vllm")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve")
    serve.add_argument("model")
    serve.add_argument("--served-model-name")
    serve.add_argument("--host", default="0.0.0.0")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--max-model-len", type=int)
    serve.add_argument("--gpu-memory-utilization", type=float)
    serve.add_argument("--tensor-parallel-size", type=int)
    serve.add_argument("--limit-mm-per-prompt", type=_json)
    serve.add_argument("--mm-processor-kwargs", type=_json)
    serve.add_argument("--mm-processor-cache-gb", type=float)
    serve.add_argument("--seed", type=int)
    serve.add_argument("--enable-lora", action="store_true")
    serve.add_argument("--enable-tower-connector-lora", action="store_true")
    serve.add_argument("--lora-modules", nargs="+")
    serve.add_argument("--max-lora-rank", type=int)
    serve.add_argument("--max-loras", type=int)
    serve.add_argument("--api-key")
    args = parser.parse_args(argv)

    print(f"INFO vllm serve {args.model} (stand-in); args: {json.dumps(vars(args))}", flush=True)
    print(f"INFO compile cache: {os.environ.get('VLLM_CACHE_ROOT')}", flush=True)
    if not (Path(args.model) / "config.json").is_file():
        print(f"ValueError: No supported config format found in {args.model}", flush=True)
        return 1
    if os.environ.get("FAKE_VLLM_CRASH"):
        print("INFO Loading weights took 3.21 seconds", flush=True)
        print(f"ERROR EngineCore failed to start: {os.environ['FAKE_VLLM_CRASH']}", flush=True)
        return 1
    from tests.fakes.openai_chat import OpenAIChatFake

    fake = OpenAIChatFake(
        served_model=args.served_model_name or args.model, root=args.model, api_key=args.api_key,
        max_model_len=args.max_model_len or 8192, max_images=(args.limit_mm_per_prompt or {}).get("image", 1),
        host=args.host, port=args.port,
    )  # fmt: skip
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"INFO Starting vLLM API server on http://{args.host}:{args.port}", flush=True)
    fake.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
