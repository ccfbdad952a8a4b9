"""Verdicts applied to a labeling run: rejected labels kept out of training and validation, and the
audit's pass rate, which the release reports and the modal profile's training waits on."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, Field

from motioncoach.audit.sample import Candidate
from motioncoach.audit.verdicts import SHORT_ID_LENGTH, AuditBook, Verdict, now
from motioncoach.errors import ConfigurationError
from motioncoach.labels.outcomes import LabelReport


class AuditSummary(BaseModel):
    """What people found of the current labels."""

    audited: int = Field(0, description="Current labels with a verdict.")
    approved: int = 0
    rejected: int = Field(0, description="Teacher errors the audit caught: labels kept out of the dataset.")
    dropped: int = Field(0, description="Of the rejected: images dropped from the dataset.")
    to_relabel: int = Field(0, description="Of the rejected: images the nightly relabel asks again.")
    reviewers: list[str] = Field(default_factory=list)

    @property
    def pass_rate(self) -> float | None:
        return round(self.approved / self.audited, 4) if self.audited else None

    def describe(self) -> str:
        if not self.audited:
            return "no label has been audited"
        return (
            f"people approved {self.approved} of {self.audited} audited labels (pass rate {self.pass_rate:.2f}); "
            f"{self.rejected} rejected: {self.dropped} dropped, {self.to_relabel} to relabel"
        )


def apply_audit(report: LabelReport, book: AuditBook) -> LabelReport:
    """The run's outcomes with every label people rejected marked `rejected` (so no row is written for it)."""
    outcomes = []
    for outcome in report.outcomes:
        verdict = book.keeps_out(outcome.sample.sha256, outcome.label) if outcome.label is not None else None
        if outcome.status == "labeled" and verdict is not None:
            then = "dropped from the dataset" if verdict.then == "drop" else "to be relabeled"
            reason = f"rejected by {verdict.who} ({then}): {verdict.reason}"
            outcome = outcome.model_copy(update={"status": "rejected", "reason": reason})
        outcomes.append(outcome)
    return LabelReport(outcomes=outcomes, usage=report.usage)


def summarize_audit(candidates: Sequence[Candidate], book: AuditBook) -> AuditSummary:
    """Verdicts on the current labels (labeled or rejected), the latest per label."""
    summary = AuditSummary()
    reviewers: set[str] = set()
    for candidate in candidates:
        verdict = book.of_label(candidate.sha256, candidate.label)
        if verdict is None:
            continue
        summary.audited += 1
        reviewers.add(verdict.who)
        if verdict.verdict == "approve":
            summary.approved += 1
        else:
            summary.rejected += 1
            summary.dropped += verdict.then == "drop"
            summary.to_relabel += verdict.then != "drop"
    summary.reviewers = sorted(reviewers)
    return summary


def check_pass_rate(summary: AuditSummary, minimum: float) -> None:
    """Stop before training when people rejected too many of the teacher's labels."""
    rate = summary.pass_rate
    if rate is not None and rate < minimum:
        raise ConfigurationError(
            f"People rejected {summary.rejected} of {summary.audited} audited labels (pass rate {rate:.2f}, below "
            f"release.min_audit_pass_rate {minimum:.2f}), so training did not start: try another teacher model "
            "(--gemini-model, --openrouter-model), consensus of two teachers (--labeler consensus), or a better "
            "prompt (motioncoach/prompts/), then relabel and audit again."
        )


def verdicts_from_entries(entries: Sequence[dict], candidates: Sequence[Candidate], who: str) -> list[Verdict]:
    """Verdicts for the current labels the entries name, by sha256 or short id; every problem is named at once
    and nothing is recorded unless all entries are good."""
    by_id: dict[str, Candidate] = {}
    for candidate in candidates:
        by_id[candidate.sha256] = by_id[candidate.short_id] = candidate
    problems, verdicts = [], []
    for entry in entries:
        where = f"line {entry['line']}" if "line" in entry else f"id {entry.get('id')!r}"
        image_id = str(entry.get("id") or "").strip().lower()
        candidate = by_id.get(image_id)
        decision = entry.get("verdict")
        then = entry.get("then") or None
        reason = str(entry.get("reason") or "").strip()
        if candidate is None:
            problems.append(
                f"{where}: {image_id or '(no id)'} is not the sha256 or the {SHORT_ID_LENGTH}-digit short id of a "
                "labeled image of this data dir"
            )
        elif decision not in ("approve", "reject"):
            problems.append(f"{where}: verdict must be 'approve' or 'reject', not {decision!r}")
        elif decision == "reject" and not reason:
            problems.append(f"{where}: a rejection needs a reason (what is wrong with the label)")
        elif then not in (None, "relabel", "drop") or (then and decision == "approve"):
            problems.append(f"{where}: then must be 'relabel' or 'drop', and only for a rejection")
        else:
            verdicts.append(
                Verdict(
                    image=candidate.sha256,
                    short_id=candidate.short_id,
                    label_key=candidate.label_key,
                    activity=candidate.activity,
                    labeler=candidate.labeler,
                    model_id=candidate.model_id,
                    verdict=decision,
                    reason=reason,
                    then=(then or "relabel") if decision == "reject" else None,
                    who=str(entry.get("who") or who),
                    when=now(),
                )
            )
    if problems:
        raise ConfigurationError("No verdict was recorded: " + "; ".join(problems))
    return verdicts
