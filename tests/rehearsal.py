"""Reading what a rehearsal ran: its function calls, in the order they were made."""

from __future__ import annotations

import json
from pathlib import Path

from remote.rehearsal import CALLS_DIR


def rehearsal_calls(volume: Path) -> list[str]:
    """Function names of every call made on this rehearsal volume, oldest first."""
    inputs = sorted((Path(volume) / CALLS_DIR).glob("*/input.json"), key=lambda p: p.stat().st_mtime_ns)
    return [json.loads(p.read_text())["function"] for p in inputs]
