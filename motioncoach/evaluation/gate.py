"""The release gate: does the adapter beat the base model it was trained from, beyond doubt?

Each gate metric is a share of validation rows, so the per-row difference (adapter minus base) has
a mean and, by a paired bootstrap over the rows, a 95% interval. The adapter passes a metric when it
leads by more than min_margin, or when both are at the ceiling (a tie at 1.0 is not a loss). Fewer
than min_rows rows cannot tell the models apart, and the gate says so.
"""

from __future__ import annotations

import random

from pydantic import BaseModel, Field

from motioncoach.evaluation.config import GateConfig
from motioncoach.evaluation.report import EvalReport
from motioncoach.evaluation.score import AnswerScore

BOOTSTRAP_SAMPLES = 2000
_PER_ROW = {
    "json_valid_rate": lambda s: s.json_valid,
    "schema_valid_rate": lambda s: s.schema_valid,
    "grounded_rate": lambda s: s.grounded,
    "focus_joint_agreement": lambda s: s.joint_agrees,
    "side_agreement": lambda s: s.side_agrees,
    "agreement": lambda s: s.agrees,
    "severity_agreement": lambda s: s.severity_agrees,
}


class GateDecision(BaseModel):
    """Whether the adapter may ship, and why."""

    passed: bool
    enabled: bool
    reason: str = Field(description="One sentence a person reads in the log, the artifact and the card.")
    comparisons: list[dict] = Field(
        default_factory=list,
        description="Per metric: base, adapter, their difference with its 95% bootstrap interval, and won.",
    )
    rows: int = Field(0, description="Validation rows both models answered.")


def decide(report: EvalReport, config: GateConfig, benchmark: list[dict] | None = None) -> GateDecision:
    """Passed when the adapter leads the base model by more than min_margin (or ties at the ceiling) on
    every gate metric, over at least min_rows validation rows, and, when a benchmark is required
    (release.benchmark), does no worse than the base on it (benchmarks.gate.benchmark_comparisons)."""
    names = {m.model for m in report.models}
    if not {"base", "adapter"} <= names or not report.rows:
        missing = "no validation rows were evaluated" if not report.rows else "base and adapter were not both evaluated"
        return _decision(config, False, f"cannot compare: {missing}", [], len(report.rows))
    rows = len(report.rows)
    base, adapter = report.metrics("base"), report.metrics("adapter")
    comparisons = []
    for metric in config.metrics:
        b, a = getattr(base, metric), getattr(adapter, metric)
        low, high = _interval([(row.scores["adapter"], row.scores["base"]) for row in report.rows], metric)
        won = a - b > config.min_margin or (a == b == 1.0)
        comparisons.append(
            {"metric": metric, "base": b, "adapter": a, "difference": round(a - b, 4),
             "interval": [low, high], "won": won}
        )  # fmt: skip
    comparisons += benchmark or []
    details = "; ".join(
        f"{c['metric']} {c['adapter']:.3f} vs base {c['base']:.3f} "
        f"(difference {c['difference']:+.3f}, 95% interval {c['interval'][0]:+.3f} to {c['interval'][1]:+.3f})"
        for c in comparisons
    )
    if rows < config.min_rows:
        reason = (
            f"only {rows} validation rows were evaluated, fewer than the {config.min_rows} the gate needs to tell "
            f"the models apart (GateConfig.min_rows); {details}"
        )
        return _decision(config, False, reason, comparisons, rows)
    margin = f" by more than {config.min_margin}" if config.min_margin else ""
    lost = [c for c in comparisons if not c["won"]]
    if benchmark is not None and not benchmark:
        return _decision(config, False, "the required benchmark could not compare the adapter with its base "
                         f"(neither has items it can count); {details}", comparisons, rows)  # fmt: skip
    if lost:
        return _decision(config, False, f"the adapter does not beat the base model{margin} over {rows} rows: {details}",
                         comparisons, rows)  # fmt: skip
    return _decision(config, True, f"the adapter beats the base model{margin} over {rows} rows: {details}",
                     comparisons, rows)  # fmt: skip


def _interval(pairs: list[tuple[AnswerScore, AnswerScore]], metric: str) -> tuple[float, float]:
    """The 95% paired-bootstrap interval of the mean per-row difference, adapter minus base."""
    value = _PER_ROW[metric]
    diffs = [int(value(adapter)) - int(value(base)) for adapter, base in pairs]
    rng = random.Random(0)
    n = len(diffs)
    means = sorted(sum(rng.choices(diffs, k=n)) / n for _ in range(BOOTSTRAP_SAMPLES))
    return round(means[int(0.025 * BOOTSTRAP_SAMPLES)], 4), round(means[int(0.975 * BOOTSTRAP_SAMPLES) - 1], 4)


def _decision(config: GateConfig, passed: bool, reason: str, comparisons: list[dict], rows: int) -> GateDecision:
    if not config.enabled:
        return GateDecision(passed=True, enabled=False, reason=f"gate disabled (it would have said: {reason})",
                            comparisons=comparisons, rows=rows)  # fmt: skip
    return GateDecision(passed=passed, enabled=True, reason=reason, comparisons=comparisons, rows=rows)
