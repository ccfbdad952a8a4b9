"""The release gate: does the adapter beat the base model it was trained from?"""

from __future__ import annotations

from pydantic import BaseModel, Field

from motioncoach.evaluation.config import GateConfig
from motioncoach.evaluation.evaluate import EvalReport


class GateDecision(BaseModel):
    """Whether the adapter may ship, and why."""

    passed: bool
    enabled: bool
    reason: str = Field(description="One sentence a person reads in the log, the artifact and the card.")
    comparisons: list[dict] = Field(default_factory=list, description="Per metric: base, adapter, margin, won.")


def decide(report: EvalReport, config: GateConfig) -> GateDecision:
    """Passed when the adapter leads the base model by more than min_margin on every gate metric."""
    names = {m.model for m in report.models}
    if not {"base", "adapter"} <= names or not report.rows:
        missing = "no validation rows were evaluated" if not report.rows else "base and adapter were not both evaluated"
        return _decision(config, False, f"cannot compare: {missing}", [])
    base, adapter = report.metrics("base"), report.metrics("adapter")
    comparisons = []
    for metric in config.metrics:
        b, a = getattr(base, metric), getattr(adapter, metric)
        comparisons.append({"metric": metric, "base": b, "adapter": a, "won": a - b > config.min_margin})
    lost = [c for c in comparisons if not c["won"]]
    margin = f" by more than {config.min_margin}" if config.min_margin else ""
    if lost:
        details = "; ".join(f"{c['metric']} {c['adapter']:.3f} vs base {c['base']:.3f}" for c in lost)
        return _decision(config, False, f"the adapter does not beat the base model{margin} on {details}", comparisons)
    details = "; ".join(f"{c['metric']} {c['adapter']:.3f} vs base {c['base']:.3f}" for c in comparisons)
    return _decision(config, True, f"the adapter beats the base model{margin} on {details}", comparisons)


def _decision(config: GateConfig, passed: bool, reason: str, comparisons: list[dict]) -> GateDecision:
    if not config.enabled:
        return GateDecision(
            passed=True, enabled=False, reason=f"gate disabled (it would have said: {reason})", comparisons=comparisons
        )
    return GateDecision(passed=passed, enabled=True, reason=reason, comparisons=comparisons)
