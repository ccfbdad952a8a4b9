"""People judge the teacher in a flow run: the sample shown, the run waiting for their verdicts, the verdicts kept.

A deployment run suspends (no worker, container or GPU waits) and is resumed with the reviewer's input
from the Prefect UI's form or `resume_flow_run(id, run_input={...})`; it then runs again from the start,
its finished tasks Cached, and takes the stored verdicts. A run started here (no deployment) pauses
instead, the process waiting, when a Prefect server is there to answer on; with no server to reach (the
temporary one of a plain CLI run) it ends `Awaiting audit`, naming `motioncoach audit`.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Literal

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.context import FlowRunContext
from prefect.input import RunInput
from prefect.states import Completed, State
from pydantic import BaseModel, Field, create_model

from motioncoach.audit import AuditBook, AuditSummary, Candidate, candidates_in, pending, summarize_audit
from motioncoach.audit.review import verdicts_from_entries
from motioncoach.audit.sheet import audit_markdown, label_text, show
from motioncoach.config import Profile
from motioncoach.labels.outcomes import LabelReport
from tasks import reporting

AWAITING = "Awaiting audit"
AUDIT_TIMEOUT_S = 14 * 24 * 3600  # a reviewer has two weeks; then the run fails and a rerun asks again
POLL_S = 5
NO_REASON = "(no reason given)"


class LabelVerdict(BaseModel):
    """One label's verdict in the run's input form."""

    verdict: Literal["approve", "reject"] = Field(description="approve: a coach would sign it; reject: it is wrong.")
    reason: str = Field("", description="What is wrong with it (for a rejection).")
    then: Literal["relabel", "drop"] = Field(
        "relabel", description="For a rejection: the nightly relabel asks again (relabel), or the image leaves the "
        "dataset (drop)."
    )  # fmt: skip


def verdict_form(todo: list[Candidate]) -> type[RunInput]:
    """The input form: one verdict per label, by short id (rebuilt alike when the resumed run asks again)."""
    fields: dict = {
        c.short_id: (LabelVerdict, Field(title=f"{c.short_id} · {c.activity}", description=" / ".join(label_text(c))))
        for c in sorted(todo, key=lambda c: c.short_id)
    }
    fields["reviewer"] = (str, Field("", description="Who judged (kept with each verdict)."))
    form = create_model("LabelAudit", __base__=RunInput, **fields)
    return form.with_initial_data(description=f"Judge the {len(todo)} labels of the label-audit artifact.")


@task(name="audit-sample", cache_policy=NO_CACHE)
def prepare_audit(size: int, data_dir: Path, profile: Profile = Profile.local) -> list[Candidate]:
    """The audit sample's labels nobody judged yet, drawn into <data-dir>/audit/; the label-audit artifact."""
    data = Path(data_dir)
    book = _book(data, profile)
    todo = pending(candidates_in(data), size, book)
    if todo and profile == Profile.modal:
        _fetch_photos(todo, data)
    shown, unshown = show(todo, data)
    if not todo:
        reporting.markdown("label-audit", "none: every label of the sample has a verdict", "Labels for people to judge")
        return []
    how = (
        f"Answer in this run's input form (**Resume**), with `resume_flow_run(id, run_input={{...}})`, or in a "
        f"terminal: `motioncoach audit --data-dir {data.name}`."
    )
    text = audit_markdown(shown, how) + "".join(
        f"\n### `{c.short_id}` {c.activity}\n\n(photo not on this machine)\n\n" + "\n".join(label_text(c))
        for c in unshown
    )
    reporting.markdown("label-audit", text, f"{len(todo)} labels for people to judge before training")
    get_run_logger().info("%d labels of the audit sample wait for a verdict (the label-audit artifact)", len(todo))
    return todo


def wait_for_verdicts(todo: list[Candidate], data_dir: Path) -> list[dict] | State:
    """The reviewer's verdicts on todo: the run suspends or pauses for them; or the final state of a run that
    cannot wait (no Prefect server to answer on)."""
    from prefect.flow_runs import pause_flow_run, suspend_flow_run
    from prefect.settings import get_current_settings

    form = verdict_form(todo)
    key = "audit-" + hashlib.sha256(",".join(sorted(c.label_key for c in todo)).encode()).hexdigest()[:12]
    context = FlowRunContext.get()
    run = context.flow_run if context else None
    if run is not None and run.deployment_id and not run.parent_task_run_id:
        answer = suspend_flow_run(wait_for_input=form, key=key, timeout=AUDIT_TIMEOUT_S)
    elif get_current_settings().api.url:
        answer = pause_flow_run(wait_for_input=form, key=key, timeout=AUDIT_TIMEOUT_S, poll_interval=POLL_S)
    else:
        message = (
            f"{len(todo)} labels wait for people's verdicts before training: run `motioncoach audit --data-dir "
            f"{data_dir}`, then this command again (or run with PREFECT_API_URL set and answer in the UI)."
        )
        get_run_logger().warning(message)
        return Completed(name=AWAITING, message=message)
    reviewer = answer.reviewer.strip() or "prefect-ui"
    entries = []
    for candidate in todo:
        given: LabelVerdict = getattr(answer, candidate.short_id)
        reason = given.reason.strip() or (NO_REASON if given.verdict == "reject" else "")
        then = given.then if given.verdict == "reject" else None
        entries.append({"id": candidate.sha256, "verdict": given.verdict, "reason": reason, "then": then,
                        "who": reviewer})  # fmt: skip
    return entries


@task(name="record-verdicts", cache_policy=NO_CACHE)
def record_verdicts(entries: list[dict], data_dir: Path, profile: Profile = Profile.local) -> AuditSummary:
    """Keep the verdicts in audit.jsonl (and on the volume); the audit-summary artifact."""
    data = Path(data_dir)
    book = _book(data, profile)
    candidates = candidates_in(data)
    book.record(data, verdicts_from_entries(entries, candidates, "prefect-ui"))
    if profile == Profile.modal:
        _upload_book(data)
    summary = summarize_audit(candidates, book)
    publish_summary(summary)
    get_run_logger().info("audit: %s", summary.describe())
    return summary


def publish_summary(summary: AuditSummary) -> None:
    rate = "n/a" if summary.pass_rate is None else f"{summary.pass_rate:.2f}"
    reporting.markdown(
        "audit-summary",
        f"**Pass rate {rate}**: {summary.describe()}.\n\nReviewers: {', '.join(summary.reviewers) or 'none'}\n",
        "What people found of the teacher's labels",
    )


def audit_labels(size: int, data_dir: Path, profile: Profile) -> State | bool:
    """The audit step of a flow: True when new verdicts were recorded (the dataset is to be written again),
    False when there was nothing to judge, or the final state of a run that stops here to wait."""
    todo = prepare_audit(size, data_dir, profile)
    if not todo:
        return False
    entries = wait_for_verdicts(todo, data_dir)
    if isinstance(entries, State):
        return entries
    record_verdicts(entries, data_dir, profile)
    return True


@task(name="apply-verdicts", cache_policy=NO_CACHE)
def apply_verdicts(labels: LabelReport, data_dir: Path, profile: Profile = Profile.local) -> LabelReport:
    """The labels without those people rejected (labels.jsonl says so); never cached, verdicts come between runs."""
    from motioncoach.audit import apply_audit
    from motioncoach.labels.store import write_label_log

    book = _book(Path(data_dir), profile)
    audited = apply_audit(labels, book)
    rejected = len(audited.having("rejected"))
    if book.verdicts:
        write_label_log(audited, Path(data_dir))
        get_run_logger().info("audit: %d labels people rejected are kept out of the dataset", rejected)
    return audited


def _book(data: Path, profile: Profile) -> AuditBook:
    """The data dir's verdicts; on Modal those on the volume come first (another machine may have judged)."""
    if profile == Profile.modal:
        from remote import client as modal_client
        from remote import steps as modal_steps

        modal_steps.fetch_audit_book(modal_client.connect(data), data)
    return AuditBook.read(data)


def _upload_book(data: Path) -> None:
    from remote import client as modal_client
    from remote import steps as modal_steps

    modal_steps.put_audit_book(modal_client.connect(data), data)


def _fetch_photos(todo: list[Candidate], data: Path) -> None:
    from remote import client as modal_client
    from remote import steps as modal_steps

    modal_steps.fetch_dataset_photos(modal_client.connect(data), [c.sha256 for c in todo], data)


@task(name="audit-pass-rate", cache_policy=NO_CACHE)
def check_audit(minimum: float, data_dir: Path, profile: Profile = Profile.local) -> AuditSummary:
    """What people found of the labels; on Modal, training stops here when they rejected too many."""
    from motioncoach.audit import check_pass_rate

    data = Path(data_dir)
    summary = summarize_audit(candidates_in(data), _book(data, profile))
    publish_summary(summary)
    if profile == Profile.modal:
        check_pass_rate(summary, minimum)  # before any GPU is paid for
    elif summary.pass_rate is not None and summary.pass_rate < minimum:
        get_run_logger().warning(
            "people approved %.2f of the audited labels, below release.min_audit_pass_rate %.2f: a modal run would "
            "stop here", summary.pass_rate, minimum,
        )  # fmt: skip
    return summary
