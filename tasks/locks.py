"""The data dir a run holds: the local lock, and on the modal profile the volume's lease too."""

from __future__ import annotations

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

        with lease.volume_lease(client.connect(data), what):
            yield


@task(name="modal-preflight", cache_policy=NO_CACHE)
def modal_preflight(data_dir: Path) -> None:
    """Credentials, secrets and a deployment of this checkout's code, in seconds, before any paid work."""
    from remote.client import check_modal_ready

    check_modal_ready(Path(data_dir))
