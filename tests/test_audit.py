"""People judge the teacher: the audit sample, verdicts from a file or the run's input form, and what they keep out."""

from __future__ import annotations

import contextvars
import json
import shutil
import threading
import time

import pytest
from typer.testing import CliRunner

from cli.main import app
from flows.dataset import build_dataset
from motioncoach.audit import AuditBook, audit_sample, candidates_in, pending
from motioncoach.audit.sample import Candidate, shares
from motioncoach.dataset import read_jsonl
from motioncoach.labels.schema import CoachingLabel
from tests.fakes import GeminiFake
from tests.photos import single_person_photos

KEY = "fake-gemini-audit-secret-0123456789"


def _label(score: int = 80) -> CoachingLabel:
    return CoachingLabel(status="success", positive_note="Steady.", progress_score=score, feedback_points=[])


def test_the_sample_gives_each_activity_its_share_and_stays_put_when_images_are_added():
    assert shares({"squat": 8, "yoga": 2, "golf": 1}, 4) == {"squat": 2, "yoga": 1, "golf": 1}  # one each, then 8:2:1
    assert shares({"squat": 8, "yoga": 2, "golf": 1}, 30) == {"squat": 8, "yoga": 2, "golf": 1}  # never more than held
    assert shares({"squat": 3, "yoga": 3}, 1) == {"squat": 1, "yoga": 0}
    photos = [
        Candidate(sha256=f"{i:02d}" + "a" * 62, activity="squat" if i < 10 else "yoga", labeler="gemini",
                  model_id="m", label=_label())
        for i in range(14)
    ]  # fmt: skip
    first = audit_sample(photos, 4)
    assert [c.activity for c in first].count("yoga") == 1 and len(first) == 4
    more = photos + [Candidate(sha256="ff" + "b" * 62, activity="squat", labeler="gemini", model_id="m",
                               label=_label())]  # fmt: skip
    assert {c.sha256 for c in first} <= {c.sha256 for c in audit_sample(more, 4)} | {more[-1].sha256}
    assert audit_sample(list(reversed(photos)), 4) == first  # the order labels arrive in does not matter


@pytest.fixture
def gemini(monkeypatch):
    with GeminiFake(api_key=KEY) as fake:
        monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", fake.base_url)
        monkeypatch.setenv("GEMINI_API_KEY", KEY)
        yield fake


def _row_images(data_dir) -> set[str]:
    return {row["images"][0].split("/")[-1].split(".")[0] for name in ("train", "val")
            for row in read_jsonl(data_dir / "splits" / f"{name}.jsonl")}  # fmt: skip


def test_verdicts_from_a_file_keep_two_rejected_labels_out_and_a_rerun_asks_nothing(tmp_path, prefect_server, gemini):
    photos = single_person_photos(tmp_path / "photos", 6, activities=("squat", "yoga"))
    data = tmp_path / "data"
    build_dataset(source=str(photos), labeler="gemini", data_dir=data)
    assert gemini.requests == 6
    candidates = candidates_in(data)
    assert len(candidates) == 6 == len(_row_images(data))
    rejected, approved = candidates[:2], candidates[2:]
    lines = [{"id": c.short_id, "verdict": "approve"} for c in approved]
    lines += [{"id": rejected[0].sha256, "verdict": "reject", "reason": "the knee is not bent", "then": "drop"}]
    lines += [{"id": rejected[1].short_id, "verdict": "reject", "reason": "wrong side named"}]
    verdicts = tmp_path / "verdicts.jsonl"
    verdicts.write_text("".join(json.dumps(line) + "\n" for line in lines))

    result = CliRunner().invoke(app, ["audit", "--data-dir", str(data), "--verdicts", str(verdicts)])
    assert result.exit_code == 0, result.output
    assert "recorded 6 verdicts" in result.output and "approved 4 of 6 audited labels (pass rate 0.67)" in result.output
    book = [json.loads(line) for line in (data / "audit.jsonl").read_text().splitlines()]
    assert [(v["image"], v["verdict"], v["then"]) for v in book] == [
        *[(c.sha256, "approve", None) for c in approved],
        (rejected[0].sha256, "reject", "drop"),
        (rejected[1].sha256, "reject", "relabel"),  # a rejection asks for a new label unless it says drop
    ]
    assert all(
        v["who"] and v["when"] and v["label_key"] == c.label_key for v, c in zip(book, approved + rejected, strict=True)
    )

    gemini.reset_counters()
    summary = build_dataset(source=str(photos), labeler="gemini", data_dir=data)
    assert gemini.requests == 0  # nothing is asked again, the approved labels least of all
    assert _row_images(data) == {c.sha256 for c in approved} and summary.train.rows + summary.val.rows == 4
    statuses = {r["sha256"]: (r["status"], r["reason"]) for r in read_jsonl(data / "labels.jsonl")}
    assert statuses[rejected[0].sha256] == ("rejected", "rejected by " + book[4]["who"]
                                            + " (dropped from the dataset): the knee is not bent")  # fmt: skip
    assert statuses[rejected[1].sha256][0] == "rejected"
    assert len(AuditBook.read(data)) == 6  # the rerun recorded nothing new


def test_bad_verdicts_are_all_named_and_none_is_recorded(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    sha = "ab" * 32
    (data / "labels.jsonl").write_text(json.dumps({
        "sha256": sha, "source_path": "p.jpg", "activity": "squat", "labeler": "gemini", "model_id": "m",
        "status": "labeled", "label": json.loads(_label().to_json()), "reason": None,
    }) + "\n")  # fmt: skip
    verdicts = tmp_path / "verdicts.jsonl"
    verdicts.write_text(
        json.dumps({"id": "0123456789", "verdict": "approve"}) + "\n"
        + json.dumps({"id": sha[:10], "verdict": "reject"}) + "\n"
        + json.dumps({"id": sha, "verdict": "maybe"}) + "\n"
    )  # fmt: skip
    result = CliRunner().invoke(app, ["audit", "--data-dir", str(data), "--verdicts", str(verdicts)])
    assert result.exit_code == 1
    assert "No verdict was recorded: line 1: 0123456789 is not the sha256 or the 10-digit short id" in result.output
    assert "line 2: a rejection needs a reason" in result.output
    assert "line 3: verdict must be 'approve' or 'reject', not 'maybe'" in result.output
    assert not (data / "audit.jsonl").exists()


def _paused_run(name: str, timeout: float = 120):
    """The flow run of this name once it is paused for input (its form saved), polled on the server."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName
    from prefect.input.run_input import read_flow_run_input

    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            for run in client.read_flow_runs(flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[name]))):
                state = run.state
                if state and state.is_paused() and state.state_details.run_input_keyset:
                    if read_flow_run_input(state.state_details.run_input_keyset["schema"], flow_run_id=run.id):
                        return run
            time.sleep(0.2)
    raise AssertionError(f"no paused run named {name!r}")


def test_a_run_with_audit_4_waits_is_resumed_through_the_api_and_keeps_the_rejected_label_out(tmp_path, prefect_server):
    from prefect.artifacts import Artifact
    from prefect.flow_runs import resume_flow_run

    photos = single_person_photos(tmp_path / "audit-photos", 6, activities=("squat", "yoga"))
    data = tmp_path / "data"
    outcome = {}
    # In a thread of its own, with this test's Prefect settings (a thread starts with an empty context).
    settings = contextvars.copy_context()

    def audited_run() -> None:
        outcome["state"] = build_dataset(source=str(photos), data_dir=data, audit=4, return_state=True)

    run = threading.Thread(target=settings.run, args=(audited_run,))
    run.start()
    try:
        paused = _paused_run("audit-photos-rules")
        todo = pending(candidates_in(data), 4, AuditBook.read(data))
        assert len(todo) == 4 and len({c.activity for c in todo}) == 2  # both activities in the sample
        artifact = Artifact.get("label-audit").data
        assert all(f"`{c.short_id}`" in artifact for c in todo) and "data:image/jpeg;base64," in artifact
        assert all((data / "audit" / f"{c.short_id}.png").is_file() for c in todo)
        verdicts = {c.short_id: {"verdict": "approve"} for c in todo[1:]}
        verdicts[todo[0].short_id] = {"verdict": "reject", "reason": "that is no squat", "then": "drop"}
        resume_flow_run(paused.id, run_input={**verdicts, "reviewer": "coach-anna"})
    finally:
        run.join(timeout=180)
    state = outcome["state"]
    assert state.is_completed(), state
    assert todo[0].sha256 not in _row_images(data) and len(_row_images(data)) == 5
    book = AuditBook.read(data)
    assert len(book) == 4 and {v.who for v in book.verdicts} == {"coach-anna"}
    assert book.dropped(todo[0].sha256)
    # An unchanged rerun asks nothing: every label of the sample has a verdict.
    again = build_dataset(source=str(photos), data_dir=data, audit=4, return_state=True)
    assert again.is_completed() and Artifact.get("label-audit").data.startswith("none")


def test_a_modal_data_dir_is_audited_from_the_volume_and_too_many_rejections_stop_training(
    tmp_path, prefect_server, monkeypatch
):
    """The photos are on the volume only: `audit --profile modal` fetches the ones it shows, the verdicts land
    on the volume too, and the modal profile's pass-rate check stops before any GPU."""
    from prefect import flow

    from motioncoach.errors import ConfigurationError
    from remote.client import connect
    from remote.rehearsal import REHEARSAL_ENV
    from tasks.audit import check_audit, prepare_audit
    from tests.release_data import build_release_data

    data = build_release_data(tmp_path / "client")
    volume = tmp_path / "volume"
    monkeypatch.setenv(REHEARSAL_ENV, str(volume))
    connect(data.data_dir).upload_dir(data.data_dir, "data")
    shutil.rmtree(data.data_dir / "images")  # what a modal data dir keeps here: no dataset photos
    todo = pending(candidates_in(data.data_dir), 4, AuditBook.read(data.data_dir))

    @flow(name="audit-under-test")
    def shown() -> list:
        return prepare_audit(4, data.data_dir, "modal")

    assert [c.sha256 for c in shown()] == [c.sha256 for c in todo]  # drawn over the photos fetched from the volume
    assert all((data.data_dir / "audit" / f"{c.short_id}.png").is_file() for c in todo)
    verdicts = "".join(
        json.dumps({"id": c.short_id, "verdict": "reject", "reason": "not a coachable pose"}) + "\n" for c in todo[:2]
    ) + json.dumps({"id": todo[2].short_id, "verdict": "approve"}) + "\n"  # fmt: skip
    result = CliRunner().invoke(
        app, ["audit", "--data-dir", str(data.data_dir), "--profile", "modal", "--rehearse-volume", str(volume),
              "--verdicts", "-"], input=verdicts,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert (volume / "data" / "audit.jsonl").read_bytes() == (data.data_dir / "audit.jsonl").read_bytes()

    @flow(name="pass-rate-under-test")
    def checked(minimum: float, profile: str):
        return check_audit(minimum, data.data_dir, profile)

    with pytest.raises(ConfigurationError) as stopped:
        checked(0.8, "modal")
    assert str(stopped.value).startswith(
        "People rejected 2 of 3 audited labels (pass rate 0.33, below release.min_audit_pass_rate 0.80), so training "
        "did not start: try another teacher model"
    )
    assert checked(0.8, "local").pass_rate == 0.3333  # locally a warning, and the training goes on
    assert checked(0.3, "modal").rejected == 2


def test_a_reviewer_judges_in_the_terminal_each_answer_kept_as_it_is_given(tmp_path):
    from tests.release_data import build_release_data

    data = build_release_data(tmp_path).data_dir
    todo = pending(candidates_in(data), 3, AuditBook.read(data))
    # approve the first, reject the second (asked again for a reason until one is given), then quit.
    answers = "approve\nr\n\nthe arms are not what it says\ndrop\nq\n"
    result = CliRunner().invoke(app, ["audit", "--data-dir", str(data), "--sample", "3"], input=answers)
    assert result.exit_code == 0, result.output
    assert f"[1/3] {todo[0].short_id} · " in result.output and f"overlay: {data / 'audit' / todo[0].short_id}.png" in (
        result.output
    )
    assert "approved 1 of 2 audited labels (pass rate 0.50); 1 rejected: 1 dropped, 0 to relabel" in result.output
    verdicts = AuditBook.read(data).verdicts
    assert [(v.image, v.verdict, v.reason, v.then) for v in verdicts] == [
        (todo[0].sha256, "approve", "", None),
        (todo[1].sha256, "reject", "the arms are not what it says", "drop"),
    ]
    again = CliRunner().invoke(app, ["audit", "--data-dir", str(data), "--sample", "3"], input="q\n")
    assert f"[1/1] {todo[2].short_id}" in again.output  # only the label nobody judged is asked about
