"""Reading the artifacts a test's flow runs published, as a browser on another machine would get them."""

from __future__ import annotations

import json
from pathlib import Path


def run_artifacts(flow_run_ids) -> list[dict]:
    """Every artifact (keyed or not, progress included) the given flow runs and their sub-flow runs published."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        FlowRunFilter,
        FlowRunFilterParentFlowRunId,
    )

    ids = [str(i) for i in flow_run_ids]
    with get_client(sync_client=True) as client:
        children = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=ids))
        )
        ids += [str(child.id) for child in children]
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=ids)))
    # Artifacts without a type are Prefect's own records of where task results are stored (for retries),
    # not something a run publishes for people to read.
    return [
        {"key": a.key, "type": a.type, "description": a.description or "", "data": json.dumps(a.data, default=str)}
        for a in artifacts
        if a.type is not None
    ]


def local_references(artifacts: list[dict], *roots: Path) -> list[str]:
    """'key: what' for each artifact that names a folder of this machine or links a local file."""
    needles = dict.fromkeys(["file://", *(str(Path(root).resolve()) for root in roots), *map(str, roots)])
    found = []
    for artifact in artifacts:
        text = artifact["description"] + artifact["data"]
        found += [f"{artifact['key'] or artifact['type']}: {needle}" for needle in needles if needle in text]
    return found
