"""Choosing which images to use: skipped activities out, the budget spread evenly."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence

from motioncoach.records import ImageRecord
from motioncoach.sources.folder import activity_name


def drop_skipped(records: Iterable[ImageRecord], skip: Iterable[str]) -> list[ImageRecord]:
    """Records whose activity is not in skip (compared in activity_name's spelling)."""
    skipped = {activity_name(s) for s in skip}
    return [r for r in records if r.activity not in skipped]


def spread_evenly(records: Sequence[ImageRecord], max_samples: int) -> list[ImageRecord]:
    """At most max_samples records, shared as evenly as possible across activities.

    Activities with fewer images than their share give the rest to the others. Within an activity
    the first files by path are taken, so adding an image changes the selection as little as it can.
    """
    by_activity: dict[str, list[ImageRecord]] = defaultdict(list)
    for record in sorted(records, key=lambda r: str(r.path)):
        by_activity[record.activity].append(record)
    quota = {activity: 0 for activity in by_activity}
    budget = max_samples
    open_activities = sorted(by_activity, key=lambda a: len(by_activity[a]))
    while budget > 0 and open_activities:
        share, extra = divmod(budget, len(open_activities))
        still_open = []
        for index, activity in enumerate(open_activities):
            room = len(by_activity[activity]) - quota[activity]
            take = min(room, share + (1 if index < extra else 0))
            quota[activity] += take
            budget -= take
            if quota[activity] < len(by_activity[activity]):
                still_open.append(activity)
        open_activities = still_open
    chosen = [r for activity, items in by_activity.items() for r in items[: quota[activity]]]
    return sorted(chosen, key=lambda r: str(r.path))
