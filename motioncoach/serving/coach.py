"""Coaching photos: detect the pose as the dataset's filter does, ask the model as training asked it,
and answer with the app's AnalysisResponse.

A photo that is not exactly one person, or shows too little of the body, is answered `low_confidence`
without asking the model, as the teacher would have abstained on it. Detecting and asking are two steps,
so that a server answers such photos at once instead of queueing them behind the model.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from motioncoach.config import PoseFilterConfig
from motioncoach.labels.response import AnalysisResponse, low_confidence_response
from motioncoach.pose.filter import NO_PERSON, NO_SHOULDERS, detect_poses, to_bgr
from motioncoach.pose.image_check import DecodedImage
from motioncoach.pose.weights import resolve_weights
from motioncoach.records import Keypoint, PoseSample
from motioncoach.serving.answer import Answer, answer_prompts
from motioncoach.serving.backends import Backend
from motioncoach.serving.photo import Photo
from motioncoach.serving.prompt import student_prompt

_SEVERAL = re.compile(r"several people \((\d+)\)")
_TOO_FEW = re.compile(r"too few keypoints")


@dataclass(frozen=True)
class CoachRequest:
    """One photo to coach, and the activity it shows."""

    photo: Photo
    activity: str


@dataclass(frozen=True)
class Coached:
    """What the coach answered for one photo, with the pose it saw and the model's answer, if it asked."""

    request: CoachRequest
    sample: PoseSample | None
    answer: Answer | None
    response: AnalysisResponse


def abstention_reason(filter_reason: str, medium: str = "photo") -> str:
    """The pose filter's rejection, said to the person who took the photo (or filmed the video)."""
    if filter_reason == NO_PERSON:
        if medium == "video":
            return "No person was found in the video: film it with one person in the frame."
        return "No person was found in the photo: take it with one person in the frame."
    several = _SEVERAL.match(filter_reason)
    if several:
        return f"The {medium} shows {several.group(1)} people: the coach needs exactly one person in the frame."
    if filter_reason == NO_SHOULDERS or _TOO_FEW.match(filter_reason):
        return "Too little of the body is visible to coach: step back so the whole body is in the frame."
    return f"The {medium} cannot be coached: {filter_reason}."


class Coach:
    """The served model: photos in, one AnalysisResponse each out, asked in one batch."""

    def __init__(self, backend: Backend, max_pixels: int, pose: PoseFilterConfig | None = None):
        self.backend = backend
        self.max_pixels = max_pixels
        self.pose = pose or PoseFilterConfig()
        self.weights = resolve_weights(self.pose.weights)

    def detect(self, requests: Sequence[CoachRequest], medium: str = "photo") -> list[PoseSample | str]:
        """Each photo's pose, or why the coach abstains on it (said for a photo or a video's frame)."""
        return detect(requests, self.pose, self.weights, medium)

    def ask(self, asked: Sequence[tuple[CoachRequest, PoseSample]]) -> list[Coached]:
        """The model's answers for photos the pose filter kept, in one backend call."""
        prompts = [student_prompt(sample, r.photo.image(), r.photo.name, self.max_pixels) for r, sample in asked]
        answers = answer_prompts(self.backend, prompts, [sample for _, sample in asked])
        return [
            Coached(request=request, sample=sample, answer=answer, response=answer.response)
            for (request, sample), answer in zip(asked, answers, strict=True)
        ]

    def coach(self, requests: Sequence[CoachRequest]) -> list[Coached]:
        """Detect, then ask the model about the photos it can coach; the others are answered low_confidence."""
        pairs = list(zip(requests, self.detect(requests), strict=True))
        answers = iter(self.ask([(request, pose) for request, pose in pairs if not isinstance(pose, str)]))
        return [abstained(request, pose) if isinstance(pose, str) else next(answers) for request, pose in pairs]


def abstained(request: CoachRequest, reason: str) -> Coached:
    """The answer to a photo the pose filter did not keep: low_confidence, no model asked."""
    return Coached(request=request, sample=None, answer=None, response=low_confidence_response(reason))


def detect(
    requests: Sequence[CoachRequest], pose: PoseFilterConfig, weights: Path, medium: str = "photo"
) -> list[PoseSample | str]:
    """Each photo's pose as the dataset's filter keeps it, or the reason the coach abstains on it."""
    decoded = [DecodedImage(rgb=r.photo.rgb, width=r.photo.width, height=r.photo.height) for r in requests]
    detections = detect_poses([to_bgr(image) for image in decoded], pose, weights)
    return [
        _sample(request, found) if found["outcome"] == "kept" else abstention_reason(found["reason"], medium)
        for request, found in zip(requests, detections, strict=True)
    ]


def _sample(request: CoachRequest, found: dict) -> PoseSample:
    return PoseSample(
        sha256=request.photo.sha256,
        source_path=Path(request.photo.name),
        activity=request.activity,
        width=found["width"],
        height=found["height"],
        box_conf=found.get("box_conf") or 0.0,
        keypoints=tuple(Keypoint(name=n, x=x, y=y, conf=c) for n, x, y, c in found["keypoints"]),
    )
