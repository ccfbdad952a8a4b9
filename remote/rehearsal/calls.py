"""modal.Function and modal.FunctionCall for the rehearsal: each call is supervised by a process of its own.

A call's record lives in <root>/.rehearsal/calls/<id>/: input.json, the supervisor's pid, output.log,
then result.json, error.pickle, cancelled or internal. The supervisor (remote.rehearsal.supervisor) runs
the attempts, with the function's retries and timeout, and restarts a preempted input. from_id is lazy,
as Modal's is: an id that names no call fails at its first use.
"""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from remote.rehearsal import CALLS_DIR, faults

POLL_SECONDS = 0.2
STARTED_ORDER = "started_ns"  # in each call dir: when the call was made, to list calls in order
ENTERED = "entered"  # in an attempt's dir: its function body has been entered
INTERNAL = "internal"  # in a call dir: the call ended in Modal's INTERNAL_FAILURE
TRAINING = ("train", "train_smoke")
WARM_START_SECONDS = 120.0  # how long a warm spawn may wait for its body to be entered


class RehearsalFunction:
    """modal.Function for one function of the app: remote and spawn."""

    def __init__(self, root: Path, name: str) -> None:
        self.root, self.name = Path(root), name

    def remote(self, *args: Any, **kwargs: Any) -> Any:
        return self.spawn(*args, **kwargs).result()

    def spawn(self, *args: Any, **kwargs: Any) -> RehearsalCall:
        """A new call. warm@train: a training call's body is entered before this returns, as on a warm
        container; lost-spawn@train: the call is made, and its answer lost (modal's ConnectionError)."""
        from modal.exception import ConnectionError as ModalConnectionError

        call = RehearsalCall.start(self.root, self.name, list(args), kwargs)
        if self.name in TRAINING and faults.fire_once(self.root, "warm@train") is not None:
            call.wait_entered(WARM_START_SECONDS)
        if self.name in TRAINING and faults.fire_once(self.root, "lost-spawn@train") is not None:
            raise ModalConnectionError("rehearsed fault lost-spawn@train: the answer to the spawn was lost")
        return call


class RehearsalCall:
    """modal.FunctionCall for a rehearsed call: get, cancel, from_id."""

    def __init__(self, root: Path, object_id: str) -> None:
        self.root, self.object_id = Path(root), object_id
        self.dir = self.root / CALLS_DIR / object_id

    @classmethod
    def start(cls, root: Path, name: str, args: list, kwargs: dict) -> RehearsalCall:
        call = cls(root, f"fc-rehearsal-{uuid.uuid4().hex[:16]}")
        call.dir.mkdir(parents=True)
        request = {"function": name, "args": args, "kwargs": kwargs, "spec": function_spec(name)}
        (call.dir / "input.json").write_text(json.dumps(request))
        (call.dir / STARTED_ORDER).write_text(str(time.time_ns()))
        with open(call.dir / "output.log", "ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "remote.rehearsal.supervisor", str(call.dir)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=os.environ | {"PYTHONUNBUFFERED": "1"},
                start_new_session=True,  # a container of its own: Ctrl-C here does not reach it
            )
        (call.dir / "pid").write_text(str(process.pid))
        call._process = process
        return call

    @classmethod
    def from_id(cls, root: Path, object_id: str) -> RehearsalCall:
        """A handle on the call; nothing is looked up until it is used."""
        return cls(root, object_id)

    def _exists(self) -> None:
        from modal.exception import NotFoundError

        if not (self.dir / "input.json").is_file():
            raise NotFoundError(f"Function call {self.object_id} not found")

    def wait_entered(self, timeout: float) -> None:
        """Until an attempt of the call has entered its function body (or the call has ended)."""
        deadline = time.monotonic() + timeout
        while not any(self.dir.glob(f"attempts/*/{ENTERED}")) and not self.finished():
            if time.monotonic() > deadline:
                return
            time.sleep(POLL_SECONDS / 4)

    def finished(self) -> bool:
        ended = ("result.json", "error.pickle", "cancelled", INTERNAL)
        return any((self.dir / n).exists() for n in ended) or not self._alive()

    def get(self, timeout: float | None = None) -> Any:
        """FunctionCall.get: the result; the function's own exception if it raised; builtin TimeoutError while
        it runs (connection@get:N makes the next N calls lose their connection to Modal; internal@get ends the
        call in Modal's internal failure)."""
        from modal.exception import ConnectionError as ModalConnectionError

        self._exists()
        if faults.fire(self.root, "connection@get"):
            raise ModalConnectionError("rehearsed fault: the connection to Modal was lost")
        if not self._settled() and faults.fire_once(self.root, "internal@get") is not None:
            (self.dir / INTERNAL).write_text("rehearsed fault internal@get")
            self.cancel(terminate_containers=True)
        return self.result(timeout)

    def result(self, timeout: float | None = None) -> Any:
        """The call's outcome, as .remote() waits for it."""
        from modal.exception import InternalFailure, RemoteError

        self._exists()
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if (self.dir / INTERNAL).exists():
                raise InternalFailure(f"Function call {self.object_id} failed: an internal error of Modal's")
            if (self.dir / "result.json").exists():
                return json.loads((self.dir / "result.json").read_text())
            if (self.dir / "error.pickle").exists():
                raise pickle.loads((self.dir / "error.pickle").read_bytes())
            if (self.dir / "cancelled").exists() and not self._alive():
                raise RemoteError(f"Function call {self.object_id} was cancelled")
            if not self._alive() and not self._settled():
                tail = (self.dir / "output.log").read_text(errors="replace")[-2000:]
                raise RemoteError(f"Function call {self.object_id} exited without a result:\n{tail}")
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"Function call {self.object_id} is still running")
            time.sleep(POLL_SECONDS)

    def cancel(self, terminate_containers: bool = False) -> None:
        """Ask the supervisor to stop the call, and return at once, as Modal does."""
        self._exists()
        if self._settled():
            return
        (self.dir / "cancelled").write_text(json.dumps({"terminate_containers": terminate_containers}))
        pid = self._pid()
        if pid is not None:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    def cancel_request(self) -> dict | None:
        """How the call was cancelled ({"terminate_containers": ...}), or None."""
        try:
            return json.loads((self.dir / "cancelled").read_text())
        except (OSError, ValueError):
            return None

    def _settled(self) -> bool:
        return (self.dir / "result.json").exists() or (self.dir / "error.pickle").exists()

    def _pid(self) -> int | None:
        try:
            return int((self.dir / "pid").read_text())
        except (OSError, ValueError):
            return None

    def _alive(self) -> bool:
        process = getattr(self, "_process", None)
        if process is not None:
            return process.poll() is None
        return pid_alive(self._pid())


def function_spec(name: str) -> dict:
    """What the app declares for a function (its image's variables, secrets, timeout, retries), as the
    supervisor schedules it: read here, where the app is imported once, and handed over with the input."""
    from remote.app import SPECS

    spec = SPECS[name]
    retries = spec.retries
    return {
        "env": spec.env,
        "secrets": [{"name": secret.name, "keys": list(secret.keys)} for secret in spec.secrets],
        "timeout": spec.timeout,
        "retries": None if retries is None else {
            "max_retries": retries.max_retries,
            "initial_delay_s": retries.initial_delay.total_seconds(),
            "backoff_coefficient": retries.backoff_coefficient,
            "max_delay_s": retries.max_delay.total_seconds(),
        },
    }  # fmt: skip


def pid_alive(pid: int | None) -> bool:
    """A live process (a zombie of another parent answers kill(0): /proc tells)."""
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def calls_made(root: Path) -> list[tuple[str, str]]:
    """(function, call id) of every call made on this rehearsal volume, oldest first."""
    found = []
    for order in (Path(root) / CALLS_DIR).glob(f"*/{STARTED_ORDER}"):
        request = json.loads((order.parent / "input.json").read_text())
        found.append((int(order.read_text()), request["function"], order.parent.name))
    return [(function, call_id) for _, function, call_id in sorted(found)]
