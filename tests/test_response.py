"""The app's served form (AnalysisResponse) and its committed JSON Schema."""

from __future__ import annotations

import json

import jsonschema
import pytest
from pydantic import ValidationError

from motioncoach.labels import RulesLabeler
from motioncoach.labels.json_schema import SCHEMA_FILE, analysis_response_schema, main, schema_text
from motioncoach.labels.response import AnalysisResponse, error_response, low_confidence_response, response_from_label
from motioncoach.labels.schema import CoachingLabel
from tests.drawing import label, point
from tests.real_poses import detected, hand_made

# The app's interfaces (hackillinois-2026 app/types/index.ts): AnalysisResponse and FeedbackPoint.
APP_RESPONSE_FIELDS = {
    "status",
    "error_message",
    "feedback_points",
    "positive_note",
    "progress_score",
    "improvement_delta",
}
APP_POINT_FIELDS = {"mistake_timestamp_ms", "coaching_script", "positive_note", "visuals", "audio_url", "severity"}


def _validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(json.loads(SCHEMA_FILE.read_text()))


def test_the_committed_schema_is_what_the_code_writes(tmp_path):
    assert SCHEMA_FILE.read_text() == schema_text()
    jsonschema.Draft202012Validator.check_schema(analysis_response_schema())
    assert main([str(SCHEMA_FILE), "--check"]) == 0
    stale = tmp_path / "schema.json"
    stale.write_text(schema_text().replace("audio_url", "audio"))
    assert main([str(stale), "--check"]) == 1
    assert main([str(tmp_path / "new.json")]) == 0 and (tmp_path / "new.json").read_text() == schema_text()


def test_the_schema_has_the_apps_fields():
    schema = analysis_response_schema()
    assert set(schema["properties"]) == APP_RESPONSE_FIELDS
    assert set(schema["$defs"]["ResponsePoint"]["properties"]) == APP_POINT_FIELDS
    assert schema["properties"]["status"]["enum"] == ["success", "low_confidence", "error"]
    assert set(schema["required"]) == {"status", "feedback_points", "positive_note", "progress_score"}


def test_a_label_becomes_the_response_the_app_renders():
    sample = hand_made("deep squat, side view")
    minor = point(sample, "Keep your chest up.", "minor", "left_hip", "left_shoulder", -12, positive_note="Tall.")
    major = point(sample, "Push both knees out over your toes.", "major", "left_knee", "left_ankle", 12)
    made = CoachingLabel.model_validate(label(minor, major))
    response = response_from_label(made)
    served = json.loads(response.model_dump_json())
    _validator().validate(served)
    assert served["status"] == "success" and served["improvement_delta"] is None and served["error_message"] is None
    assert [p["severity"] for p in served["feedback_points"]] == ["major", "minor"]
    assert [p["audio_url"] for p in served["feedback_points"]] == ["", ""]
    assert (
        served["feedback_points"][1]["positive_note"] == "Tall."
        and served["feedback_points"][0]["positive_note"] is None
    )
    label_points = json.loads(made.to_json())["feedback_points"]
    assert [{k: v for k, v in p.items() if k != "audio_url"} for p in served["feedback_points"]] == label_points
    assert served["progress_score"] == made.progress_score and served["positive_note"] == made.positive_note
    # The rules labeler's abstention and a label without corrections are served too.
    for sample in (detected("grace_hopper"), detected("astronaut"), detected("bus, middle", "standing")):
        _validator().validate(json.loads(response_from_label(RulesLabeler().label(sample)).model_dump_json()))


def test_abstaining_and_failing_responses_say_why():
    low = low_confidence_response("Step back so your whole body is in view.")
    error = error_response("The photo could not be decoded.")
    for response, status in ((low, "low_confidence"), (error, "error")):
        served = json.loads(response.model_dump_json())
        _validator().validate(served)
        assert served["status"] == status and served["feedback_points"] == [] and served["progress_score"] == 0
        assert served["positive_note"] == "" and served["improvement_delta"] is None
    assert low.error_message == "Step back so your whole body is in view."
    with pytest.raises(ValueError, match=r"error_response\(reason=...\) needs a non-empty sentence"):
        error_response("  ")
    with pytest.raises(ValueError, match=r"low_confidence_response\(reason=...\) needs a non-empty sentence"):
        low_confidence_response("")
    with pytest.raises(ValidationError, match="error_message must be null for a success response"):
        AnalysisResponse(status="success", error_message="x", feedback_points=[], positive_note="", progress_score=9)
