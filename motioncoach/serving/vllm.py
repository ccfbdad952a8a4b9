"""`vllm serve` as a child process: the OpenAI-compatible server the Modal endpoint, the Modal evaluation and
the parity bench put in front of a model.

A merged release is served as a plain Qwen3-VL. Base + LoRA adapter is served with `--enable-lora`, and with
`--enable-tower-connector-lora` (vLLM 0.33: experimental, Qwen VL models) so that the LoRA our recipe trains on
the vision tower and the mergers is applied too; without it vLLM logs that `visual.*` LoRA weights are
ignored and serves another model than the one that was measured. vLLM's processor cache keys images without
the LoRA, so it is turned off (`--mm-processor-cache-gb 0`) when the tower gets LoRA.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

SERVED_NAME = "motioncoach"
LORA_NAME = "motioncoach-lora"
VLLM_VERSION = "0.33.0"  # the serving image's (deployments/requirements/serve.in); it has the tower flag
STARTUP_SECONDS = 20 * 60  # a 32B model in bf16 is 64 GB to read from the volume


class VLLMNotReady(RuntimeError):
    """The server exited, or did not answer /health in time; the message holds its last lines."""


@dataclass
class VLLMServer:
    """A `vllm serve` process on this machine, for the duration of a `with` block."""

    model: str
    lora: Path | None = None  # a LoRA adapter on model, served as LORA_NAME
    tower_lora: bool = True  # apply the adapter's LoRA on the vision tower and mergers too
    max_lora_rank: int = 256
    max_model_len: int = 8192
    gpu_memory_utilization: float = 0.90
    tensor_parallel_size: int = 1
    port: int = 0  # 0: a free one
    log_path: Path | None = None
    extra_args: tuple[str, ...] = ()
    process: subprocess.Popen | None = field(default=None, init=False)

    @property
    def served_model(self) -> str:
        """The model name requests ask for: the adapter when there is one (the base is SERVED_NAME)."""
        return LORA_NAME if self.lora else SERVED_NAME

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def command(self) -> list[str]:
        vllm = shutil.which("vllm") or f"{sys.executable} -m vllm.entrypoints.cli.main"
        args = [
            *vllm.split(), "serve", str(self.model), "--served-model-name", SERVED_NAME,
            "--host", "127.0.0.1", "--port", str(self.port),
            "--max-model-len", str(self.max_model_len), "--gpu-memory-utilization", str(self.gpu_memory_utilization),
            "--tensor-parallel-size", str(self.tensor_parallel_size),
            "--limit-mm-per-prompt", '{"image": 1}', "--seed", "0",
        ]  # fmt: skip
        if self.lora is not None:
            args += ["--enable-lora", "--lora-modules", f"{LORA_NAME}={self.lora}"]
            args += ["--max-lora-rank", str(self.max_lora_rank), "--max-loras", "1"]
            if self.tower_lora:
                args += ["--enable-tower-connector-lora", "--mm-processor-cache-gb", "0"]
        return args + list(self.extra_args)

    def __enter__(self) -> VLLMServer:
        if not self.port:
            self.port = _free_port()
        command = self.command()
        log.info("starting %s", " ".join(command))
        output = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self.process = subprocess.Popen(
            command, stdout=output, stderr=subprocess.STDOUT, start_new_session=True,
            env=os.environ | {"VLLM_LOGGING_LEVEL": os.environ.get("VLLM_LOGGING_LEVEL", "INFO")},
        )  # fmt: skip
        started = time.monotonic()
        try:
            self._wait_until_healthy()
        except BaseException:
            self.stop()
            raise
        log.info("vLLM serves %s on port %d after %.0f s", self.model, self.port, time.monotonic() - started)
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def _wait_until_healthy(self) -> None:
        import httpx

        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise VLLMNotReady(f"vllm serve exited with code {self.process.returncode}: {self._tail()}")
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/health", timeout=5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(2)
        raise VLLMNotReady(f"vllm serve did not answer /health within {STARTUP_SECONDS} s: {self._tail()}")

    def _tail(self) -> str:
        if self.log_path and Path(self.log_path).is_file():
            return Path(self.log_path).read_text(errors="replace")[-3000:]
        return "(no log)"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
