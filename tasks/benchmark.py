"""A human-labelled benchmark after the evaluation: base, student and teacher on what people said."""

from __future__ import annotations

from pathlib import Path

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from motioncoach.benchmarks.metrics import BenchmarkReport
from motioncoach.benchmarks.suite import Suite
from motioncoach.config import LabelingSettings, Profile
from motioncoach.training.session import TrainedAdapter
from tasks import reporting
from tasks.storage import keyed


@task(name="find-benchmark", cache_policy=NO_CACHE)
def find_suite(suite: str, data_dir: Path) -> Suite:
    """The suite --benchmark names (built once into the data dir when it comes from the Hub or verdict folders)."""
    from motioncoach.benchmarks.resolve import resolve_suite

    found = resolve_suite(suite, Path(data_dir))
    get_run_logger().info("benchmark %s: %s", found.name, found.counts())
    return found


@task(name="benchmark", cache_policy=keyed("benchmark"))
def benchmark_release(
    trained: TrainedAdapter,
    suite: Suite,
    teacher: str,
    profile: Profile,
    data_dir: Path,
    merged: str | None = None,
    labeling: LabelingSettings | None = None,
) -> BenchmarkReport:
    """Base, student (as the release is served) and teacher scored on the suite; the benchmark artifact."""
    from motioncoach.benchmarks.run import ANSWERS_FILE, BenchmarkSettings
    from motioncoach.config import with_labeler

    labeler = teacher if teacher in ("gemini", "openrouter") else "rules"
    config = with_labeler(labeling, labeler)
    settings = BenchmarkSettings(max_pixels=trained.config.max_pixels)
    if profile == Profile.modal:
        from remote import client as modal_client
        from remote import steps as modal_steps

        remote = modal_client.connect(Path(data_dir))
        report = modal_steps.benchmark(remote, trained, suite, teacher, config, settings, merged)
    else:
        from motioncoach.benchmarks.release import answer_models, answer_teacher, join_halves

        local = settings.model_copy(update={"max_new_tokens": 32, "batch_size": 4})  # the tiny random model on CPU
        models = answer_models({
            "suite_dir": str(suite.root), "base_model": trained.config.base_model,
            "adapter_dir": str(trained.checkpoint), "engine": "transformers", "settings": local.model_dump(),
        })  # fmt: skip
        halves = None
        if teacher != "none":
            request = {"suite_dir": str(suite.root), "teacher": teacher, "labeling": config.model_dump(mode="json")}
            halves = answer_teacher(request, models["poses"], Path(data_dir) / ANSWERS_FILE)
        report = join_halves(suite.root, models, halves, teacher)
    terms = report.license or "no license recorded"
    reporting.table(
        "benchmark", report.table(), f"{report.suite}: base, student and teacher on {report.items} human-labelled "
        f"items ({terms})",
    )  # fmt: skip
    for row in report.table():
        get_run_logger().info("benchmark %s", row)
    return report
