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

from motioncoach.config import LabelConfig
from motioncoach.labels.schema import SCHEMA_VERSION
from motioncoach.prompts import prompt_version
from motioncoach.teachers.keys import LABELER_TEACHERS
from motioncoach.teachers.store import STORE_FILE, LabelStore, today

P = ParamSpec("P")
R = TypeVar("R")

RESULTS_DIR = ".prefect-results"


def results_dir(data_dir: Path) -> Path:
    return Path(data_dir) / RESULTS_DIR


def persist_in(data_dir: Path, task: Task[P, R]) -> Task[P, R]:
    """The task with its results and cache records kept in data_dir."""
    return task.with_options(result_storage=results_dir(data_dir), persist_result=True)


def _label_contract(context: TaskRunContext, parameters: dict[str, Any]) -> str:
    """The prompt templates, the label schema, and what the label store already holds.

    The store's state is part of the key so that a run left unfinished (a spent budget, a failed
    rerun) is continued rather than answered from the cache. A Batch API run is not cached at all:
    the flow picks NO_CACHE at the call site (tasks.labels.labeling_task), since a compound policy
    ignores a part that returns None.
    """
    config: LabelConfig = parameters["config"]
    teachers = LABELER_TEACHERS[config.labeler]
    key = {"prompt": prompt_version(), "schema": SCHEMA_VERSION}
    if teachers:
        store_path = Path(parameters["data_dir"]) / STORE_FILE
        if store_path.exists():
            store = LabelStore(store_path)
            try:
                key["store"] = store.digest([s.sha256 for s in parameters["samples"]], teachers)
            finally:
                store.close()
        if config.daily_budget:
            key["day"] = today()  # a new day brings a new budget
    return hash_objects(key)


# Keyed on the task's inputs (content hashes and configs, never run ids) and its source.
CONTENT = INPUTS + TASK_SOURCE
LABELS = CONTENT + CacheKeyFnPolicy(cache_key_fn=_label_contract)
