"""Serve every local deployment from this one process: no work pool or worker needed.

    uv run python -m deployments.serve

Then trigger runs from the UI or with `prefect deployment run 'build-dataset/served' --param ...`.
The nightly relabel runs on its schedule while this process is up. The deployments are named
`served` (and `nightly-served`), so they never take over the work-pool deployments of prefect.yaml.
"""

from __future__ import annotations

from prefect import serve
from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy

from flows.dataset import build_dataset
from flows.finetune import finetune
from flows.pipeline import pipeline
from flows.relabel import relabel
from motioncoach.runtime import apply_local_defaults

TAGS = ["motioncoach", "local"]
# As in prefect.yaml: one run of a deployment at a time, a second one waits in line (a run also holds its
# data dir's lock, so two deployments cannot write one data dir at once either).
ONE_AT_A_TIME = ConcurrencyLimitConfig(limit=1, collision_strategy=ConcurrencyLimitStrategy.ENQUEUE)


def main() -> None:
    apply_local_defaults()
    options = {"tags": TAGS, "concurrency_limit": ONE_AT_A_TIME}
    serve(
        pipeline.to_deployment(name="served", description="The whole pipeline on this machine.", **options),
        build_dataset.to_deployment(name="served", description="Find, filter, label, split.", **options),
        finetune.to_deployment(name="served", description="Train and place the adapter.", **options),
        relabel.to_deployment(
            name="nightly-served", description="Relabel what needs it, then rebuild.", cron="0 3 * * *", **options
        ),
    )


if __name__ == "__main__":
    main()
