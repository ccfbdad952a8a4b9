"""Serve every local deployment from this one process: no work pool or worker needed.

    uv run python -m deployments.serve

Then trigger runs from the UI or with `prefect deployment run 'build-dataset/served' --param ...`.
The nightly relabel runs on its schedule while this process is up. The deployments are named
`served` (and `nightly-served`), so they never take over the work-pool deployments of prefect.yaml.
"""

from __future__ import annotations

from prefect import serve

from flows.dataset import build_dataset
from flows.finetune import finetune
from flows.pipeline import pipeline
from flows.relabel import relabel
from motioncoach.runtime import apply_local_defaults

TAGS = ["motioncoach", "local"]


def main() -> None:
    apply_local_defaults()
    serve(
        pipeline.to_deployment(name="served", description="The whole pipeline on this machine.", tags=TAGS),
        build_dataset.to_deployment(name="served", description="Find, filter, label, split.", tags=TAGS),
        finetune.to_deployment(name="served", description="Train and place the adapter.", tags=TAGS),
        relabel.to_deployment(
            name="nightly-served", description="Relabel what needs it, then rebuild.", tags=TAGS, cron="0 3 * * *"
        ),
    )


if __name__ == "__main__":
    main()
