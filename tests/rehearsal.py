"""Reading what a rehearsal ran: its function calls, in the order they were made."""

from __future__ import annotations

from pathlib import Path

from remote.rehearsal.calls import calls_made


def rehearsal_calls(volume: Path) -> list[str]:
    """Function names of every call made on this rehearsal volume, oldest first."""
    return [function for function, _ in calls_made(volume)]
