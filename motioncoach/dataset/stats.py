"""What a split holds, per activity: rows on each side and what their labels teach."""

from __future__ import annotations

import json
from collections import defaultdict

from motioncoach.dataset.rows import read_jsonl
from motioncoach.dataset.split import SplitSummary, row_activity
from motioncoach.labels.cues import named_parts


def split_statistics(summary: SplitSummary) -> list[dict]:
    """One row per activity (and one for all): train and val rows, the mean score of coached photos,
    the abstain rate, and the cues by type (a sided joint, a midline region, photos with none)."""
    counts: dict[str, dict] = defaultdict(lambda: defaultdict(float))
    for side, dataset in (("train", summary.train), ("val", summary.val)):
        for row in read_jsonl(dataset.path):
            for activity in (row_activity(row) or "(none)", "all"):
                _count(counts[activity], side, row)
    table = []
    for activity in sorted(counts, key=lambda a: (a == "all", a)):
        c = counts[activity]
        coached = c["coached"]
        table.append(
            {
                "activity": activity,
                "train": int(c["train"]),
                "val": int(c["val"]),
                "mean_score": round(c["score"] / coached, 1) if coached else None,
                "abstain_rate": round(c["abstained"] / (c["train"] + c["val"]), 3),
                "sided_cues": int(c["sided"]),
                "midline_cues": int(c["midline"]),
                "no_correction": int(c["no_correction"]),
            }
        )
    return table


def _count(counter: dict, side: str, row: dict) -> None:
    counter[side] += 1
    try:
        label = json.loads(row["messages"][-1]["content"])
    except (KeyError, IndexError, TypeError, json.JSONDecodeError):
        return
    if label.get("status") != "success":
        counter["abstained"] += 1
        return
    counter["coached"] += 1
    counter["score"] += label.get("progress_score") or 0
    points = label.get("feedback_points") or []
    if not points:
        counter["no_correction"] += 1
    for point in points:
        named = named_parts(point.get("coaching_script", ""))
        counter["sided" if any(n.side for n in named) else "midline"] += 1
