"""Where task results live and what they are keyed on.

Results are kept inside the data dir they describe, so deleting a data dir also forgets its
cache, and a retried flow run that reads the same data dir finds every finished task's result.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from prefect import Task
from prefect.cache_policies import INPUTS, TASK_SOURCE, CacheKeyFnPolicy
from prefect.context import TaskRunContext
from prefect.utilities.hashing import hash_objects

from motioncoach.dataset.prompt import prompt_version
from motioncoach.labels.schema import SCHEMA_VERSION

P = ParamSpec("P")
R = TypeVar("R")

RESULTS_DIR = ".prefect-results"


def results_dir(data_dir: Path) -> Path:
    return Path(data_dir) / RESULTS_DIR


def persist_in(data_dir: Path, task: Task[P, R]) -> Task[P, R]:
    """The task with its results and cache records kept in data_dir."""
    return task.with_options(result_storage=results_dir(data_dir), persist_result=True)


def _label_contract(context: TaskRunContext, parameters: dict[str, Any]) -> str | None:
    # The prompt file and the label schema change what a teacher answers without changing the
    # task's inputs or source.
    return hash_objects({"prompt": prompt_version(), "schema": SCHEMA_VERSION})


# Keyed on the task's inputs (content hashes and configs, never run ids) and its source.
CONTENT = INPUTS + TASK_SOURCE
LABELS = CONTENT + CacheKeyFnPolicy(cache_key_fn=_label_contract)
