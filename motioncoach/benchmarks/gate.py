"""The release gate's benchmark rule: the student does no worse than its base on what people said.

Each headline metric (mcq_accuracy, error_recall, error_precision) is compared where both models have
items to count; the difference gets a 95% paired-bootstrap interval over the suite's items, as the
validation gate's metrics do. "No worse" is the point estimates: the student may tie its base.
"""

from __future__ import annotations

import random

from motioncoach.benchmarks.metrics import BenchmarkReport, ItemAnswer

GATED = ("mcq_accuracy", "error_recall", "error_precision")
SAMPLES = 2000


def _metric(metric: str, triples: list[tuple[ItemAnswer, ItemAnswer, bool]], side: int) -> float | None:
    """The metric over (adapter answer, base answer, faulty) triples, for one side (0 adapter, 1 base)."""
    answers = [(triple[side], triple[2]) for triple in triples]
    if metric == "mcq_accuracy":
        counted = [bool(answer.correct) for answer, _ in answers if answer.kind == "mcq"]
        return sum(counted) / len(counted) if counted else None
    form = [(answer, is_faulty) for answer, is_faulty in answers if answer.kind == "form_ok"]
    if metric == "error_recall":
        found = [answer.verdict == "error" for answer, is_faulty in form if is_faulty]
        return sum(found) / len(found) if found else None
    right = [is_faulty for answer, is_faulty in form if answer.verdict == "error"]
    return sum(right) / len(right) if right else None


def benchmark_comparisons(report: BenchmarkReport) -> list[dict]:
    """Per gated metric: base, adapter, their difference with its 95% interval, and won (no worse)."""
    if not {"base", "adapter"} <= set(report.answers):
        return []
    base, faulty = {a.item: a for a in report.answers["base"]}, set(report.faulty)
    triples = [(a, base[a.item], a.item in faulty) for a in report.answers["adapter"] if a.item in base]
    comparisons = []
    for metric in GATED:
        adapter_value, base_value = getattr(report.models["adapter"], metric), getattr(report.models["base"], metric)
        if adapter_value is None or base_value is None:
            continue
        rng, diffs = random.Random(0), []
        for _ in range(SAMPLES):
            drawn = rng.choices(triples, k=len(triples))
            a, b = _metric(metric, drawn, 0), _metric(metric, drawn, 1)
            if a is not None and b is not None:
                diffs.append(a - b)
        diffs.sort()
        interval = [round(diffs[int(0.025 * len(diffs))], 4), round(diffs[int(0.975 * len(diffs)) - 1], 4)]
        comparisons.append(
            {"metric": f"benchmark {report.suite}: {metric}", "base": base_value, "adapter": adapter_value,
             "difference": round(adapter_value - base_value, 4), "interval": interval,
             "won": adapter_value >= base_value}
        )  # fmt: skip
    return comparisons
