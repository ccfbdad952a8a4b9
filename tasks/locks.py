"""The data dir a run holds: the local lock, and on the modal profile the volume's lease too."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from motioncoach.config import Profile
from motioncoach.lock import data_dir_lock


@contextmanager
def hold_data_dir(data: Path, what: str, profile: Profile) -> Iterator[None]:
    """Hold data for the run: no other run on this machine, and on Modal no other client anywhere, changes it."""
    with data_dir_lock(data, what):
        if Profile(profile) is not Profile.modal:
            yield
            return
        from remote import client, lease

        with run_owner_set(), lease.volume_lease(client.connect(data), what):
            yield


def run_owner(flow_run_id) -> str:
    """The owner the paid calls of a flow run are recorded under (remote.paid), for its hooks to find."""
    return f"flow run {flow_run_id}"


@contextmanager
def run_owner_set() -> Iterator[None]:
    """The paid calls spawned from here on belong to the outermost flow run holding the data dir (its hooks
    cancel them, and no other run's)."""
    from prefect.runtime import flow_run

    from remote.client import OWNER_VARIABLE

    if os.environ.get(OWNER_VARIABLE) or not flow_run.id:
        yield
        return
    os.environ[OWNER_VARIABLE] = run_owner(flow_run.id)
    try:
        yield
    finally:
        os.environ.pop(OWNER_VARIABLE, None)


@task(name="modal-preflight", cache_policy=NO_CACHE)
def modal_preflight(data_dir: Path) -> None:
    """Credentials, secrets and a deployment of this checkout's code, in seconds, before any paid work."""
    from remote.client import check_modal_ready

    check_modal_ready(Path(data_dir))


def cancel_paid_calls(flow, flow_run, state) -> None:
    """Flow hook: a cancelled or crashed run stops the paid Modal calls it started (8xH200 bills), its own only."""
    import logging

    from motioncoach.runtime import resolve_dir
    from remote import calls, client

    parameters = flow_run.parameters or {}
    if parameters.get("profile") != Profile.modal:
        return
    data_dir = resolve_dir(parameters.get("data_dir", "./data"))
    cancelled = calls.cancel_recorded_calls(client.connect(data_dir), data_dir, run_owner(flow_run.id))
    for call_id in cancelled:
        logging.getLogger(__name__).warning("cancelled the Modal call %s (flow run %s)", call_id, state.name)
