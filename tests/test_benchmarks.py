"""Human-labelled benchmarks: the format, the loaders (ExAct from the Hub, folders sorted by verdict), the
teacher scored against people (and paid once), and the release gate's "no worse than the base" rule."""

from __future__ import annotations

import json
import shutil

import pytest
from PIL import Image
from typer.testing import CliRunner

from cli.main import app
from motioncoach.benchmarks.metrics import BenchmarkReport, ItemAnswer, ModelScores
from motioncoach.benchmarks.resolve import resolve_suite
from motioncoach.benchmarks.suite import BenchmarkItem, SuiteInfo, load_suite, write_suite
from motioncoach.errors import ConfigurationError
from tests.fakes import GeminiFake
from tests.fakes.server import grounded_label
from tests.photos import single_person_photos

KEY = "fake-gemini-benchmark-secret-0123456789"


def _suite(tmp_path):
    """Four multiple-choice items and six form items on real photos of one person."""
    photos = sorted(single_person_photos(tmp_path / "suite" / "images", 10, activities=("all",)).rglob("*.jpg"))
    root = tmp_path / "suite"
    items = [
        BenchmarkItem(id=f"mcq-{n}", image=str(photos[n].relative_to(root)), activity="squat", source="a coach",
                      choices=[f"item {n}: keep the back flat", f"item {n}: bend the knees", f"item {n}: look up"],
                      answer=n % 3)
        for n in range(4)
    ]  # fmt: skip
    form_ok = [True, True, False, False, False, True]
    items += [
        BenchmarkItem(id=f"form-{n}", image=str(photos[4 + n].relative_to(root)), activity=f"squat {n}",
                      source="a coach", form_ok=ok)
        for n, ok in enumerate(form_ok)
    ]  # fmt: skip
    return write_suite(root, items, SuiteInfo(name="coaches", license="CC-BY-4.0"))


def _teacher(call):
    """Gemini's stand-in: MCQ items 0-2 answered right, item 3 wrong; forms 0-2 called correct, 3-5 corrected."""
    if "Option 1:" in call.prompt:
        n = int(call.prompt.split("Option 1: item ")[1].split(":")[0])
        return json.dumps({"answer": (n % 3) + 1 if n < 3 else ((n + 1) % 3) + 1})
    n = int(call.prompt.split("Activity: squat ")[1].split("\n")[0].split()[0])
    if n < 3:
        return json.dumps({"status": "success", "error_message": None, "positive_note": "Good depth.",
                           "progress_score": 92, "improvement_delta": None, "feedback_points": []})  # fmt: skip
    return grounded_label(call.prompt).to_json()  # an intermediate correction: an error flagged


def test_the_teacher_is_scored_against_people_and_an_unchanged_rerun_pays_nothing(tmp_path, monkeypatch):
    suite = _suite(tmp_path)
    data = tmp_path / "data"
    command = ["benchmark", "--suite", str(suite.root), "--teacher", "gemini", "--json", "--data-dir", str(data)]
    with GeminiFake(api_key=KEY, answer=_teacher) as fake:
        monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", fake.base_url)
        monkeypatch.setenv("GEMINI_API_KEY", KEY)
        monkeypatch.chdir(tmp_path)  # no ./lora-adapter here: the teacher alone is scored
        first = CliRunner().invoke(app, command)
        assert first.exit_code == 0, first.output
        asked = fake.requests
        fake.reset_counters()
        again = CliRunner().invoke(app, command)
    assert asked == 10 and fake.requests == 0  # every item asked once; the rerun answered from the label store
    result, rerun = (json.loads(run.stdout.strip().splitlines()[-1]) for run in (first, again))
    assert (rerun["teacher_requests"], rerun["teacher_spent_usd"], result["teacher_requests"]) == (0, 0.0, 10)
    spent = ("teacher_requests", "teacher_spent_usd")
    assert {k: v for k, v in result.items() if k not in spent} == {k: v for k, v in rerun.items() if k not in spent}
    assert (result["suite"], result["items"], set(result["models"])) == ("coaches", 10, {"teacher"})
    teacher = result["models"]["teacher"]
    assert (teacher["mcq_items"], teacher["mcq_accuracy"], teacher["chance"]) == (4, 0.75, 0.3333)  # 3 of 4 right
    assert teacher["says_ok_rate"] == 0.5  # it called 3 of the 6 forms correct
    assert teacher["error_recall"] == 0.6667 and teacher["error_precision"] == 0.6667  # 2 of 3 faults; 2 of 3 flags
    assert teacher["mcq_interval"][0] < 0.75 < teacher["mcq_interval"][1]
    assert result["license"] == "CC-BY-4.0" and result["teacher_cost_usd"] > 0
    saved = json.loads((data / "benchmarks" / "reports" / "coaches.json").read_text())
    assert {a["item"]: a["choice"] for a in saved["answers"]["teacher"] if a["kind"] == "mcq"} == {
        "mcq-0": 0, "mcq-1": 1, "mcq-2": 2, "mcq-3": 1,  # item 3: its answer is choice 0
    }  # fmt: skip


def test_an_exact_shaped_repo_on_a_stand_in_hub_becomes_a_suite_with_one_frame_per_item(tmp_path, monkeypatch):
    from huggingface_hub import constants
    from skimage import data as samples

    from tests.fakes.hub import FakeHub
    from tests.videos import held

    photo = Image.fromarray(samples.astronaut()).resize((320, 240))
    red, blue = Image.new("RGB", (320, 240), (255, 0, 0)), Image.new("RGB", (320, 240), (0, 0, 255))
    lines = [  # (id, domain, is_ge, video_time, clip): a long clip cut at the comment, a short one at its end
        ("basketball_tips_a_1.5", "basketball", False, 1.5, held(photo, 3, marks={15: red})),
        ("dance_ge_b_27.1", "dance", True, 27.1, held(photo, 2, marks={19: blue})),
        ("cooking_tips_c_3.0", "cooking", False, 3.0, held(photo, 3)),
    ]
    files, metadata = {}, []
    for item_id, domain, good, seconds, clip in lines:
        files[f"data/{item_id}.mp4"] = clip
        metadata.append({"file_name": f"{item_id}.mp4", "id": item_id, "domain": domain, "is_ge": good,
                         "groundTruth": f"{domain}: the expert's comment", "negative_comments": [
                             f"{domain}: distractor {k}" for k in range(4)], "take_name": f"take_{domain}",
                         "video_time": seconds, "task_name": f"{domain} drill"})  # fmt: skip
    files["data/metadata.jsonl"] = "".join(json.dumps(m) + "\n" for m in metadata).encode()
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # the local default: the loader lifts it itself
    with FakeHub() as hub:
        hub.add_dataset("Alexhimself/ExAct", files)
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        suite = resolve_suite("exact", tmp_path / "data")
        downloads = len(hub.downloads)
        assert resolve_suite("exact", tmp_path / "data").items == suite.items and len(hub.downloads) == downloads
    assert [(i.id, i.kind) for i in suite.items] == [
        ("basketball_tips_a_1.5", "mcq"),
        ("basketball_tips_a_1.5-form", "form_ok"),
        ("dance_ge_b_27.1", "mcq"),
        ("dance_ge_b_27.1-form", "form_ok"),
    ]  # fmt: skip  (cooking is no movement a coach judges: left out)
    mcq, form = suite.items[0], suite.items[1]
    assert mcq.choices[mcq.answer] == "basketball: the expert's comment" and len(mcq.choices) == 5
    assert form.form_ok is False and suite.items[3].form_ok is True  # is_ge: a good execution
    assert mcq.image == form.image  # one frame per moment, shared by its two items
    colours = [Image.open(suite.image_path(i)).getpixel((160, 120)) for i in (suite.items[0], suite.items[2])]
    assert colours[0][0] > 200 > colours[0][2] and colours[1][2] > 200 > colours[1][0]  # the marked frames
    assert "Apache-2.0" in suite.info.license and "Ego-Exo4D" in suite.info.license
    assert not (suite.root / ".hub-cache").exists()  # the clips are gone once their frames are cut


def test_photos_sorted_by_verdict_become_form_items(tmp_path):
    source = tmp_path / "kaggle-squat"
    single_person_photos(source / "squat", 4, activities=("correct", "incorrect"))
    (source / "squat" / "incorrect" / "notes.jpg").write_text("not a photo")
    suite = resolve_suite(str(source), tmp_path / "data", form_ok_folder="correct")
    assert sorted((i.activity, i.form_ok) for i in suite.items) == [("squat", False)] * 2 + [("squat", True)] * 2
    assert suite.root == tmp_path / "data" / "benchmarks" / "kaggle-squat" and "1 files" in suite.info.notes
    with pytest.raises(ConfigurationError, match="--form-ok-folder good: no folder of that name"):
        resolve_suite(str(source), tmp_path / "data", form_ok_folder="good")


def test_a_bad_suite_names_every_bad_line(tmp_path):
    root = tmp_path / "suite"
    root.mkdir()
    Image.new("RGB", (8, 8)).save(root / "a.png")
    lines = [
        {"id": "1", "image": "a.png", "activity": "squat", "source": "x", "choices": ["a", "b"], "answer": 2},
        {"id": "2", "image": "missing.png", "activity": "squat", "source": "x", "form_ok": True},
        {"id": "3", "image": "../a.png", "activity": "squat", "source": "x", "form_ok": True},
        {"id": "4", "image": "a.png", "activity": "squat", "source": "x", "form_ok": True, "choices": ["a", "b"]},
    ]
    (root / "benchmark.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    with pytest.raises(ConfigurationError) as refused:
        load_suite(root)
    message = str(refused.value)
    assert "has 4 bad line(s)" in message and "line 1: answer must be the index of one of the 2 choices" in message
    assert "line 2: image 'missing.png' is missing" in message and "line 3: image '../a.png' is not inside" in message
    assert "line 4: an item has either choices" in message


def _answers(kind: str, verdicts: list) -> list[ItemAnswer]:
    if kind == "mcq":
        return [ItemAnswer(item=f"m{n}", kind="mcq", choice=0 if right else 1, correct=right)
                for n, right in enumerate(verdicts)]  # fmt: skip
    return [ItemAnswer(item=f"f{n}", kind="form_ok", verdict=v) for n, v in enumerate(verdicts)]


def test_the_gate_holds_a_student_that_does_worse_than_its_base_on_the_benchmark():
    from motioncoach.benchmarks.gate import benchmark_comparisons

    # Four MCQ items (base right on 3, student on 2) and four forms, the first two faulty.
    base = _answers("mcq", [True, True, True, False]) + _answers("form_ok", ["error", "ok", "ok", "ok"])
    student = _answers("mcq", [True, True, False, False]) + _answers("form_ok", ["error", "error", "ok", "ok"])
    report = BenchmarkReport(
        suite="s", items=8, faulty=["f0", "f1"], answers={"base": base, "adapter": student},
        models={"base": ModelScores(mcq_accuracy=0.75, error_recall=0.5, error_precision=1.0),
                "adapter": ModelScores(mcq_accuracy=0.5, error_recall=1.0, error_precision=1.0)},
    )  # fmt: skip
    compared = {c["metric"].rsplit(": ", 1)[1]: c for c in benchmark_comparisons(report)}
    assert {m: (c["base"], c["adapter"], c["won"]) for m, c in compared.items()} == {
        "mcq_accuracy": (0.75, 0.5, False),  # worse: the gate says no
        "error_recall": (0.5, 1.0, True),
        "error_precision": (1.0, 1.0, True),  # a tie is no worse
    }
    low, high = compared["mcq_accuracy"]["interval"]
    assert low <= -0.25 <= high and compared["mcq_accuracy"]["difference"] == -0.25


def test_metrics_are_null_where_a_model_has_no_items_of_that_kind(tmp_path):
    from motioncoach.benchmarks.metrics import score_model

    items = [BenchmarkItem(id="f0", image="a.png", activity="squat", source="x", form_ok=True)]
    scores = score_model(items, {"f0": ItemAnswer(item="f0", kind="form_ok", verdict="ok")})
    assert (scores.mcq_accuracy, scores.chance, scores.error_recall, scores.error_precision) == (None,) * 4
    assert scores.says_ok_rate == 1.0 and scores.says_ok_interval[1] == 1.0
    shutil.rmtree(tmp_path, ignore_errors=True)
