"""Measure the adapter before it ships: evaluation on the validation split, then the release gate."""

from __future__ import annotations

from pathlib import Path

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from motioncoach.benchmarks.metrics import BenchmarkReport
from motioncoach.config import Profile
from motioncoach.dataset import SPLITS_DIR, SplitSummary
from motioncoach.evaluation import EvalConfig, EvalReport, GateConfig, GateDecision, decide, local_eval_config
from motioncoach.evaluation import evaluate_adapter as run_local_evaluation
from motioncoach.training.session import TrainedAdapter
from tasks import reporting
from tasks.storage import keyed


def eval_config_for(profile: Profile, trained: TrainedAdapter) -> EvalConfig:
    """Short answers for the tiny random model on CPU; full labels on Modal. Images as in training."""
    if profile == Profile.local:
        return local_eval_config(trained.config)
    # vLLM batches what is in flight: every validation row at once, answers kept after each chunk.
    return EvalConfig(max_pixels=trained.config.max_pixels, batch_size=64)


@task(name="evaluate-adapter", cache_policy=keyed("evaluation"))
def evaluate_adapter(
    trained: TrainedAdapter,
    splits: SplitSummary,
    profile: Profile,
    data_dir: Path,
    config: EvalConfig | None = None,
    merged: str | None = None,
) -> EvalReport:
    """Answer the validation prompts with the base model, the fine-tuned model as it will be served (on Modal
    the merged release in vLLM) and the rules; score against the teacher."""
    logger = get_run_logger()
    config = config or eval_config_for(profile, trained)
    progress = reporting.progress("evaluation", "Evaluation answers")
    if profile == Profile.local:
        report = run_local_evaluation(
            trained.config.base_model, trained.checkpoint, splits.val.path, Path(data_dir), config, progress=progress
        )
    else:
        report = _evaluate_on_modal(trained, splits, Path(data_dir), config, merged)
    logger.info("the fine-tuned model answered as %s", report.served_as)
    progress.finish()
    for reason in report.skipped:
        logger.warning("validation %s: not evaluated", reason)
    reporting.table(
        "evaluation",
        report.table(),
        f"Base model, adapter and rules on {len(report.rows)} validation rows, scored against the teacher",
    )
    for metrics in report.models:
        logger.info("eval %s", metrics.model_dump())
    return report


@task(name="agreement-with-people", cache_policy=NO_CACHE)
def score_with_people(report: EvalReport, data_dir: Path, profile: Profile = Profile.local) -> EvalReport:
    """The evaluation's scores again on the validation rows whose label people approved; never cached, since
    verdicts come between runs."""
    from motioncoach.audit import AuditBook, candidates_in, summarize_audit
    from motioncoach.evaluation.people import with_people

    if profile == Profile.modal:
        from remote import client as modal_client
        from remote import steps as modal_steps

        modal_steps.fetch_audit_book(modal_client.connect(Path(data_dir)), Path(data_dir))
    book = AuditBook.read(Path(data_dir))
    scored = with_people(report, book, summarize_audit(candidates_in(Path(data_dir)), book))
    audit = scored.audit or {}
    if scored.people:
        reporting.table(
            "evaluation-people",
            [m.model_dump() for m in scored.people],
            f"Agreement with people: each model on the {audit['verified_val_rows']} validation rows whose label "
            f"people approved ({audit['teacher_errors_caught']} teacher errors the audit caught are not in the split)",
        )
    else:
        reporting.table("evaluation-people", [{"result": "none"}], "Agreement with people: no validation row has an "
                        "approved label (audit some with --audit, or `motioncoach audit`)")  # fmt: skip
    return scored


@task(name="release-gate", cache_policy=NO_CACHE)
def release_gate(
    report: EvalReport, config: GateConfig, benchmark: BenchmarkReport | None = None, required: bool = False
) -> GateDecision:
    """Does the adapter beat the base model on the gate's metrics (and, when required, do no worse on the
    benchmark)? Says why either way."""
    from motioncoach.benchmarks.gate import benchmark_comparisons

    extra = benchmark_comparisons(benchmark) if (required and benchmark is not None) else None
    decision = decide(report, config, extra)
    (get_run_logger().info if decision.passed else get_run_logger().warning)("release gate: %s", decision.reason)
    rows = "\n".join(
        f"| {c['metric']} | {c['base']:.3f} | {c['adapter']:.3f} | {c['interval'][0]:+.3f} to {c['interval'][1]:+.3f} "
        f"| {'yes' if c['won'] else 'no'} |"
        for c in decision.comparisons
    )
    verdict = "passed" if decision.passed else "not passed: the adapter will not be uploaded"
    reporting.markdown(
        "release-gate",
        f"**{verdict}** ({'on' if decision.enabled else 'off'})\n\n{decision.reason}\n\n"
        f"| metric | base | adapter | 95% interval of the difference ({decision.rows} rows) | adapter wins |\n"
        f"|---|---|---|---|---|\n{rows}\n",
        "The release gate: the adapter must beat the base model to be uploaded",
    )
    return decision


def _evaluate_on_modal(
    trained: TrainedAdapter, splits: SplitSummary, data_dir: Path, config: EvalConfig, merged: str | None
) -> EvalReport:
    """The same evaluation in the deployed app's `evaluate_adapter` GPU function, on the volume's data dir:
    the merged release and the base model each served by vLLM (a rehearsal, without a GPU, asks the same
    weights in transformers)."""
    from remote import client as modal_client
    from remote import steps as modal_steps

    remote = modal_client.connect(data_dir)
    request = {
        "base_model": trained.config.base_model,  # the volume's copy, as the functions see it
        "adapter_dir": str(trained.checkpoint),
        "merged_dir": merged,
        "engine": "transformers" if remote.rehearsal else "vllm",
        "val_path": f"{SPLITS_DIR}/{splits.val.path.name}",  # inside the data dir
        "config": config.model_dump(mode="json"),
        "out_dir": f"{trained.run_dir}/eval",
    }
    return EvalReport.model_validate(modal_steps.evaluate(remote, request))
