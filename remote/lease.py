"""One writer per data dir on the volume: a lease every client takes before it changes /data/<name>.

Every local data dir named `data`, on any machine or checkout of the workspace, is /data/data on the
volume; the local lock (motioncoach.lock) cannot see a run on another machine, so the lease is a claim in
the workspace's claims Dict (remote.contract.lease_claim), put with skip_if_exists: of two clients
starting at once, exactly one gets it. It names its holder (user, host, pid, run) and carries a heartbeat.
A client that finds a fresh lease of someone else's stops with the holder's name; a lease whose heartbeat
is older than LEASE_TTL_SECONDS belongs to a client that died, and is taken over through a claim of its
own (one per expired lease), so two clients taking it over at once cannot both win.
"""

from __future__ import annotations

import getpass
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from motioncoach.lock import DataDirBusy
from remote.client import Remote
from remote.contract import lease_claim

log = logging.getLogger(__name__)

LEASE_TTL_SECONDS = 15 * 60
HEARTBEAT_SECONDS = 60.0

_held: dict[tuple[str, str], int] = {}  # (volume, data dir) -> depth: a pipeline's sub-flows take it again
_guard = threading.Lock()


def _describe(lease: dict) -> str:
    age = time.time() - lease.get("heartbeat", 0)
    return (
        f"{lease.get('run', 'a run')} ({lease.get('owner', '?')}, pid {lease.get('pid', '?')} on "
        f"{lease.get('host', '?')}, heartbeat {age:.0f} s ago)"
    )


def _expired(lease: dict) -> bool:
    return time.time() - lease.get("heartbeat", 0) >= LEASE_TTL_SECONDS


@contextmanager
def volume_lease(remote: Remote, what: str) -> Iterator[None]:
    """Hold /data/<remote.name> on the volume for the duration, or raise DataDirBusy naming the holder."""
    key = (remote.settings.volume_name, remote.name)
    with _guard:
        reentered = key in _held
        if reentered:
            _held[key] += 1
    if reentered:
        try:
            yield
        finally:
            with _guard:
                _held[key] -= 1
        return
    claims, claim = remote.claims, lease_claim(remote.settings.volume_name, remote.name)
    where = f"/data/{remote.name} on the Modal volume {remote.settings.volume_name!r}"
    mine = {
        "owner": f"{getpass.getuser()}@{socket.gethostname()}",
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "run": what,
        "token": uuid.uuid4().hex,
        "heartbeat": time.time(),
    }
    _take(claims, claim, mine, where)
    with _guard:
        _held[key] = 1
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(HEARTBEAT_SECONDS):
            try:
                if (claims.get(claim) or {}).get("token") == mine["token"]:
                    claims.put(claim, mine | {"heartbeat": time.time()})
                else:
                    log.error("the lease on %s was taken over by another client while this run held it", where)
            except Exception as exc:  # noqa: BLE001 - a missed heartbeat is retried; the lease lasts its TTL
                log.warning("could not refresh the lease on %s (%s)", where, exc)

    thread = threading.Thread(target=beat, name="volume-lease", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        with _guard:
            del _held[key]
        try:
            if (claims.get(claim) or {}).get("token") == mine["token"]:
                claims.pop(claim, None)
        except Exception as exc:  # noqa: BLE001 - an unreleased lease expires on its own
            log.warning("could not release the lease on %s (%s); it expires in %d s", where, exc, LEASE_TTL_SECONDS)


def _take(claims, claim: str, mine: dict, where: str) -> None:
    """Put the lease, atomically; take over an expired one through a claim of its own; else DataDirBusy."""
    current: dict = {}
    for _ in range(3):
        if claims.put(claim, mine, skip_if_exists=True):
            return
        current = claims.get(claim) or {}
        if current:
            break  # held: fresh, or expired
    if not _expired(current):
        raise DataDirBusy(
            f"{where} is in use by {_describe(current)}. Wait for it to finish, or give this run a --data-dir "
            f"of another name (the volume keeps one data dir per name). A client that died leaves its lease "
            f"for {LEASE_TTL_SECONDS // 60} minutes after its last heartbeat. Nothing was changed."
        )
    # Only one client may replace this expired lease: whoever claims its takeover first.
    if not claims.put(f"{claim}:takeover:{current.get('token')}", mine["token"], skip_if_exists=True):
        raise DataDirBusy(f"{where} was just taken over by another client. Nothing was changed.")
    log.warning("taking over %s from %s, whose lease expired", where, _describe(current))
    claims.put(claim, mine)
