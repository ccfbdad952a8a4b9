"""The `motioncoach` command: each pipeline command runs one Prefect flow; the others use what a run made."""
