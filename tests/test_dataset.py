"""MS-Swift rows and a split without leakage."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from motioncoach.config import SplitConfig
from motioncoach.dataset import build_dataset, read_jsonl, split_dataset
from motioncoach.dataset.prompt import pose_block
from motioncoach.dataset.rows import write_jsonl
from motioncoach.dataset.split import image_key
from motioncoach.errors import MotionCoachError
from motioncoach.hashing import file_sha256
from motioncoach.labels import RulesLabeler
from motioncoach.labels.outcomes import label_samples
from motioncoach.records import KEYPOINT_NAMES, Keypoint, PoseSample

LEGS = {"left_hip": (0.5, 0.3), "left_knee": (0.5, 0.55), "left_ankle": (0.62, 0.8)}


def _sample(path, activity="squat") -> PoseSample:
    keypoints = tuple(
        Keypoint(name=n, x=LEGS[n][0], y=LEGS[n][1], conf=0.9) if n in LEGS else Keypoint(name=n, x=0, y=0, conf=0.1)
        for n in KEYPOINT_NAMES
    )
    return PoseSample(
        sha256=file_sha256(path),
        source_path=path,
        activity=activity,
        width=64,
        height=48,
        box_conf=0.9,
        keypoints=keypoints,
    )


def _photo(path, seed):
    pixels = np.random.default_rng(seed).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def test_rows_are_swift_conversations_with_content_addressed_images(tmp_path):
    photo = _photo(tmp_path / "squat.png", 1)
    report = label_samples([_sample(photo)], RulesLabeler())
    dataset = build_dataset(report.labeled, tmp_path / "data")
    [row] = read_jsonl(dataset.path)
    assert [m["role"] for m in row["messages"]] == ["system", "user", "assistant"]
    user = row["messages"][1]["content"]
    assert user.startswith("<image>Activity: squat\n")
    assert "left_knee: [0.500, 0.550]" in user and "nose" not in user
    # The student sees the angles its labels are about, measured by the function the app calls too.
    assert user.endswith("\n" + pose_block(_sample(photo))) and "Measured angles" in user
    assert "\nleft_knee: 1" in user.split("Measured angles")[1]  # whole degrees
    label = json.loads(row["messages"][2]["content"])  # one leg only: the rules abstain, and that is a label
    assert label["status"] == "low_confidence" and label["feedback_points"] == []
    assert row["images"] == [f"images/{file_sha256(photo)}.png"]
    assert (tmp_path / "data" / row["images"][0]).read_bytes() == photo.read_bytes()
    assert dataset.sha256 == file_sha256(dataset.path) and dataset.rows == 1


def _rows(n_images: int, copies: int = 1) -> list[dict]:
    return [
        {"messages": [{"role": "user", "content": f"{i}-{c}"}], "images": [f"images/{i:064x}.jpg"]}
        for i in range(n_images)
        for c in range(copies)
    ]


def test_identical_images_never_straddle_the_split(tmp_path):
    write_jsonl(_rows(200, copies=3), tmp_path / "all.jsonl")
    summary = split_dataset(tmp_path / "all.jsonl", SplitConfig(), tmp_path / "splits")
    train = {image_key(r) for r in read_jsonl(summary.train.path)}
    val = {image_key(r) for r in read_jsonl(summary.val.path)}
    assert not train & val
    assert len(train) + len(val) == 200
    assert 10 <= len(val) <= 30  # about 10% of the images
    assert summary.train.rows + summary.val.rows == 600


def test_split_is_stable_when_images_are_added(tmp_path):
    write_jsonl(_rows(100), tmp_path / "a.jsonl")
    write_jsonl(_rows(150), tmp_path / "b.jsonl")
    before = split_dataset(tmp_path / "a.jsonl", SplitConfig(), tmp_path / "s1")
    after = split_dataset(tmp_path / "b.jsonl", SplitConfig(), tmp_path / "s2")
    val_before = {image_key(r) for r in read_jsonl(before.val.path)}
    val_after = {image_key(r) for r in read_jsonl(after.val.path)}
    assert val_before <= val_after
    again = split_dataset(tmp_path / "a.jsonl", SplitConfig(), tmp_path / "s3")
    assert again.val.sha256 == before.val.sha256


def test_two_images_give_one_validation_row_and_one_image_is_refused(tmp_path):
    write_jsonl(_rows(2), tmp_path / "two.jsonl")
    summary = split_dataset(tmp_path / "two.jsonl", SplitConfig(), tmp_path / "s")
    assert (summary.train.rows, summary.val.rows) == (1, 1)
    write_jsonl(_rows(1, copies=2), tmp_path / "one.jsonl")
    with pytest.raises(MotionCoachError, match="holds 1 distinct image.*needs at least 2"):
        split_dataset(tmp_path / "one.jsonl", SplitConfig(), tmp_path / "s")


def test_a_dataset_with_rows_is_never_replaced_by_an_empty_one(tmp_path):
    from motioncoach.dataset.rows import write_jsonl
    from motioncoach.errors import DataLossError

    path = tmp_path / "pose_dataset.jsonl"
    assert write_jsonl([], path) == 0  # a first, empty result is fine
    write_jsonl([{"messages": [], "images": ["images/a.png"]}, {"messages": [], "images": ["images/b.png"]}], path)
    before = path.read_bytes()
    with pytest.raises(DataLossError) as raised:
        write_jsonl(iter([]), path)
    assert str(raised.value).startswith(f"Refusing to replace {path} (2 rows) with an empty file")
    assert "Nothing was changed" in str(raised.value) and path.read_bytes() == before
    assert write_jsonl([], path, may_empty=True) == 0 and path.read_text() == ""


def test_near_duplicates_never_straddle_and_every_activity_is_validated(tmp_path):
    """Resized and re-encoded copies of a photo are one picture; each activity gets validation rows."""
    from motioncoach.dataset.split import row_activity
    from motioncoach.dataset.stats import split_statistics

    data = tmp_path / "data"
    (data / "images").mkdir(parents=True)
    rng = np.random.default_rng(3)
    rows, copies_of = [], {}
    for index in range(60):
        activity = ("squat", "plank", "tree")[index % 3]
        smooth = Image.fromarray(rng.integers(0, 255, (6, 8, 3), dtype=np.uint8)).resize((160, 120))
        variants = [smooth, smooth.resize((96, 72)), smooth]  # the photo, resized, and re-encoded below
        names = []
        for number, variant in enumerate(variants):
            name = f"images/{index:03d}-{number}.jpg"
            variant.save(data / name, quality=95 if number < 2 else 60)
            names.append(name)
        copies_of[index] = names
        label = {"status": "success", "progress_score": 80, "feedback_points": []}
        for name in names:
            rows.append({
                "messages": [{"role": "user", "content": f"<image>Activity: {activity}\n"},
                             {"role": "assistant", "content": json.dumps(label)}],
                "images": [name],
            })  # fmt: skip
    write_jsonl(rows, data / "all.jsonl")
    summary = split_dataset(data / "all.jsonl", SplitConfig(), data / "splits")
    val_images = {r["images"][0] for r in read_jsonl(summary.val.path)}
    for names in copies_of.values():
        assert set(names) <= val_images or not set(names) & val_images  # a picture stays on one side
    val_activities = {row_activity(r) for r in read_jsonl(summary.val.path)}
    assert val_activities == {"squat", "plank", "tree"}
    stats = {row["activity"]: row for row in split_statistics(summary)}
    assert stats["all"]["train"] + stats["all"]["val"] == 180 and stats["squat"]["no_correction"] == 60
    assert stats["all"]["abstain_rate"] == 0 and stats["tree"]["mean_score"] == 80
