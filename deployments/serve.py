"""Serve every local deployment from this process: no work pool or worker needed.

    uv run python -m deployments.serve

Then trigger runs from the UI or with `prefect deployment run 'build-dataset/local' --param ...`.
"""

from __future__ import annotations

from prefect import serve

from flows.dataset import build_dataset
from flows.finetune import finetune
from flows.pipeline import pipeline
from motioncoach.runtime import apply_local_defaults


def main() -> None:
    apply_local_defaults()
    serve(
        pipeline.to_deployment(name="local", description="The whole pipeline on this machine.", tags=["motioncoach"]),
        build_dataset.to_deployment(name="local", description="Find, filter, label, split.", tags=["motioncoach"]),
        finetune.to_deployment(name="local", description="Train and place the adapter.", tags=["motioncoach"]),
    )


if __name__ == "__main__":
    main()
