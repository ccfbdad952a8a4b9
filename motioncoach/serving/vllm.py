"""`vllm serve` as a child process: the OpenAI-compatible server the Modal endpoint, the Modal evaluation and
the parity bench put in front of a model.

A merged release is served as a plain Qwen3-VL. Base + LoRA adapter is served with `--enable-lora`, and with
`--enable-tower-connector-lora` (vLLM 0.33: experimental, Qwen VL models) so that the LoRA our recipe trains on
the vision tower and the mergers is applied too; without it vLLM logs that `visual.*` LoRA weights are
ignored and serves another model than the one that was measured. With the tower flag the multi-modal
processor cache is turned off (`--mm-processor-cache-gb 0`): vLLM 0.33 keys that cache without the LoRA on
purpose, so this only costs re-processing an image sent twice; it is kept off to serve exactly as measured.

Photos are resized to the training pixels before they are sent; `max_pixels` also sets the processor's
size, so that a client sending a full-size photo to the OpenAI API gets the training resolution too.
Everything vLLM prints goes to `log_path` (one file per start), and a start that fails says its last lines.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

log = logging.getLogger(__name__)

SERVED_NAME = "motioncoach"
LORA_NAME = "motioncoach-lora"
VLLM_VERSION = "0.33.0"  # the serving image's (remote/requirements/serve.in); it has the tower flag
STARTUP_SECONDS = 20 * 60  # a 32B model in bf16 is 64 GB to read from the volume
# The served context: a prompt (system turn, pose block, ~1k visual tokens at 1 M pixels) and a 1024-token answer
# fit with room to spare; a photo resized past the training pixels would not, and is refused by vLLM.
MAX_MODEL_LEN = 8192
TAIL_CHARS = 3000
LOGS_KEPT = 20


class VLLMNotReady(RuntimeError):
    """The server exited, or did not answer /health in time; the message holds its log's last lines."""


@dataclass
class VLLMServer:
    """A `vllm serve` process on this machine, for the duration of a `with` block."""

    model: str
    lora: Path | None = None  # a LoRA adapter on model, served as LORA_NAME
    tower_lora: bool = True  # apply the adapter's LoRA on the vision tower and mergers too
    max_lora_rank: int = 256
    max_model_len: int = MAX_MODEL_LEN
    max_pixels: int | None = None  # the training images' MAX_PIXELS: the processor resizes to it
    gpu_memory_utilization: float = 0.90
    tensor_parallel_size: int = 1
    port: int = 0  # 0: a free one
    log_path: Path | None = None  # vLLM's output; None: discarded (and a failed start cannot say why)
    cache_dir: Path | None = None  # vLLM's and torch.compile's caches, kept between starts (a volume)
    extra_args: tuple[str, ...] = ()
    process: subprocess.Popen | None = field(default=None, init=False)

    @property
    def served_model(self) -> str:
        """The model name requests ask for: the adapter when there is one (the base is SERVED_NAME)."""
        return LORA_NAME if self.lora else SERVED_NAME

    @property
    def root_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.root_url}/v1"

    def command(self) -> list[str]:
        from motioncoach.serving.photo import processor_size

        vllm = shutil.which("vllm") or f"{sys.executable} -m vllm.entrypoints.cli.main"
        args = [
            *vllm.split(), "serve", str(self.model), "--served-model-name", SERVED_NAME,
            "--host", "127.0.0.1", "--port", str(self.port),
            "--max-model-len", str(self.max_model_len), "--gpu-memory-utilization", str(self.gpu_memory_utilization),
            "--tensor-parallel-size", str(self.tensor_parallel_size),
            "--limit-mm-per-prompt", '{"image": 1}', "--seed", "0",
        ]  # fmt: skip
        if self.max_pixels is not None:
            args += ["--mm-processor-kwargs", json.dumps({"size": processor_size(self.max_pixels)})]
        if self.lora is not None:
            args += ["--enable-lora", "--lora-modules", f"{LORA_NAME}={self.lora}"]
            args += ["--max-lora-rank", str(self.max_lora_rank), "--max-loras", "1"]
            if self.tower_lora:
                args += ["--enable-tower-connector-lora", "--mm-processor-cache-gb", "0"]
        return args + list(self.extra_args)

    def environment(self) -> dict[str, str]:
        env = os.environ | {"VLLM_LOGGING_LEVEL": os.environ.get("VLLM_LOGGING_LEVEL", "INFO")}
        if self.cache_dir is not None:
            cache = Path(self.cache_dir)
            env |= {
                "VLLM_CACHE_ROOT": str(cache / "vllm"),  # compiled graphs, per model and flags
                "TORCHINDUCTOR_CACHE_DIR": str(cache / "inductor"),
                "TRITON_CACHE_DIR": str(cache / "triton"),
            }
        return env

    def __enter__(self) -> VLLMServer:
        if not self.port:
            self.port = _free_port()
        command = self.command()
        log.info("starting %s (log: %s)", " ".join(command), self.log_path or "discarded")
        if self.log_path is not None:
            Path(self.log_path).parent.mkdir(parents=True, exist_ok=True)
        output = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        try:
            self.process = subprocess.Popen(
                command, stdout=output, stderr=subprocess.STDOUT, start_new_session=True, env=self.environment()
            )
        finally:
            if output is not subprocess.DEVNULL:
                output.close()  # the child holds its own descriptor
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
                raise VLLMNotReady(f"vllm serve exited with code {self.process.returncode}{self._tail()}")
            try:
                if httpx.get(f"{self.root_url}/health", timeout=5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise VLLMNotReady(f"vllm serve did not answer /health within {STARTUP_SECONDS} s{self._tail()}")

    def _tail(self) -> str:
        if self.log_path is None:
            return " (its output was discarded: give the server a log_path)"
        try:
            text = Path(self.log_path).read_text(errors="replace")
        except OSError:
            return f" (no log at {self.log_path})"
        return f"; the last lines of {self.log_path}:\n{text[-TAIL_CHARS:]}"


def log_for_start(log_dir: Path, keep: int = LOGS_KEPT) -> Path:
    """A new log file for this start in log_dir (vllm-<UTC time to the microsecond>.log); the oldest beyond
    `keep` go."""
    log_dir = Path(log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    existing = sorted(log_dir.glob("vllm-*.log"))  # named by time: oldest first
    for old in existing[: max(0, len(existing) - keep + 1)]:
        old.unlink(missing_ok=True)
    return log_dir / f"vllm-{datetime.now(UTC):%Y%m%dT%H%M%S.%fZ}.log"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
