"""One writer per data dir on the volume: a lease every client takes before it changes /data/<name>.

Every local data dir named `data`, on any machine or checkout of the workspace, is /data/data on the
volume; the local lock (motioncoach.lock) cannot see a run on another machine, so the lease lives on
the volume itself: who holds it (user, host, pid, run) and a heartbeat. A client that finds a fresh
lease of someone else's stops with the holder's name; a lease whose heartbeat is older than
LEASE_TTL_SECONDS belongs to a client that died, and is taken over.
"""

from __future__ import annotations

import getpass
import json
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

log = logging.getLogger(__name__)

LEASE_FILE = ".motioncoach-lease.json"
LEASE_TTL_SECONDS = 15 * 60
HEARTBEAT_SECONDS = 60.0
SETTLE_SECONDS = 1.0  # after writing a lease, read it back this much later: two clients racing, one wins

_held: dict[tuple[str, str], int] = {}  # (volume, data dir) -> depth: a pipeline's sub-flows take it again
_guard = threading.Lock()


def _read(remote: Remote, path: str) -> dict | None:
    try:
        return json.loads(remote.read(path))
    except (FileNotFoundError, ValueError):
        return None


def _describe(lease: dict) -> str:
    age = time.time() - lease.get("heartbeat", 0)
    return (
        f"{lease.get('run', 'a run')} ({lease.get('owner', '?')}, pid {lease.get('pid', '?')} on "
        f"{lease.get('host', '?')}, heartbeat {age:.0f} s ago)"
    )


@contextmanager
def volume_lease(remote: Remote, what: str) -> Iterator[None]:
    """Hold /data/<remote.name> on the volume for the duration, or raise DataDirBusy naming the holder."""
    key = (remote.settings.volume_name, remote.name)
    with _guard:
        if key in _held:
            _held[key] += 1
            reentered = True
        else:
            reentered = False
    if reentered:
        try:
            yield
        finally:
            with _guard:
                _held[key] -= 1
        return
    path = f"{remote.name}/{LEASE_FILE}"
    where = f"/data/{remote.name} on the Modal volume {remote.settings.volume_name!r}"
    current = _read(remote, path)
    if current and time.time() - current.get("heartbeat", 0) < LEASE_TTL_SECONDS:
        raise DataDirBusy(
            f"{where} is in use by {_describe(current)}. Wait for it to finish, or give this run a --data-dir "
            f"of another name (the volume keeps one data dir per name). A client that died leaves its lease "
            f"for {LEASE_TTL_SECONDS // 60} minutes after its last heartbeat. Nothing was changed."
        )
    if current:
        log.warning("taking over %s from %s, whose lease expired", where, _describe(current))
    token = uuid.uuid4().hex
    lease = {
        "owner": f"{getpass.getuser()}@{socket.gethostname()}",
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "run": what,
        "token": token,
        "heartbeat": time.time(),
    }
    remote.write(path, json.dumps(lease).encode())
    time.sleep(SETTLE_SECONDS)
    winner = _read(remote, path)
    if not winner or winner.get("token") != token:
        raise DataDirBusy(f"{where} was just taken by {_describe(winner or {})}. Nothing was changed.")
    with _guard:
        _held[key] = 1
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(HEARTBEAT_SECONDS):
            try:
                remote.write(path, json.dumps(lease | {"heartbeat": time.time()}).encode())
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
            if (_read(remote, path) or {}).get("token") == token:
                remote.remove(path)
        except Exception as exc:  # noqa: BLE001 - an unreleased lease expires on its own
            log.warning("could not release the lease on %s (%s); it expires in %d s", where, exc, LEASE_TTL_SECONDS)
