"""Write a coaching label for every kept pose."""

from __future__ import annotations

from pathlib import Path

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.states import Completed, State

from motioncoach.config import LabelConfig, Profile
from motioncoach.labels.outcomes import LabelReport, label_samples
from motioncoach.labels.policy import check_failure_rate
from motioncoach.labels.rules import RulesLabeler
from motioncoach.labels.store import write_label_log
from motioncoach.records import PoseSample
from motioncoach.teachers.engine import reached_ask_limit
from motioncoach.teachers.labeling import check_label_config, label_with_teachers, labels_complete
from motioncoach.teachers.pricing import is_priced
from motioncoach.teachers.store import STORE_FILE
from tasks import reporting
from tasks.secrets import ensure_teacher_keys
from tasks.storage import LABELS

SAMPLE_ROWS = 20
WAITING = "Waiting for labels"  # the state of a run whose labels arrive later (a Gemini batch job)


@task(name="preflight", cache_policy=NO_CACHE)
def preflight(config: LabelConfig, profile: Profile = Profile.local, data_dir: Path = Path("./data")) -> None:
    """Fail within seconds, naming what to set, when the labeler's key (or Modal's set-up) is missing."""
    check_label_config(config)
    if profile == Profile.modal:  # the keys live in Modal secrets, read by the deployed functions
        from remote.client import check_modal_ready

        check_modal_ready(Path(data_dir))
    else:
        ensure_teacher_keys(config.labeler)


@task(name="label-poses", cache_policy=LABELS)
def label_images(samples: list[PoseSample], config: LabelConfig, data_dir: Path) -> LabelReport:
    """Label each kept pose; labels are saved as they arrive and failures recorded with their reason."""
    progress = reporting.progress("labeling", f"Labeling with {config.labeler}")
    if config.labeler == "rules":
        report = label_samples(samples, RulesLabeler(), progress=progress)
    else:
        report = label_with_teachers(samples, config, Path(data_dir), progress=progress)
    progress.finish()
    log_path = write_label_log(report, Path(data_dir))
    counts = _counts(report)
    get_run_logger().info("labels: %s (%s)", counts, log_path)
    _publish(report, config, Path(data_dir))
    if config.labeler != "rules":  # the rules labeler's failures are images it cannot read, not flaky calls
        check_failure_rate(report, config.max_failure_rate, str(Path(data_dir) / STORE_FILE))
    return report


def labeling_task(config: LabelConfig, samples: list[PoseSample], data_dir: Path):
    """label_images as this run should call it. In batch mode never answered from the Prefect cache,
    since the answers arrive between runs (the label store is the cache, and a run that finds nothing
    new sends nothing). With a teacher, refreshed while the store lacks a label, so an unfinished run
    (a spent budget, failures to retry) is continued; an unchanged rerun of a finished one is Cached."""
    if config.labeler == "rules":
        return label_images
    if config.batch:
        return label_images.with_options(cache_policy=NO_CACHE)
    return label_images.with_options(refresh_cache=not labels_complete(samples, config, Path(data_dir)))


def waiting_for_labels(labels: LabelReport, config: LabelConfig) -> State | None:
    """The final state of a run that must stop before the dataset: nothing labeled yet, or batch answers
    still to come (training waits for them); None when the run goes on."""
    pending = labels.pending_message()
    if pending is None or (labels.labeled and not config.batch):
        return None
    if labels.labeled:
        message = f"{pending}. The dataset and split hold the {len(labels.labeled)} labeled images so far."
    else:
        message = f"{pending}. Nothing is labeled yet, so the dataset and split are left as they were."
    get_run_logger().info(message)
    return Completed(name=WAITING, message=message)


@task(name="label-poses-on-modal", cache_policy=NO_CACHE)
def label_images_on_modal(samples: list[PoseSample], config: LabelConfig, data_dir: Path) -> LabelReport:
    """Label on Modal; never cached here: the label store on the volume answers a rerun without teacher calls."""
    from remote import client as modal_client
    from remote import steps as modal_steps

    remote = modal_client.connect(data_dir)
    progress = reporting.progress("labeling", f"Labeling with {config.labeler} on Modal")
    report = modal_steps.label_poses(remote, samples, config, progress)
    progress.finish()
    log_path = write_label_log(report, Path(data_dir))  # a local copy of the volume's labels.jsonl
    counts = _counts(report)
    get_run_logger().info("labels: %s (%s; the store: %s/%s on the volume)", counts, log_path, remote.name, STORE_FILE)
    _publish(report, config, Path(data_dir))
    if config.labeler != "rules":
        check_failure_rate(report, config.max_failure_rate, f"{remote.name}/{STORE_FILE} on the Modal volume")
    return report


def _publish(report: LabelReport, config: LabelConfig, data_dir: Path) -> None:
    reporting.capped_table(
        "sample-labels",
        [
            {
                "image": o.sample.source_path.name,
                "activity": o.sample.activity,
                "status": o.label.status,
                "score": o.label.progress_score,
                "coaching": " | ".join(f"{p.severity}: {p.coaching_script}" for p in o.label.feedback_points),
            }
            for o in report.labeled[:SAMPLE_ROWS]
            if o.label
        ],
        f"The first {SAMPLE_ROWS} labels written by {config.labeler}",
    )
    problems = report.failed + report.having("disagreed")
    reporting.capped_table(
        "label-failures",
        [
            {
                "image": reporting.shown_path(o.sample.source_path, data_dir),
                "status": o.status,
                "reason": o.reason,
                "asked_enough": reached_ask_limit(o.reason),
            }
            for o in problems
        ],
        "Images without a usable label (failed, or teachers disagree), with the reason: for review. asked_enough: "
        "the image had its labeling.max_asks_per_image answers and costs nothing more until the prompt, the model "
        "or the limit changes",
        where="labels.jsonl in the data dir",
    )
    remaining = len(report.having("deferred"))
    reporting.capped_table(
        "labeling-cost",
        [_cost_row(usage, remaining, config) for usage in report.usage],
        "Teacher requests, tokens and spend this run, and the estimate for what remains"
        + (" (the rules labeler sends no requests)" if not report.usage else ""),
    )


def _cost_row(usage: dict, remaining: int, config: LabelConfig) -> dict:
    """One teacher's spend and the estimate for the images left; "unknown" for a paid model without a price."""
    if not usage.get("priced", is_priced(usage["model_id"], config.prices)):
        return {**usage, "cost_usd": "unknown", "remaining_images": remaining, "estimated_remaining_usd": "unknown"}
    per_image = usage["cost_usd"] / usage["requests"] if usage["requests"] else usage.get("estimate_usd") or 0.0
    return {**usage, "remaining_images": remaining, "estimated_remaining_usd": round(per_image * remaining, 4)}


def _counts(report: LabelReport) -> dict[str, int]:
    """Outcomes by status; abstentions (labels saying the photo cannot be coached) counted apart."""
    counts = {s: len(report.having(s)) for s in ("labeled", "failed", "deferred", "disagreed")}
    counts["abstained"] = sum(1 for o in report.labeled if o.label and o.label.abstained)
    return counts


ESTIMATED = "Estimated"  # the state of a run that priced its labeling and sent nothing (--estimate)


@task(name="estimate-labels", cache_policy=NO_CACHE)
def estimate_labels(samples: list[PoseSample], config: LabelConfig, data_dir: Path, profile: Profile) -> str:
    """What labeling these images would send and cost, from the store and the requests' real sizes; nothing is
    sent. The labeling-estimate artifacts, and the message for the run's final state (estimated())."""
    import tempfile

    from motioncoach.teachers.estimate import estimate_labeling, sample_input_tokens

    with tempfile.TemporaryDirectory(prefix="motioncoach-store-") as scratch:
        store_dir = Path(data_dir)
        if profile == Profile.modal and config.labeler != "rules":  # the store is on the volume: a read-only copy
            from remote import client as modal_client
            from remote import steps as modal_steps

            store_dir = Path(scratch)
            modal_steps.fetch_label_store(modal_client.connect(Path(data_dir)), store_dir / STORE_FILE)
        estimates = estimate_labeling(samples, config, store_dir) if config.labeler != "rules" else []
    lines = [e.line() for e in estimates] or [f"the {config.labeler} labeler sends no request and costs nothing"]
    reporting.capped_table(
        "labeling-estimate",
        [e.model_dump() for e in estimates],
        f"What labeling {len(samples)} images would send and cost (nothing was sent)",
    )
    asked = [
        {"teacher": e.teacher, "image": s.source_path.name, "sha256": s.sha256[:12], "activity": s.activity,
         "input_tokens": sample_input_tokens(e.model_id, s)}
        for e in estimates for s in e.asked
    ]  # fmt: skip
    reporting.capped_table("labeling-estimate-images", asked, "The images a run would ask a teacher about")
    message = f"{len(samples)} images kept by the pose filter. " + " ".join(lines) + " Nothing was sent."
    get_run_logger().info(message)
    return message


def estimated(message: str) -> State:
    """The final state of a run that priced its labeling and stopped."""
    return Completed(name=ESTIMATED, message=message)
