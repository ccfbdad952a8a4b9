"""Artifacts and progress: what a person watching the Prefect UI sees of each stage."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from prefect import get_run_logger
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)

# Table artifacts keep this many rows and say how many were left out: a UI on another machine cannot
# open a file on this one, so nothing is published as a local path or a file:// link.
MAX_TABLE_ROWS = 500
NONE = "none"


def shown_path(path: Path | str, data_dir: Path) -> str:
    """How an artifact names a file: relative to the data dir (here, or /data/<name> on the Modal volume),
    else by its last two parts; never a folder of the machine the run happened on."""
    path = PurePosixPath(str(path))
    for root in (Path(data_dir).resolve(), PurePosixPath("/data") / Path(data_dir).name):
        if path.is_relative_to(str(root)):
            return path.relative_to(str(root)).as_posix()
    return PurePosixPath(*path.parts[-2:]).as_posix()


def shown_text(text: str, *folders: Path) -> str:
    """A message for an artifact: each of these folders of this machine named by its last part."""
    for folder in folders:
        for spelled in dict.fromkeys([str(Path(folder).resolve()), str(folder)]):
            if spelled not in (".", ""):
                text = text.replace(spelled, Path(folder).resolve().name)
    return text


def table(key: str, rows: Sequence[dict], description: str) -> None:
    create_table_artifact(key=key, table=list(rows), description=description)


def markdown(key: str, text: str, description: str) -> None:
    create_markdown_artifact(key=key, markdown=text, description=description)


def capped_table(key: str, rows: Sequence[dict], description: str, where: str = "", cap: int = MAX_TABLE_ROWS) -> None:
    """A table of at most `cap` rows, the last saying how many were left out (and where all of them are);
    a table saying "none" when there are no rows, so an earlier run's table never shows as this run's."""
    rows = list(rows)
    if not rows:
        table(key, [{"result": NONE}], f"{description}: none this run")
        return
    if len(rows) > cap:
        first = next(iter(rows[0]))
        left_out = f"... {len(rows) - cap} more rows left out" + (f"; all {len(rows)} are in {where}" if where else "")
        rows = rows[:cap] + [{first: left_out}]
    table(key, rows, description)


class Progress:
    """A progress artifact moved by calls of (done, total) and logged, at most every few seconds."""

    def __init__(self, key: str, what: str, every_seconds: float = 2.0):
        self.what = what
        self.every_seconds = every_seconds
        self._logger = get_run_logger()
        self._artifact = create_progress_artifact(progress=0.0, key=key, description=what)
        self._last = 0.0
        self._percent = 0.0

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if done < total and now - self._last < self.every_seconds:
            return
        self._last = now
        self._percent = 100.0 * done / total if total else 100.0
        update_progress_artifact(artifact_id=self._artifact, progress=self._percent)
        self._logger.info("%s: %d/%d (%.0f%%)", self.what, done, total, self._percent)

    def finish(self) -> None:
        """100%: the step is done, also when nothing was left for it to do."""
        if self._percent < 100.0:
            self._percent = 100.0
            update_progress_artifact(artifact_id=self._artifact, progress=100.0)


def progress(key: str, what: str, every_seconds: float = 2.0) -> Progress:
    return Progress(key, what, every_seconds)
