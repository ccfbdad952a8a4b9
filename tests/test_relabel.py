"""The nightly relabel: what it picks, in which order, within which budget, and the rebuilt dataset."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from flows.dataset import build_dataset
from flows.relabel import relabel
from motioncoach.config import LabelConfig
from motioncoach.dataset import read_jsonl
from motioncoach.lock import DataDirBusy
from tests.fakes import GeminiFake

KEY = "fake-gemini-relabel-secret-0123456789"


@pytest.fixture
def gemini(monkeypatch):
    with GeminiFake(api_key=KEY, retry_after=0.01) as fake:
        monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", fake.base_url)
        monkeypatch.setenv("GEMINI_API_KEY", KEY)
        yield fake


def _statuses(data_dir) -> dict[str, str]:
    return {r["source_path"].rsplit("/", 1)[-1]: r["status"] for r in read_jsonl(data_dir / "labels.jsonl")}


def test_relabel_fixes_invalid_labels_then_stale_ones_within_budget(tmp_path, prefect_server, gemini):
    data = tmp_path / "data"
    gemini.faults = lambda call: "truncated" if call.number == 1 else None  # one answer arrives broken
    lenient = LabelConfig(labeler="gemini", invalid_retries=0, max_failure_rate=0.5)
    build_dataset(labeler="gemini", data_dir=data, labeling=lenient)
    assert sorted(_statuses(data).values()) == ["failed", "labeled", "labeled"]
    rows_before = len(read_jsonl(data / "pose_dataset.jsonl"))

    gemini.faults = None
    gemini.reset_counters()
    summary = relabel(data_dir=data, labeler="gemini", labeling=lenient)
    assert gemini.requests == 1  # only the image whose answer was invalid
    assert set(_statuses(data).values()) == {"labeled"}
    assert summary.train.rows + summary.val.rows == rows_before + 1

    gemini.reset_counters()
    newer_model = lenient.model_copy(update={"gemini_model": "gemini-2.5-flash"})
    # Today's budget counts every request of the day: 3 + 1 so far, so a budget of 6 leaves 2.
    partial = relabel(data_dir=data, labeler="gemini", daily_budget=6, labeling=newer_model)
    assert gemini.requests == 2
    assert partial.train.rows + partial.val.rows == rows_before + 1  # the stale label still trains
    assert sorted(r["reason"] or "" for r in read_jsonl(data / "labels.jsonl"))[-1].startswith(
        "stale: gemini-3-flash-preview"
    )
    relabel(data_dir=data, labeler="gemini", daily_budget=7, labeling=newer_model)
    assert gemini.requests == 3  # "the next night": the one left over
    assert all(r["reason"] is None for r in read_jsonl(data / "labels.jsonl"))


def test_an_image_out_of_asks_is_listed_as_such_and_left_by_the_relabel(tmp_path, prefect_server, gemini):
    from prefect.artifacts import Artifact

    data = tmp_path / "data"
    gemini.faults = lambda call: "truncated" if call.number == 1 else None  # the first image always breaks
    once = LabelConfig(labeler="gemini", invalid_retries=0, max_asks_per_image=1, max_failure_rate=0.5)
    build_dataset(labeler="gemini", data_dir=data, labeling=once)
    (failure,) = json.loads(Artifact.get("label-failures").data)
    assert failure["status"] == "failed" and failure["asked_enough"] is True
    assert failure["reason"].startswith("invalid answer: not valid JSON")
    assert "labeling.max_asks_per_image reached" in failure["reason"]
    # Named within the data dir, as a UI on another machine can show it.
    assert not Path(failure["image"]).is_absolute() and (data / failure["image"]).is_file()

    gemini.reset_counters()
    relabel(data_dir=data, labeler="gemini", labeling=once)
    assert gemini.requests == 0  # it had its one answer; the rest are labeled
    (change,) = json.loads(Artifact.get("relabel-changes").data)
    assert (change["problem"], change["asks"]) == ("invalid", 1)
    assert change["now"] == "not asked again: labeling.max_asks_per_image reached"
    assert change["image"] == failure["image"]


HOLD = """
import sys, time
from motioncoach.lock import data_dir_lock
with data_dir_lock(sys.argv[1], "build-dataset run 'other'"):
    print("held", flush=True)
    time.sleep(60)
"""


def test_a_run_on_a_busy_data_dir_is_refused_and_changes_nothing(tmp_path, prefect_server):
    data = tmp_path / "data"
    data.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(data)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(DataDirBusy, match="in use by build-dataset run 'other'"):
            build_dataset(data_dir=data)
        assert sorted(p.name for p in data.iterdir()) == [".motioncoach.lock"]
    finally:
        holder.kill()
        holder.wait()
    assert json.loads((data / ".motioncoach.lock").read_text() or "{}").get("what") in (
        None,
        "build-dataset run 'other'",
    )


def test_relabel_of_a_modal_data_dir_runs_on_the_volume(tmp_path, prefect_server, gemini, monkeypatch):
    """The local copy of a modal data dir names volume paths: the relabel runs where the images are
    (rehearsed), and its rebuilt labels, dataset and split come home; nothing is emptied."""
    from remote.client import connect
    from remote.rehearsal import REHEARSAL_ENV
    from tests.rehearsal import rehearsal_calls
    from tests.release_data import build_release_data

    data = build_release_data(tmp_path / "client")
    volume = tmp_path / "volume"
    monkeypatch.setenv(REHEARSAL_ENV, str(volume))
    connect(data.data_dir).upload_dir(data.data_dir, "data")
    # What `dataset --profile modal` leaves: yolo_cache.json, here and on the volume, names the files
    # as the functions see them, so a relabel on this machine would find no image at all.
    cache = (data.data_dir / "yolo_cache.json").read_text().replace(str(data.data_dir), str(volume / "data"))
    for home in (data.data_dir, volume / "data"):
        (home / "yolo_cache.json").write_text(cache)
    rows_before = read_jsonl(data.data_dir / "pose_dataset.jsonl")

    summary = relabel(data_dir=data.data_dir, labeler="gemini", profile="modal")
    assert rehearsal_calls(volume) == ["app_version", "relabel"]  # the deployed code is checked first
    assert gemini.requests == len(data.samples)  # rules labels are not Gemini's: every image asked once
    for name in ("labels.jsonl", "pose_dataset.jsonl", "splits/train.jsonl", "splits/val.jsonl"):
        assert (data.data_dir / name).read_bytes() == (volume / "data" / name).read_bytes()
    rows = read_jsonl(data.data_dir / "pose_dataset.jsonl")
    assert len(rows) == len(rows_before) == summary.train.rows + summary.val.rows
    assert rows != rows_before  # Gemini's labels replaced the rules labels
    assert set(_statuses(data.data_dir).values()) == {"labeled"}
