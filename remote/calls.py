"""Who owns a paid training call: one call per run dir, guaranteed by Modal, re-attached rather than paid twice,
recovered when it failed, and stopped only when the user stops it.

The owner is the call whose claim on the run dir went first into the claims Dict (put with skip_if_exists,
atomic on Modal's side; remote.contract.run_claim): the training function claims before any work and a
call that finds another's claim returns at once, naming it. The client looks the claim up before it spawns
and after a spawn whose answer was lost, so it follows the owner instead of paying for a twin, and it
clears a claim only once Modal confirms its call is over. The function keeps its own record beside the
checkpoints (`modal_call.json`: state, heartbeat, attempts) and its result (`result.json`), so a client can
tell a running call from a finished, failed or expired one even when Modal no longer keeps its output; the
client keeps its own record in the local run state, for the flows' hooks.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from motioncoach.errors import TrainingError
from remote.client import Remote, modal_errors
from remote.contract import CALL_RECORD, RESULT_FILE, is_fresh, run_claim
from remote.outcomes import CallEnded, reaching_modal, unreachable_errors, wait_for
from remote.paid import cancel, sigterm_raises

log = logging.getLogger(__name__)

State = Literal["running", "finished", "failed", "cancelled", "expired", "timed_out"]
LOST_SPAWN_WAIT_SECONDS = 90.0  # after a spawn whose answer was lost: how long its call may take to claim
CLAIM_POLL_SECONDS = 2.0


class CallRecord(BaseModel):
    """The client's record of a run dir's training call."""

    call_id: str
    state: State
    at: float
    heartbeat: float | None = None
    reason: str | None = None
    owner: str | None = None  # the run that spawned it (Remote.owner)

    @property
    def fresh(self) -> bool:
        return is_fresh(self.model_dump())


class TrainingCalls:
    """The training call of one run dir: its claim, its records, and the calls themselves."""

    def __init__(self, remote: Remote, run_dir: str, local_record: Path):
        self.remote, self.run_dir, self.local_record = remote, run_dir, Path(local_record)
        self.claim_key = run_claim(run_dir)

    # ---- records ----

    def read(self) -> CallRecord | None:
        """The client's record of the call (this machine's)."""
        try:
            return CallRecord.model_validate_json(self.local_record.read_bytes())
        except (FileNotFoundError, ValueError):
            return None

    def write(self, record: CallRecord) -> None:
        self.local_record.parent.mkdir(parents=True, exist_ok=True)
        self.local_record.write_bytes(record.model_dump_json().encode())

    def on_volume(self) -> dict | None:
        """What the function records beside its checkpoints: its state and heartbeat."""
        try:
            return json.loads(self._read_volume(CALL_RECORD))
        except (FileNotFoundError, ValueError):
            return None

    def result_on_volume(self) -> dict | None:
        """The result the function left beside its checkpoints when it finished, if any."""
        try:
            return json.loads(self._read_volume(RESULT_FILE))
        except (FileNotFoundError, ValueError):
            return None

    def _read_volume(self, name: str) -> bytes:
        return self._reaching(f"reading {name}", lambda: self.remote.read(f"{self.run_dir}/{name}"))

    def _reaching(self, what: str, attempt):
        return reaching_modal(what, attempt, self.remote.settings.outage_wait_seconds)

    def claimant(self) -> str | None:
        """The call id whose claim on the run dir is in the claims Dict."""
        holder = self._reaching("reading the run dir's claim", lambda: self.remote.claims.get(self.claim_key))
        return holder.get("call_id") if isinstance(holder, dict) else None

    def release_claim(self, call_id: str) -> None:
        """Clear the claim of a call Modal says is over, so a new call may own the run dir."""
        if self.claimant() == call_id:
            self._reaching("clearing the run dir's claim", lambda: self.remote.claims.pop(self.claim_key, None))

    # ---- calls ----

    def attach(self):
        """The call that owns the run dir when it can still give its result (running, or finished well); None
        when a new call must be spawned (none yet, or the owner failed, was cancelled, timed out or expired,
        as Modal confirms)."""
        call_id = self.claimant() or (self.read().call_id if self.read() else None)
        seen: set[str] = set()
        while call_id is not None and call_id not in seen:
            seen.add(call_id)
            found = self._follow(call_id)
            if isinstance(found, str):  # the call said another one owns the run dir
                call_id = found
                continue
            return found
        return None

    def _follow(self, call_id: str):
        """The call, its result, another call's id (a call that found the run dir claimed), or None (it is over)."""
        call = self.remote.call_from_id(call_id)
        try:
            result = self._reaching("asking the training call for its result", lambda: call.get(timeout=0))
        except TimeoutError:
            log.warning("re-attaching to the training call %s, still running on Modal", call_id)
            self._record(call_id, "running")
            return call
        except Exception as exc:
            from modal.exception import NotFoundError, OutputExpiredError

            if isinstance(exc, OutputExpiredError | NotFoundError):
                finished = self.result_on_volume()
                if finished is not None and (self.on_volume() or {}).get("call_id") == call_id:
                    return _Finished(call_id, finished)
                record = self.on_volume() or {}
                if record.get("call_id") == call_id and record.get("state") == "running" and is_fresh(record):
                    log.warning("the training call %s is running (its output is not available: %s)", call_id, exc)
                    return call
            return self._gone(call_id, f"{type(exc).__name__}: {exc}"[:500], exc)
        if isinstance(result, dict) and result.get("claimed_by"):
            return result["claimed_by"]
        if isinstance(result, dict) and "error" in result:
            return self._gone(call_id, result["error"][:500])
        log.info("the recorded training call %s has finished: using its result", call_id)
        return _Finished(call_id, result)

    def _gone(self, call_id: str, reason: str, exc: BaseException | None = None):
        state = "cancelled" if "cancel" in reason.lower() else "failed"
        log.info("the training call %s is %s (%s): a new call resumes the run", call_id, state, reason[:200])
        self._record(call_id, state, reason)
        self.release_claim(call_id)
        return None

    def _record(self, call_id: str, state: State, reason: str | None = None) -> None:
        previous = self.read()
        owner = previous.owner if previous and previous.call_id == call_id else self.remote.owner
        self.write(CallRecord(call_id=call_id, state=state, at=time.time(), reason=reason, owner=owner))

    def spawn(self, function, *args):
        """A new call, recorded before anything else can happen to it. A spawn whose answer is lost may have
        made its call all the same: the claim says so once it starts, and that call is followed; only when none
        appears is the spawn made again (the claim stops a late twin before it trains)."""
        with modal_errors():
            try:
                call = function.spawn(*args)
            except unreachable_errors() as exc:
                log.warning("the answer to the training spawn was lost (%s): looking for its call first", exc)
                call = self._claimed_within(LOST_SPAWN_WAIT_SECONDS)
                if call is None:
                    log.warning("no training call claimed %s: spawning it again", self.run_dir)
                    call = self._reaching("starting the training call", lambda: function.spawn(*args))
        self._record(call.object_id, "running")
        return call

    def _claimed_within(self, seconds: float):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            call_id = self.claimant()
            if call_id is not None:
                log.info("the training call %s claimed %s: following it", call_id, self.run_dir)
                return self.remote.call_from_id(call_id)
            time.sleep(CLAIM_POLL_SECONDS)
        return None

    def mark(self, call_id: str, state: State, reason: str | None = None) -> None:
        """The call ended (finished well, failed, cancelled, timed out): recorded here."""
        self._record(call_id, state, reason)


class _Finished:
    """A call that has ended with a result: get() answers it (as modal.FunctionCall would)."""

    def __init__(self, object_id: str, result: Any):
        self.object_id, self._result = object_id, result

    def get(self, timeout: float | None = None) -> Any:
        return self._result

    def cancel(self, terminate_containers: bool = False) -> None:
        return None


def watch(call, calls: TrainingCalls, log_path: str, on_log: Callable[[dict], None] | None, poll_s: float) -> dict:
    """The result of the call that trains the run dir, the steps it commits reported to on_log meanwhile.

    Only the user stops a paid call: an interrupt (Ctrl-C, SIGTERM, a Prefect cancel) cancels it and its
    containers. Modal's internal failure, a final timeout or a cancel made elsewhere end the wait, recorded,
    with what a rerun does; an outage or a passing Modal error is logged and waited out. A call that found
    another one owning the run dir hands over to it.
    """
    seen = [0]

    def progress() -> None:
        seen[0] = _report_new_steps(calls, log_path, seen[0], on_log)

    with sigterm_raises():
        while True:
            try:
                result = _result(call, calls, poll_s, progress)
            except TrainingError:
                raise
            except BaseException as exc:
                cancel(call, type(exc).__name__)
                calls.mark(call.object_id, "cancelled", f"the client stopped it ({type(exc).__name__})")
                raise
            if isinstance(result, dict) and result.get("claimed_by"):
                log.info("%s is trained by the call %s: following it", calls.run_dir, result["claimed_by"])
                call = calls.remote.call_from_id(result["claimed_by"])
                calls.mark(call.object_id, "running")
                continue
            break
    if isinstance(result, dict) and "error" in result:
        calls.mark(call.object_id, "failed", str(result["error"])[:500])
    else:
        calls.mark(call.object_id, "finished")
    return result


def _result(call, calls: TrainingCalls, poll_s: float, progress: Callable[[], None]) -> dict:
    """The call's result; a final outcome recorded and raised as TrainingError saying what a rerun does."""
    while True:
        try:
            first = calls.remote.settings.outage_wait_seconds
            return wait_for(call, "the training call", poll_s, on_wait=progress, first_wait_s=first)
        except CallEnded as outcome:
            if outcome.state == "expired":
                result = calls.result_on_volume()
                if result is not None and (calls.on_volume() or {}).get("call_id") == call.object_id:
                    return result
                record = calls.on_volume() or {}
                if record.get("call_id") == call.object_id and record.get("state") == "running" and is_fresh(record):
                    time.sleep(poll_s)
                    continue
            calls.mark(call.object_id, outcome.state, str(outcome)[:500])
            calls.release_claim(call.object_id)
            raise TrainingError(
                f"{outcome}. Its committed checkpoints stay in {calls.run_dir} on the volume: rerun, and a new call "
                "resumes from the latest one."
            ) from None
        except Exception as exc:  # the function's own exception, once Modal's retries were spent
            calls.mark(call.object_id, "failed", f"{type(exc).__name__}: {exc}"[:500])
            calls.release_claim(call.object_id)
            raise TrainingError(
                f"The training call {call.object_id} failed on Modal ({type(exc).__name__}: {exc}); its committed "
                f"checkpoints stay in {calls.run_dir}: rerun, and a new call resumes from the latest one."
            ) from exc


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


def cancel_recorded_calls(remote: Remote, data_dir: Path, owner: str) -> list[str]:
    """Cancel, with their containers, the training and other paid calls the data dir's run state says this
    owner's run left running (the flows' cancel and crash hooks); other runs' calls are left alone."""
    from remote.paid import cancel_recorded_calls as cancel_paid_calls

    cancelled = cancel_paid_calls(remote, owner)
    for path in sorted(Path(data_dir).glob(f"runs/*/{CALL_RECORD}")):
        try:
            record = CallRecord.model_validate_json(path.read_text())
        except ValueError:
            continue
        if record.state != "running" or record.owner != owner or remote.call_from_id is None:
            continue
        cancel(remote.call_from_id(record.call_id), "its flow run was cancelled or crashed")
        path.write_text(record.model_copy(update={"state": "cancelled", "at": time.time()}).model_dump_json())
        cancelled.append(record.call_id)
    return cancelled
