"""The modal profile without a Modal account: a rehearsal before paying for the real run.

A directory stands in for the volume `qwen-finetune-data`: what the app's functions see at /data
is that directory. Each function call runs in a process of its own (`python -m
remote.rehearsal <call dir>`), with the caller's environment, so Modal secrets come from
local variables of the same names. Arguments and results cross as JSON with volume paths, as on
Modal: the client reaches the volume only through the volume API below, and a client-side read
of a /data path fails here as it would there. Calls can be spawned, polled, re-attached by id
and cancelled like modal.FunctionCall; failures surface as the exceptions modal 1.6 raises.

Prefect-free; modal is imported only for its exception and file-entry types.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import time
import traceback
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

from motioncoach.config import ModalConfig

REHEARSAL_ENV = "MOTIONCOACH_REHEARSE_VOLUME"
VOLUME_ROOT_ENV = "MOTIONCOACH_VOLUME_ROOT"  # read by deployments.modal_app.data_root()
CALLS_DIR = ".rehearsal/calls"
MOUNT = ModalConfig().volume_path
_POLL_SECONDS = 0.2
_STOP_GRACE_SECONDS = 30


def rehearsal_root() -> Path | None:
    """The directory a rehearsal uses as the volume, when one was asked for (--rehearse-volume)."""
    value = os.environ.get(REHEARSAL_ENV)
    return Path(value).expanduser().resolve() if value else None


# ---- The volume ----


class RehearsalVolume:
    """modal.Volume's client API over a directory: read_file, listdir, batch_upload."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _path(self, path: str) -> Path:
        relative = PurePosixPath(path.strip("/"))
        if ".." in relative.parts:
            raise ValueError(f"{path!r} leaves the volume")
        return self.root / relative

    def read_file(self, path: str) -> Iterator[bytes]:
        file = self._path(path)
        if not file.is_file():
            raise FileNotFoundError(f"No such file: {path}")  # what modal 1.6 raises
        with open(file, "rb") as f:
            while chunk := f.read(1 << 20):
                yield chunk

    def listdir(self, path: str, *, recursive: bool = False) -> list:
        from modal.exception import NotFoundError
        from modal.volume import FileEntry, FileEntryType

        base = self._path(path)
        if not base.exists():
            raise NotFoundError(f"No such file or directory: {path}")
        found = base.rglob("*") if recursive else base.iterdir()
        return [
            FileEntry(
                path=p.relative_to(self.root).as_posix(),
                type=FileEntryType.FILE if p.is_file() else FileEntryType.DIRECTORY,
                mtime=int(p.stat().st_mtime),
                size=p.stat().st_size if p.is_file() else 0,
            )
            for p in sorted(found)
            if not p.relative_to(self.root).as_posix().startswith(".rehearsal")
        ]

    @contextmanager
    def batch_upload(self, force: bool = False) -> Iterator[_Batch]:
        batch = _Batch(self, force)
        yield batch
        batch.finish()

    def commit(self) -> None:  # writes land at once on a directory
        return None

    def reload(self) -> None:
        return None


class _Batch:
    """Uploads collected and written together, refusing to overwrite unless force (like modal's)."""

    def __init__(self, volume: RehearsalVolume, force: bool) -> None:
        self.volume, self.force = volume, force
        self.files: list[tuple[bytes, Path, str]] = []

    def put_file(self, local_file: Path | str | BinaryIO, remote_path: str) -> None:
        data = local_file.read() if hasattr(local_file, "read") else Path(local_file).read_bytes()
        self.files.append((data, self.volume._path(remote_path), remote_path))

    def put_directory(self, local_path: Path | str, remote_path: str) -> None:
        for file in sorted(Path(local_path).rglob("*")):
            if file.is_file():
                self.put_file(file, f"{remote_path.rstrip('/')}/{file.relative_to(local_path).as_posix()}")

    def finish(self) -> None:
        for _data, target, name in self.files:
            if target.exists() and not self.force:
                raise FileExistsError(f"{name} already exists on the volume")
        for data, target, _ in self.files:
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(f".{target.name}.partial")
            partial.write_bytes(data)
            partial.replace(target)


# ---- Functions and calls ----


class RehearsalFunction:
    """modal.Function for one function of the app: remote, spawn, map."""

    def __init__(self, root: Path, name: str) -> None:
        self.root, self.name = Path(root), name

    def remote(self, *args: Any, **kwargs: Any) -> Any:
        return self.spawn(*args, **kwargs).get()

    def spawn(self, *args: Any, **kwargs: Any) -> RehearsalCall:
        return RehearsalCall.start(self.root, self.name, list(args), kwargs)

    def map(
        self, *inputs: Iterable, kwargs: dict | None = None, order_outputs: bool = True, parallel: int | None = None
    ) -> Iterator[Any]:
        """One process per input, a few at a time; results as they finish unless order_outputs."""
        pending = [list(args) for args in zip(*inputs, strict=True)]
        limit = parallel or max(1, min(4, os.cpu_count() or 1))
        running: list[tuple[int, RehearsalCall]] = []
        done: dict[int, Any] = {}
        next_out = index = 0
        try:
            while pending or running:
                while pending and len(running) < limit:
                    running.append((index, RehearsalCall.start(self.root, self.name, pending.pop(0), kwargs or {})))
                    index += 1
                for item in list(running):
                    if item[1].finished():
                        running.remove(item)
                        done[item[0]] = item[1].get()
                        if not order_outputs:
                            yield done.pop(item[0])
                while order_outputs and next_out in done:
                    yield done.pop(next_out)
                    next_out += 1
                time.sleep(_POLL_SECONDS)
        finally:
            for _, call in running:
                call.cancel()


class RehearsalCall:
    """modal.FunctionCall for a call running in a local process: get, cancel, from_id."""

    def __init__(self, root: Path, object_id: str) -> None:
        self.root, self.object_id = Path(root), object_id
        self.dir = self.root / CALLS_DIR / object_id

    @classmethod
    def start(cls, root: Path, name: str, args: list, kwargs: dict) -> RehearsalCall:
        call = cls(root, f"fc-rehearsal-{uuid.uuid4().hex[:16]}")
        call.dir.mkdir(parents=True)
        (call.dir / "input.json").write_text(json.dumps({"function": name, "args": args, "kwargs": kwargs}))
        env = os.environ | {VOLUME_ROOT_ENV: str(call.root), "PYTHONUNBUFFERED": "1"}
        with open(call.dir / "output.log", "ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "remote.rehearsal", str(call.dir)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,  # a container of its own: Ctrl-C here does not reach it
            )
        (call.dir / "pid").write_text(str(process.pid))
        call._process = process
        return call

    @classmethod
    def from_id(cls, root: Path, object_id: str) -> RehearsalCall:
        from modal.exception import NotFoundError

        call = cls(root, object_id)
        if not (call.dir / "input.json").is_file():
            raise NotFoundError(f"Function call {object_id} not found")
        return call

    def finished(self) -> bool:
        return any((self.dir / name).exists() for name in ("result.json", "error.pickle", "cancelled")) or not (
            self._alive()
        )

    def get(self, timeout: float | None = None) -> Any:
        """The result; the function's own exception if it raised; builtin TimeoutError if still running."""
        from modal.exception import RemoteError

        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if (self.dir / "cancelled").exists():
                raise RemoteError(f"Function call {self.object_id} was cancelled")
            if (self.dir / "result.json").exists():
                return json.loads((self.dir / "result.json").read_text())
            if (self.dir / "error.pickle").exists():
                raise pickle.loads((self.dir / "error.pickle").read_bytes())
            if not self._alive():
                tail = (self.dir / "output.log").read_text(errors="replace")[-2000:]
                raise RemoteError(f"Function call {self.object_id} exited without a result:\n{tail}")
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"Function call {self.object_id} is still running")
            time.sleep(_POLL_SECONDS)

    def cancel(self, terminate_containers: bool = False) -> None:
        """Stop the call's process group, as Modal terminates a cancelled input."""
        if self.finished() and not self._alive():
            return
        (self.dir / "cancelled").touch()
        pid = self._pid()
        if pid is None:
            return
        try:
            os.killpg(pid, signal.SIGTERM)
            deadline = time.monotonic() + _STOP_GRACE_SECONDS
            while self._alive() and time.monotonic() < deadline:
                time.sleep(_POLL_SECONDS)
            if self._alive():
                os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def _pid(self) -> int | None:
        try:
            return int((self.dir / "pid").read_text())
        except (OSError, ValueError):
            return None

    def _alive(self) -> bool:
        process = getattr(self, "_process", None)
        if process is not None:
            return process.poll() is None
        pid = self._pid()
        if pid is None:
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        # A zombie of another parent still answers kill(0); /proc tells.
        stat = Path(f"/proc/{pid}/stat")
        return not (stat.exists() and stat.read_text().split(")")[-1].split()[0] == "Z")


# ---- The process a call runs in ----


def _rebase(value: Any, old: str, new: str) -> Any:
    """Every string path under old in a JSON value, moved under new (lists and dicts walked)."""
    if isinstance(value, str) and (value == old or value.startswith(old + "/")):
        return new + value[len(old) :]
    if isinstance(value, list):
        return [_rebase(v, old, new) for v in value]
    if isinstance(value, dict):
        return {k: _rebase(v, old, new) for k, v in value.items()}
    return value


def run_call(call_dir: Path) -> int:
    """Run one function body of the app on the call's JSON input; write its result or exception."""
    import warnings

    from modal.exception import InputCancellation

    def cancelled(signum, frame):
        # What a cancelled Modal input sees: an exception in the function, so its cleanup runs
        # (run_sft stops the swift process group it started).
        raise InputCancellation("the function call was cancelled")

    signal.signal(signal.SIGTERM, cancelled)
    root = os.environ[VOLUME_ROOT_ENV]
    request = json.loads((call_dir / "input.json").read_text())
    try:
        from deployments import modal_app

        warnings.filterwarnings("ignore", message=".*executing locally.*")
        function = getattr(modal_app, request["function"])
        # Arguments name /data paths, as on Modal; the function sees the rehearsal directory there.
        args, kwargs = _rebase(request["args"], MOUNT, root), _rebase(request["kwargs"], MOUNT, root)
        result = function.local(*args, **kwargs)
        payload = json.dumps(_rebase(json.loads(json.dumps(result)), root, MOUNT))
        partial = call_dir / ".result.json.partial"
        partial.write_text(payload)
        partial.replace(call_dir / "result.json")
        return 0
    except BaseException as error:  # noqa: BLE001 - every failure goes back to the caller, as Modal does
        traceback.print_exc()
        try:
            data = pickle.dumps(error)
            pickle.loads(data)
        except Exception:  # noqa: BLE001 - an exception that does not pickle travels as text
            from modal.exception import RemoteError

            data = pickle.dumps(RemoteError("".join(traceback.format_exception(error))))
        (call_dir / "error.pickle").write_bytes(data)
        return 1


def clear_calls(root: Path) -> None:
    """Forget finished calls' records (the volume's data is kept)."""
    shutil.rmtree(Path(root) / CALLS_DIR, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(run_call(Path(sys.argv[1])))
