"""Reading what Modal answers about a call: an outage to wait out, an answer ("still running"), or the call's
final outcome. Only an interrupt of the client stops a paid call (remote.paid); nothing Modal answers
here does.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

LONGEST_WAIT_SECONDS = 60.0  # between tries to reach Modal: from ModalConfig.outage_wait_seconds, doubling
# A Modal error that keeps coming back for this long (not an outage: ResourceExhaustedError, ExecutionError)
# ends the wait: the call is left running and named, never cancelled.
GIVE_UP_AFTER_SECONDS = 30 * 60


class CallEnded(Exception):
    """The call is over without a result: Modal's internal failure, a final timeout, a cancel, lost output."""

    def __init__(self, state: str, message: str):
        super().__init__(message)
        self.state = state  # failed | timed_out | cancelled | expired


def unreachable_errors() -> tuple[type[BaseException], ...]:
    """Errors that say Modal could not be reached or answered with a fault of its own: worth waiting out."""
    from modal.exception import ConnectionError as ModalConnectionError
    from modal.exception import InternalError, ServiceError

    # The builtin ConnectionError covers refused and reset sockets; a missing file is an answer, not an outage.
    return (ModalConnectionError, InternalError, ServiceError, ConnectionError)


def passing_errors() -> tuple[type[BaseException], ...]:
    """Modal errors from get() that say nothing about the call itself: logged, and the wait goes on."""
    from modal.exception import ExecutionError, ResourceExhaustedError

    return (ResourceExhaustedError, ExecutionError)


def backoff(tries: int, first_s: float) -> float:
    return min(first_s * 2**tries, LONGEST_WAIT_SECONDS)


def reaching_modal(what: str, attempt: Callable[[], Any], first_wait_s: float = 5.0) -> Any:
    """attempt(), tried again with backoff for as long as Modal cannot be reached (saying so each time)."""
    tries = 0
    while True:
        try:
            return attempt()
        except TimeoutError:
            raise  # FunctionCall.get's "still running" is an answer, not an outage
        except unreachable_errors() as exc:
            delay = backoff(tries, first_wait_s)
            tries += 1
            log.warning("Modal is unreachable while %s (%s); still waiting, next try in %.0f s", what, exc, delay)
            time.sleep(delay)


def ended(exc: BaseException, call_id: str, what: str) -> CallEnded | None:
    """The final outcome an error from get() says, or None when it says nothing final (an outage, an answer, the
    function's own exception, which the caller re-raises)."""
    from modal.exception import FunctionTimeoutError, InternalFailure, NotFoundError, OutputExpiredError, RemoteError

    if isinstance(exc, InternalFailure):
        return CallEnded("failed", f"Modal reported an internal failure of {what} {call_id} ({exc}): Modal ended it")
    if isinstance(exc, FunctionTimeoutError):
        return CallEnded("timed_out", f"{what} {call_id} ran past its time limit on every attempt ({exc})")
    if isinstance(exc, OutputExpiredError | NotFoundError):
        return CallEnded("expired", f"Modal no longer has {what} {call_id} ({type(exc).__name__})")
    if isinstance(exc, RemoteError) and "cancel" in str(exc).lower():
        return CallEnded("cancelled", f"{what} {call_id} was cancelled on Modal")
    return None


def wait_for(
    call, what: str, poll_s: float, on_wait: Callable[[], None] | None = None, first_wait_s: float = 5.0
) -> Any:
    """The call's result. Still running: on_wait() between polls. An outage or a passing Modal error: logged and
    waited out. A final outcome: CallEnded. The function's own exception: raised as it is."""
    since: float | None = None
    tries = 0
    while True:
        try:
            return call.get(timeout=poll_s)
        except TimeoutError:
            since, tries = None, 0
            if on_wait is not None:
                on_wait()
            continue
        except unreachable_errors() + passing_errors() as exc:
            since = since or time.monotonic()
            waited = time.monotonic() - since
            if waited > GIVE_UP_AFTER_SECONDS and isinstance(exc, passing_errors()):
                raise CallEnded(
                    "failed",
                    f"Modal kept answering {type(exc).__name__} ({exc}) about {what} {call.object_id} for "
                    f"{waited / 60:.0f} minutes; the call was left as it is: look at it in the Modal dashboard",
                ) from None
            delay = backoff(tries, first_wait_s)
            tries += 1
            log.warning("Modal answered %s (%s) about %s %s, %.0f s now; it goes on there, still waiting",
                        type(exc).__name__, exc, what, call.object_id, waited)  # fmt: skip
            time.sleep(delay)
            continue
        except Exception as exc:
            outcome = ended(exc, call.object_id, what)
            if outcome is None:
                raise
            raise outcome from None
