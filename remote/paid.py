"""Every paid call cancellable: a step's calls are spawned and recorded before they are waited on, and when the
step ends early (Ctrl-C, SIGTERM, a Prefect cancel, an error) every one still running is cancelled with its
containers before the step lets go of the data dir.

The record (<data dir>/modal_calls.json) names each call's run (Remote.owner), so the flows' cancel and
crash hooks cancel their own run's calls and nobody else's.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from remote.client import Remote, modal_errors
from remote.outcomes import CallEnded, ended, passing_errors, unreachable_errors, wait_for

log = logging.getLogger(__name__)

POLL_SECONDS = 5.0  # between looks at the calls still running


class Terminated(BaseException):
    """SIGTERM reached a client that had no handler for it: stop as Ctrl-C would, cancelling what it owns."""


@contextmanager
def sigterm_raises() -> Iterator[None]:
    """SIGTERM raises Terminated while paid calls are watched, unless someone (Prefect's engine, which turns it
    into its TerminationSignal) already handles it: by default it would kill the client silently."""
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


def cancel(call, why: str) -> bool:
    """Stop a paid call and its containers (no GPU keeps running without an owner); tried a few times.
    Whether Modal took the cancel."""
    for attempt in range(3):
        try:
            call.cancel(terminate_containers=True)
            log.warning("stopped the Modal call %s (%s)", call.object_id, why)
            return True
        except Exception as exc:  # noqa: BLE001 - say how to stop it by hand rather than hide it
            if attempt == 2:
                log.error(
                    "could not stop the Modal call %s (%s): stop it with `python -c \"import modal; "
                    "modal.FunctionCall.from_id('%s').cancel(terminate_containers=True)\"`, or in the Modal dashboard",
                    call.object_id, exc, call.object_id,
                )  # fmt: skip
            else:
                time.sleep(2.0)
    return False


class CallBook:
    """The local record of a data dir's paid calls: id, function, owner, state."""

    def __init__(self, path: Path | None):
        self.path = Path(path) if path is not None else None
        self._lock = threading.Lock()

    def entries(self) -> dict[str, dict]:
        if self.path is None:
            return {}
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}

    def note(self, call_id: str, **fields) -> None:
        if self.path is None:
            return
        with self._lock:
            entries = self.entries()
            entries[call_id] = entries.get(call_id, {}) | fields | {"at": time.time()}
            self.path.parent.mkdir(parents=True, exist_ok=True)
            partial = self.path.with_name(f".{self.path.name}.partial")
            partial.write_text(json.dumps(entries, indent=1))
            partial.replace(self.path)


class PaidCalls:
    """The paid calls of one step. Use as a context manager: leaving it with an exception cancels every call
    of the step still running, with its containers."""

    def __init__(self, remote: Remote, what: str):
        self.remote, self.what = remote, what
        self.book = CallBook(remote.calls_book)
        self.live: dict[str, Any] = {}  # call id -> call, spawned and not yet settled
        self._sigterm = None

    def __enter__(self) -> PaidCalls:
        self._sigterm = sigterm_raises()
        self._sigterm.__enter__()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc is not None:
                self.cancel_live(f"{self.what} stopped: {exc_type.__name__}")
        finally:
            self._sigterm.__exit__(exc_type, exc, tb)

    def spawn(self, function: str, *args, **kwargs):
        """A call of the deployed function, recorded as this run's before anything else can happen to it."""
        with modal_errors():
            call = self.remote.function(function).spawn(*args, **kwargs)
        self.book.note(call.object_id, function=function, owner=self.remote.owner, state="running")
        self.live[call.object_id] = call
        return call

    def wait(self, call, poll_s: float = POLL_SECONDS) -> Any:
        """The call's result (remote.outcomes.wait_for), recorded as it settles."""
        try:
            first = self.remote.settings.outage_wait_seconds
            result = wait_for(call, f"the {self.what} call", poll_s, first_wait_s=first)
        except CallEnded as outcome:
            self._settle(call, outcome.state)
            raise
        except Exception:
            self._settle(call, "failed")
            raise
        self._settle(call, "finished")
        return result

    def as_completed(self, calls: Sequence, progress: Callable[[Any], None] | None = None) -> list[Any]:
        """Every call's result, each looked at in turn and taken as it finishes; progress(result) for each. An
        outage or a passing Modal error is logged and looked at again; the first call to end badly raises."""
        waiting = list(calls)
        results: dict[str, Any] = {}
        while waiting:
            for call in list(waiting):
                try:
                    result = call.get(timeout=0)
                except TimeoutError:
                    continue
                except unreachable_errors() + passing_errors() as exc:
                    log.warning("Modal answered %s (%s) about the %s call %s; looking again",
                                type(exc).__name__, exc, self.what, call.object_id)  # fmt: skip
                    continue
                except Exception as exc:
                    outcome = ended(exc, call.object_id, f"the {self.what} call")
                    self._settle(call, outcome.state if outcome else "failed")
                    if outcome is None:
                        raise
                    raise outcome from None
                self._settle(call, "finished")
                waiting.remove(call)
                results[call.object_id] = result
                if progress is not None:
                    progress(result)
            if waiting:
                time.sleep(POLL_SECONDS)
        return [results[call.object_id] for call in calls]

    def cancel_live(self, why: str) -> None:
        for call in list(self.live.values()):
            cancel(call, why)
            self._settle(call, "cancelled")

    def _settle(self, call, state: str) -> None:
        self.live.pop(call.object_id, None)
        self.book.note(call.object_id, state=state)


def cancel_recorded_calls(remote: Remote, owner: str) -> list[str]:
    """Cancel, with their containers, every paid call the data dir's record says this owner's run left
    running (the flows' cancel and crash hooks); other runs' calls are left alone."""
    book = CallBook(remote.calls_book)
    cancelled = []
    for call_id, entry in book.entries().items():
        if entry.get("state") != "running" or entry.get("owner") != owner or remote.call_from_id is None:
            continue
        cancel(remote.call_from_id(call_id), "its flow run was cancelled or crashed")
        book.note(call_id, state="cancelled")
        cancelled.append(call_id)
    return cancelled
