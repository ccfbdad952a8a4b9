"""One photo (or a take's frames) through the coach as a server does it: the pose first, on a lane of its own,
then the model through the batcher only when the pose filter keeps the photo.

A photo that needs no model call (nobody, several people, too little of the body) is answered as soon as
its pose is known, never queued behind a batch in progress.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from motioncoach.serving.batcher import Batcher
from motioncoach.serving.clip import best_frame
from motioncoach.serving.coach import Coach, Coached, CoachRequest, abstained
from motioncoach.serving.metrics import Metrics
from motioncoach.serving.video import Frame


@dataclass(frozen=True)
class Take:
    """What the coach answered for an upload, and the frame it looked at (None when none could be chosen)."""

    coached: Coached
    frame: Frame | None


class CoachService:
    def __init__(self, coach: Coach, *, max_batch: int, wait_s: float, workers: int, max_queue: int, metrics: Metrics):
        self.coach = coach
        self.batcher: Batcher[tuple[CoachRequest, object], Coached] = Batcher(
            coach.ask, max_batch=max_batch, wait_s=wait_s, workers=workers, max_queue=max_queue, on_batch=metrics.batch
        )
        # YOLO runs one call at a time in a process (pose.filter's lock): one lane, apart from the model's.
        self._pose = ThreadPoolExecutor(max_workers=1, thread_name_prefix="coach-pose")

    async def coach_photo(self, request: CoachRequest, deadline: float, request_id: str) -> Coached:
        """The photo's answer: low_confidence at once, or the model's (Busy, Expired, or the model's failure)."""
        (found,) = await self._detect([request], "photo")
        if isinstance(found, str):
            return abstained(request, found)
        return await self.batcher.submit((request, found), deadline, request_id)

    async def coach_take(self, frames: Sequence[Frame], activity: str, deadline: float, request_id: str) -> Take:
        """The answer for the best frame of an upload (one person, the sharpest), or why none can be coached."""
        requests = [CoachRequest(photo=frame.photo, activity=activity) for frame in frames]
        found = await self._detect(requests, frames[0].kind)
        chosen = best_frame([frame.photo for frame in frames], found)
        if isinstance(chosen, str):
            return Take(coached=abstained(requests[0], chosen), frame=None)
        coached = await self.batcher.submit((requests[chosen], found[chosen]), deadline, request_id)
        return Take(coached=coached, frame=frames[chosen])

    async def _detect(self, requests: Sequence[CoachRequest], medium: str):
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pose, self.coach.detect, requests, medium)
