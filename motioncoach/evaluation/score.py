"""Scoring one answer against the teacher's label, and a model's answers into its metrics."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

from pydantic import BaseModel, Field, ValidationError

from motioncoach.labels.grounding import grounding_problems, nearest_joint
from motioncoach.labels.schema import CoachingLabel, Severity
from motioncoach.records import PoseSample

_FENCE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.DOTALL)
_MAX_PROBLEM = 200


class AnswerScore(BaseModel):
    """How one answer compares with the teacher's label for the same photo."""

    json_valid: bool = Field(description="The answer is one JSON object (a ```json fence is allowed).")
    schema_valid: bool = Field(description="It is a CoachingLabel.")
    grounded: bool = Field(description="Its vectors start on detected keypoints of the side the script names.")
    progress_score: int | None = Field(None, description="Its progress_score, when schema-valid.")
    score_error: int | None = Field(None, description="|progress_score - the teacher's|, when schema-valid.")
    focus_joint: str | None = Field(None, description="Keypoint nearest the first correction's start.")
    side: str | None = Field(None, description="Side the first correction's script names: left or right.")
    joint_agrees: bool = Field(False, description="Same focus joint as the teacher's first correction.")
    side_agrees: bool = Field(False, description="Same side as the teacher's first correction.")
    severity: Severity | None = Field(None, description="Severity of its correction at the teacher's focus joint.")
    severity_agrees: bool = Field(
        False,
        description="Its correction at the teacher's main correction's joint has the teacher's severity (no "
        "correction when the teacher makes none).",
    )
    problem: str | None = Field(None, description="Why the answer falls short, when it does.")

    @property
    def agrees(self) -> bool:
        """Focus joint and side both match the teacher."""
        return self.joint_agrees and self.side_agrees


class ModelMetrics(BaseModel):
    """One model's answers on the validation rows, summarized. Rates are shares of all rows."""

    model: str
    rows: int = Field(description="Validation rows answered.")
    json_valid_rate: float
    schema_valid_rate: float
    grounded_rate: float
    score_mae: float | None = Field(description="Mean |progress_score error| over schema-valid answers.")
    focus_joint_agreement: float
    side_agreement: float
    agreement: float = Field(description="Share of rows where focus joint and side both match the teacher.")
    severity_agreement: float | None = Field(
        None,
        description="Share of rows whose correction at the teacher's main correction's joint has the teacher's "
        "severity (rows the teacher does not correct: making no correction); None in records made before it.",
    )


def focus_of(label: CoachingLabel, sample: PoseSample, min_conf: float = 0.3) -> tuple[str | None, str]:
    """The first correction's joint (nearest keypoint to its start) and the side its script names;
    (None, '') for a label without corrections."""
    if not label.feedback_points:
        return None, ""
    point = label.feedback_points[0]
    start = point.visuals.vectors[0].start
    return nearest_joint((start[0], start[1]), sample, min_conf), point.side


def parse_label(text: str) -> tuple[dict | None, CoachingLabel | None, str | None]:
    """(JSON object, label, problem): as far as the answer gets towards a CoachingLabel."""
    fenced = _FENCE.match(text or "")
    body = fenced.group(1) if fenced else (text or "")
    try:
        data = json.loads(body)
    except json.JSONDecodeError as exc:
        return None, None, f"not valid JSON ({exc.msg} at char {exc.pos} of {len(body)})"
    if not isinstance(data, dict):
        return None, None, f"JSON {type(data).__name__}, not an object"
    try:
        return data, CoachingLabel.model_validate(data), None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "label"
        return data, None, f"schema: {where}: {first['msg']} ({exc.error_count()} error(s))"[:_MAX_PROBLEM]


def score_answer(text: str, teacher: CoachingLabel, sample: PoseSample, min_conf: float = 0.3) -> AnswerScore:
    """Score an answer: JSON, schema, grounding, progress_score error, focus joint and side agreement."""
    data, label, problem = parse_label(text)
    if label is None:
        return AnswerScore(json_valid=data is not None, schema_valid=False, grounded=False, problem=problem)
    problems = grounding_problems(label, sample, min_conf=min_conf)
    joint, side = focus_of(label, sample, min_conf)
    teacher_joint, teacher_side = focus_of(teacher, sample, min_conf)
    severity = None
    if not teacher.feedback_points:  # nothing to correct, or an abstention: agreeing is doing the same
        same = not label.feedback_points and label.status == teacher.status
        joint_agrees = side_agrees = severity_agrees = same
    else:
        joint_agrees = joint is not None and joint == teacher_joint
        side_agrees = side == teacher_side if teacher_side else joint_agrees  # a midline cue names no side
        # The answer's correction at the teacher's main joint, wherever it is in its list (major first).
        matched = next(
            (p for p in label.feedback_points if nearest_joint(tuple(p.visuals.vectors[0].start), sample, min_conf)
             == teacher_joint),
            None,
        )  # fmt: skip
        severity = matched.severity if matched else None
        severity_agrees = severity == teacher.feedback_points[0].severity
    return AnswerScore(
        json_valid=True,
        schema_valid=True,
        grounded=not problems,
        progress_score=label.progress_score,
        score_error=abs(label.progress_score - teacher.progress_score),
        focus_joint=joint,
        side=side or None,
        joint_agrees=joint_agrees,
        side_agrees=side_agrees,
        severity=severity,
        severity_agrees=severity_agrees,
        problem=f"not grounded: {problems[0]}"[:_MAX_PROBLEM] if problems else None,
    )


def summarize(model: str, scores: Sequence[AnswerScore]) -> ModelMetrics:
    """Rates over all rows (an unusable answer counts against every rate); MAE over schema-valid ones."""
    n = len(scores)

    def rate(values) -> float:
        return round(sum(1 for v in values if v) / n, 4) if n else 0.0

    errors = [s.score_error for s in scores if s.score_error is not None]
    return ModelMetrics(
        model=model,
        rows=n,
        json_valid_rate=rate(s.json_valid for s in scores),
        schema_valid_rate=rate(s.schema_valid for s in scores),
        grounded_rate=rate(s.grounded for s in scores),
        score_mae=round(sum(errors) / len(errors), 2) if errors else None,
        focus_joint_agreement=rate(s.joint_agrees for s in scores),
        side_agreement=rate(s.side_agrees for s in scores),
        agreement=rate(s.agrees for s in scores),
        severity_agreement=rate(s.severity_agrees for s in scores),
    )
