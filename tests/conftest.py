"""Shared fixtures: a temporary Prefect server for the whole session, offline settings."""

from __future__ import annotations

import os

import pytest

from motioncoach.runtime import apply_local_defaults

# The fake Hub speaks Git LFS, as the real Hub still does; huggingface_hub reads this at import.
os.environ["HF_HUB_DISABLE_XET"] = "1"

apply_local_defaults()


@pytest.fixture(scope="session")
def prefect_server():
    """A temporary Prefect server with SQLite, shared by every test that runs flows."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield


@pytest.fixture
def task_states(prefect_server):
    """task name -> state name of every task run in a flow run and its subflow runs."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, FlowRunFilterParentFlowRunId

    def states(flow_run_id) -> dict[str, str]:
        with get_client(sync_client=True) as client:
            ids = [flow_run_id]
            children = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[flow_run_id]))
            )
            ids += [child.id for child in children]
            runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=ids)))
            return {run.name.rsplit("-", 1)[0]: run.state.name for run in runs}

    return states
