"""Agreement with people: the evaluation's scores again, on the validation rows whose label people approved.

The validation split never holds a label people rejected (apply_audit keeps them out of the dataset), so
every row is the teacher's label; those an audit approved are a human-verified subset, on which
agreeing with the label is agreeing with people.
"""

from __future__ import annotations

from motioncoach.audit import AuditBook, AuditSummary
from motioncoach.evaluation.report import EvalReport
from motioncoach.evaluation.score import summarize
from motioncoach.labels.schema import read_label


def with_people(report: EvalReport, book: AuditBook, summary: AuditSummary) -> EvalReport:
    """The report with each model's metrics on the human-verified subset and the audit's counts."""
    verified = []
    for row in report.rows:
        verdict = book.of_label(row.sample.sha256, read_label(row.teacher))
        if verdict is not None and verdict.verdict == "approve":
            verified.append(row)
    names = [m.model for m in report.models]
    people = [summarize(name, [row.scores[name] for row in verified]) for name in names] if verified else []
    audit = summary.model_dump() | {"pass_rate": summary.pass_rate, "verified_val_rows": len(verified),
                                    "teacher_errors_caught": summary.rejected}  # fmt: skip
    return report.model_copy(update={"people": people, "audit": audit})
