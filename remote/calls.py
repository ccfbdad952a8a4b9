"""Who owns a paid training call: one live call per run dir, re-attached rather than paid twice, recovered
when it failed, and stopped only when the user stops it.

The record of a run dir's call lives beside its checkpoints on the volume (`modal_call.json`) and in
the local run state (for the flow's cancel and crash hooks). The training function keeps it too: it
writes its own call id and a heartbeat while it runs, and its outcome and result (`result.json`) when
it ends, so a client can tell a running call from a finished, failed or expired one even when Modal
no longer keeps the call's output.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from deployments.modal_app import CALL_RECORD, RESULT_FILE, STALE_SECONDS
from remote.client import Remote, modal_errors

log = logging.getLogger(__name__)

BACKOFF_SECONDS = (5.0, 10.0, 20.0, 40.0, 60.0)  # waits between tries to reach Modal; the last repeats
State = Literal["running", "finished", "failed", "cancelled", "expired"]


class CallRecord(BaseModel):
    """A run dir's training call, as its client and the function itself record it."""

    call_id: str
    state: State
    at: float
    heartbeat: float | None = None
    reason: str | None = None

    @property
    def fresh(self) -> bool:
        """Refreshed recently: the function is running (or was, moments ago)."""
        return time.time() - max(self.at, self.heartbeat or 0.0) < STALE_SECONDS


def unreachable_errors() -> tuple[type[BaseException], ...]:
    """Errors that say Modal could not be reached or answered with a fault of its own: worth waiting out."""
    from modal.exception import ConnectionError as ModalConnectionError
    from modal.exception import InternalError, InternalFailure, ServiceError

    # The builtin ConnectionError covers refused and reset sockets; a missing file is an answer, not an outage.
    return (ModalConnectionError, InternalError, InternalFailure, ServiceError, ConnectionError)


def reaching_modal(what: str, attempt: Callable[[], Any], sleep: Callable[[float], None] = time.sleep) -> Any:
    """attempt(), tried again with backoff for as long as Modal cannot be reached (saying so each time)."""
    tries = 0
    while True:
        try:
            return attempt()
        except TimeoutError:
            raise  # FunctionCall.get's "still running" is an answer, not an outage
        except unreachable_errors() as exc:
            delay = BACKOFF_SECONDS[min(tries, len(BACKOFF_SECONDS) - 1)]
            tries += 1
            log.warning("Modal is unreachable while %s (%s); still waiting, next try in %.0f s", what, exc, delay)
            sleep(delay)


class TrainingCalls:
    """The training call of one run dir: its record on the volume and locally, and the calls themselves."""

    def __init__(self, remote: Remote, run_dir: str, local_record: Path):
        self.remote, self.run_dir, self.local_record = remote, run_dir, Path(local_record)

    # ---- records ----

    def read(self) -> CallRecord | None:
        """The volume's record (what every client and the function see), else the local one."""
        for read in (lambda: self._read_volume(CALL_RECORD), self.local_record.read_bytes):
            try:
                return CallRecord.model_validate_json(read())
            except (FileNotFoundError, ValueError):
                continue
        return None

    def write(self, record: CallRecord) -> None:
        """Record the call locally (for the hooks) and on the volume (for any client)."""
        data = record.model_dump_json().encode()
        self.local_record.parent.mkdir(parents=True, exist_ok=True)
        self.local_record.write_bytes(data)
        reaching_modal("recording the training call", lambda: self.remote.write(f"{self.run_dir}/{CALL_RECORD}", data))

    def result_on_volume(self) -> dict | None:
        """The result the function left beside its checkpoints when it finished, if any."""
        try:
            return json.loads(self._read_volume(RESULT_FILE))
        except (FileNotFoundError, ValueError):
            return None

    def _read_volume(self, name: str) -> bytes:
        return reaching_modal(f"reading {name}", lambda: self.remote.read(f"{self.run_dir}/{name}"))

    # ---- calls ----

    def attach(self):
        """The recorded call when it can still give its result (running, or finished well); None when a new
        call must be spawned (none yet, or the last one failed, was cancelled or expired)."""
        from modal.exception import NotFoundError, OutputExpiredError

        record = self.read()
        if record is None or record.state in ("failed", "cancelled", "expired"):
            return None
        if self.remote.call_from_id is None:
            return None
        call = reaching_modal("looking the training call up", lambda: self.remote.call_from_id(record.call_id))
        try:
            result = reaching_modal("asking the training call for its result", lambda: call.get(timeout=0))
        except TimeoutError:
            log.warning("re-attaching to the training call %s, still running on Modal", record.call_id)
            self.write(record.model_copy(update={"state": "running", "at": time.time()}))
            return call
        except (OutputExpiredError, NotFoundError) as exc:
            if self.result_on_volume() is not None:
                return _Finished(record.call_id, self.result_on_volume())
            latest = self.read() or record
            if latest.state == "running" and latest.fresh:
                log.warning("the training call %s is running (its output is not available: %s)", record.call_id, exc)
                return call
            return self._gone(record, "expired", f"Modal no longer has the call ({type(exc).__name__})")
        except BaseException as exc:  # noqa: BLE001 - raised by the function, or cancelled: it can give nothing
            if isinstance(exc, KeyboardInterrupt | SystemExit):
                raise
            state = "cancelled" if "cancel" in str(exc).lower() else "failed"
            return self._gone(record, state, f"{type(exc).__name__}: {exc}"[:500])
        if isinstance(result, dict) and "error" in result:
            return self._gone(record, "failed", result["error"][:500])
        log.info("the recorded training call %s has finished: using its result", record.call_id)
        return _Finished(record.call_id, result)

    def _gone(self, record: CallRecord, state: State, reason: str):
        log.info("the training call %s is %s (%s): a new call resumes the run", record.call_id, state, reason[:200])
        self.write(record.model_copy(update={"state": state, "at": time.time(), "reason": reason}))
        return None

    def spawn(self, function, *args):
        """A new call, recorded before anything else can happen to it."""
        with modal_errors():
            call = reaching_modal("starting the training call", lambda: function.spawn(*args))
        self.write(CallRecord(call_id=call.object_id, state="running", at=time.time()))
        return call

    def mark(self, state: State, reason: str | None = None) -> None:
        """The call ended (finished well, failed, cancelled): recorded here and, best effort, on the volume."""
        record = self.read()
        if record is None:
            return
        updated = record.model_copy(update={"state": state, "at": time.time(), "reason": reason})
        self.local_record.write_bytes(updated.model_dump_json().encode())
        try:
            self.remote.write(f"{self.run_dir}/{CALL_RECORD}", updated.model_dump_json().encode())
        except Exception as exc:  # noqa: BLE001 - the local record is what the hooks read; the volume's may lag
            log.warning("could not record the training call as %s on the volume (%s)", state, exc)


class _Finished:
    """A call that has ended with a result: get() answers it (as modal.FunctionCall would)."""

    def __init__(self, object_id: str, result: Any):
        self.object_id, self._result = object_id, result

    def get(self, timeout: float | None = None) -> Any:
        return self._result

    def cancel(self, terminate_containers: bool = False) -> None:
        return None


def cancel(call, why: str) -> None:
    """Stop a paid call and its containers (no GPU keeps running without an owner); tried a few times."""
    for attempt in range(3):
        try:
            call.cancel(terminate_containers=True)
            log.warning("stopped the training call %s on Modal (%s)", call.object_id, why)
            return
        except Exception as exc:  # noqa: BLE001 - say how to stop it by hand rather than hide it
            if attempt == 2:
                log.error(
                    "could not stop the training call %s on Modal (%s): stop it with `python -c \"import modal; "
                    "modal.FunctionCall.from_id('%s').cancel(terminate_containers=True)\"`, or in the Modal dashboard",
                    call.object_id, exc, call.object_id,
                )  # fmt: skip
            else:
                time.sleep(2.0)


class Terminated(BaseException):
    """SIGTERM reached a client that had no handler for it: stop as Ctrl-C would, cancelling what it owns."""


@contextmanager
def _sigterm_raises() -> Iterator[None]:
    """SIGTERM raises Terminated while a paid call is watched, unless someone (Prefect's engine, which turns
    it into its TerminationSignal) already handles it: by default it would kill the client silently."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) not in (
        signal.SIG_DFL,
        None,
    ):
        yield
        return

    def terminated(signum, frame):
        raise Terminated("SIGTERM")

    previous = signal.signal(signal.SIGTERM, terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def watch(call, calls: TrainingCalls, log_path: str, on_log: Callable[[dict], None] | None, poll_s: float) -> dict:
    """The call's result, the steps it commits reported to on_log meanwhile. Only the user stops a paid call:
    an interrupt (Ctrl-C, SIGTERM, a Prefect cancel) cancels it and its containers; progress errors and a
    Modal that cannot be reached are logged and waited out."""
    from motioncoach.errors import TrainingError

    try:
        with _sigterm_raises():
            result = _wait(call, calls, log_path, on_log, poll_s)
    except TrainingError:
        raise
    except BaseException as exc:
        cancel(call, type(exc).__name__)
        calls.mark("cancelled", f"the client stopped it ({type(exc).__name__})")
        raise
    if isinstance(result, dict) and "error" in result:
        calls.mark("failed", str(result["error"])[:500])
    else:
        calls.mark("finished")
    return result


def _wait(call, calls: TrainingCalls, log_path: str, on_log, poll_s: float) -> dict:
    from modal.exception import NotFoundError, OutputExpiredError

    from motioncoach.errors import TrainingError

    seen, unreachable_since, tries = 0, None, 0
    while True:
        try:
            result = call.get(timeout=poll_s)
        except TimeoutError:
            unreachable_since, tries = None, 0
            seen = _report_new_steps(calls, log_path, seen, on_log)
            continue
        except unreachable_errors() as exc:
            unreachable_since = unreachable_since or time.monotonic()
            delay = BACKOFF_SECONDS[min(tries, len(BACKOFF_SECONDS) - 1)]
            tries += 1
            log.warning(
                "Modal is unreachable (%s) for %.0f s; the training call %s goes on there, still waiting",
                exc, time.monotonic() - unreachable_since, call.object_id,
            )  # fmt: skip
            time.sleep(delay)
            continue
        except (OutputExpiredError, NotFoundError) as exc:
            result = calls.result_on_volume()
            if result is not None:
                return result
            record = calls.read()
            if record is not None and record.state == "running" and record.fresh:
                time.sleep(poll_s)
                continue
            raise TrainingError(
                f"Modal no longer knows the training call {call.object_id} ({type(exc).__name__}) and it left no "
                "result: rerun, and a new call resumes from the run's latest checkpoint."
            ) from None
        return result


def _report_new_steps(calls: TrainingCalls, log_path: str, seen: int, on_log) -> int:
    """Pass the log records after the first `seen` lines to on_log; returns the lines read so far. A failure
    to read or report progress is logged: it never stops the training."""
    from motioncoach.training.checkpoints import record_step

    try:
        lines = calls.remote.read(log_path).decode("utf-8", errors="replace").splitlines()
    except FileNotFoundError:  # not written or not committed yet
        return seen
    except Exception as exc:  # noqa: BLE001 - progress is for people; the call is what matters
        log.warning("could not read the training progress from the volume (%s); waiting on", exc)
        return seen
    for line in lines[seen:]:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        step = record_step(record) if isinstance(record, dict) else None
        if step is not None and on_log:
            try:
                on_log({**record, "step": step})
            except Exception as exc:  # noqa: BLE001 - an artifact update that failed is no reason to stop
                log.warning("could not report training step %s (%s); waiting on", step, exc)
    return len(lines)


def cancel_recorded_calls(remote: Remote, data_dir: Path) -> list[str]:
    """Cancel, with their containers, every training call this data dir's run state says is running
    (the flows' cancel and crash hooks)."""
    cancelled = []
    for path in sorted(Path(data_dir).glob(f"runs/*/{CALL_RECORD}")):
        try:
            record = CallRecord.model_validate_json(path.read_text())
        except ValueError:
            continue
        if record.state != "running" or remote.call_from_id is None:
            continue
        cancel(remote.call_from_id(record.call_id), "its flow run was cancelled or crashed")
        path.write_text(record.model_copy(update={"state": "cancelled", "at": time.time()}).model_dump_json())
        cancelled.append(record.call_id)
    return cancelled
