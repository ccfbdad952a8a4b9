"""Artifacts and progress: what a person watching the Prefect UI sees of each stage."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

from prefect import get_run_logger
from prefect.artifacts import (
    create_link_artifact,
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)

# Table artifacts past this many rows become a link to the file they came from.
MAX_TABLE_ROWS = 500


def table(key: str, rows: Sequence[dict], description: str) -> None:
    create_table_artifact(key=key, table=list(rows), description=description)


def markdown(key: str, text: str, description: str) -> None:
    create_markdown_artifact(key=key, markdown=text, description=description)


def link(key: str, path: Path, description: str) -> None:
    create_link_artifact(key=key, link=Path(path).resolve().as_uri(), link_text=str(path), description=description)


def table_or_link(key: str, rows: Sequence[dict], source: Path, description: str) -> None:
    """A table when it is small enough to read in the UI, else a link to the file."""
    if len(rows) <= MAX_TABLE_ROWS:
        table(key, rows, description)
    else:
        link(key, source, f"{description} ({len(rows)} rows: too many for a table)")


def progress(key: str, what: str, every_seconds: float = 2.0) -> Callable[[int, int], None]:
    """A callback(done, total) that moves a progress artifact and logs, at most every few seconds."""
    logger = get_run_logger()
    artifact_id = create_progress_artifact(progress=0.0, key=key, description=what)
    last = 0.0

    def report(done: int, total: int) -> None:
        nonlocal last
        now = time.monotonic()
        if done < total and now - last < every_seconds:
            return
        last = now
        percent = 100.0 * done / total if total else 100.0
        update_progress_artifact(artifact_id=artifact_id, progress=percent)
        logger.info("%s: %d/%d (%.0f%%)", what, done, total, percent)

    return report
