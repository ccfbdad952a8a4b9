"""People judge the teacher's labels: a sample to audit, the verdicts in audit.jsonl, and what they keep out.

Prefect- and Modal-free; the flows suspend for the verdicts (tasks/audit.py), `motioncoach audit` asks for
them in a terminal.
"""

from motioncoach.audit.review import (
    AuditSummary,
    apply_audit,
    check_pass_rate,
    summarize_audit,
    verdicts_from_entries,
)
from motioncoach.audit.sample import Candidate, audit_sample, candidates_in, candidates_of, pending
from motioncoach.audit.verdicts import AUDIT_FILE, AuditBook, Verdict, label_key, parse_verdict_lines, short_id

__all__ = [
    "AUDIT_FILE",
    "AuditBook",
    "AuditSummary",
    "Candidate",
    "Verdict",
    "apply_audit",
    "audit_sample",
    "candidates_in",
    "candidates_of",
    "check_pass_rate",
    "label_key",
    "parse_verdict_lines",
    "pending",
    "short_id",
    "summarize_audit",
    "verdicts_from_entries",
]
