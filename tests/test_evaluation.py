"""Evaluation of a real adapter: a tiny Qwen3-VL fine-tuned by MS-Swift, answering the validation
split with and without its LoRA, next to the rules labeler; then the whole release as Prefect tasks.
"""

from __future__ import annotations

import json
import shutil

import pytest
from prefect import flow

from motioncoach.config import Profile
from motioncoach.dataset import read_jsonl
from motioncoach.evaluation import (
    ANSWERS_FILE,
    EVAL_FILE,
    EvalReport,
    GateConfig,
    decide,
    load_items,
    run_evaluation,
)
from motioncoach.labels.grounding import grounding_problems
from motioncoach.publish import CARD_FILE, LINEAGE_FILE, ReleaseConfig
from motioncoach.training.session import TrainedAdapter
from tasks.benchmark import benchmark_release, find_suite
from tasks.evaluate import eval_config_for, release_gate, score_with_people
from tasks.evaluate import evaluate_adapter as evaluate_task
from tasks.hub import forward_state, hub_preflight, release_state, upload_adapter, upload_dataset, write_release
from tasks.publish import place_adapter
from tasks.storage import persist_in
from tests.fakes.hub import FakeHub
from tests.release_data import build_release_data, tiny_adapter

HF_VARIABLES = ("HF_TOKEN", "HF_ADAPTER_REPO_ID", "HF_DATASET_REPO_ID", "HF_ENDPOINT")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, place_tiny_model):
    """The release data dir, and a LoRA adapter of the tiny Qwen3-VL trained on it."""
    data = build_release_data(tmp_path_factory.mktemp("evaluation"))
    return data, tiny_adapter(data.data_dir, place_tiny_model(data.data_dir / "models" / "tiny-qwen3-vl"))


def test_validation_rows_take_their_pose_from_the_yolo_cache_or_the_prompt(tmp_path):
    data = build_release_data(tmp_path)
    items, skipped = load_items(data.splits.val.path, data.data_dir)
    assert not skipped and {i.pose_from for i in items} == {"yolo_cache"}
    by_sha = {s.sha256: s for s in data.samples}
    assert all(item.sample.keypoints == by_sha[item.sample.sha256].keypoints for item in items)

    (data.data_dir / "yolo_cache.json").unlink()
    rebuilt, _ = load_items(data.splits.val.path, data.data_dir)
    for item, original in zip(rebuilt, items, strict=True):
        assert item.pose_from == "prompt" and (item.sample.width, item.sample.height) == (
            original.sample.width,
            original.sample.height,
        )
        assert set(item.sample.confident()) == set(original.sample.confident())
        assert not grounding_problems(item.teacher, item.sample)  # the teacher's label is grounded either way

    broken = tmp_path / "broken.jsonl"
    row = read_jsonl(data.splits.val.path)[0]
    row["messages"][2]["content"] = "{not json"
    broken.write_text(json.dumps(row) + "\n")
    assert load_items(broken, data.data_dir) == ([], ["row 1: the teacher's label does not parse (1 errors)"])


def test_base_adapter_and_rules_rows_on_a_real_tiny_adapter(tiny, tmp_path):
    data, trained = tiny
    # The plain entry a Modal function calls: a JSON request in, eval.json and the gallery out.
    result = run_evaluation(
        {
            "base_model": trained.config.base_model,
            "adapter_dir": str(trained.checkpoint),
            "val_path": str(data.splits.val.path),
            "data_dir": str(data.data_dir),
            "config": {"max_new_tokens": 8, "max_pixels": trained.config.max_pixels, "gallery_images": 2},
            "out_dir": str(tmp_path),
        }
    )
    report = EvalReport.model_validate(json.loads(json.dumps(result)))  # what crosses the wire reads back
    assert [m.model for m in report.models] == ["base", "adapter", "rules"]
    assert len(report.rows) == data.splits.val.rows == report.val_rows and not report.skipped
    assert all(isinstance(row.answers[m], str) for row in report.rows for m in ("base", "adapter"))
    rules = report.metrics("rules")
    # The teacher here is the rules labeler and the pose comes from the YOLO cache: the baseline row is exact.
    assert (rules.schema_valid_rate, rules.grounded_rate, rules.agreement, rules.score_mae) == (1.0, 1.0, 1.0, 0.0)
    # A random model cannot write an 8-token label, so the gate keeps this adapter off the Hub.
    assert report.metrics("base").schema_valid_rate == report.metrics("adapter").schema_valid_rate == 0.0
    decision = decide(report, GateConfig())
    assert not decision.passed and "schema_valid_rate 0.000 vs base 0.000" in decision.reason

    saved = json.loads((tmp_path / EVAL_FILE).read_text())
    assert saved == report.summary() and [m["model"] for m in saved["models"]] == ["base", "adapter", "rules"]
    assert len(read_jsonl(tmp_path / ANSWERS_FILE)) == len(report.rows)
    pngs = sorted((tmp_path / "gallery").glob("*.png"))
    assert len(pngs) == 2 and all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)


def _loud(checkpoint, dest):
    """The adapter with its LoRA B weights scaled up, so that its greedy answers leave the base model's."""
    import torch
    from safetensors.torch import load_file, save_file

    shutil.copytree(checkpoint, dest)
    weights = load_file(dest / "adapter_model.safetensors")
    save_file({k: v * 300 if "lora_B" in k else v for k, v in weights.items()}, dest / "adapter_model.safetensors")
    assert any(torch.count_nonzero(v) for k, v in weights.items() if "lora_B" in k)  # trained: B is not zero
    return dest


def test_the_base_answers_of_the_evaluation_and_the_benchmark_are_the_base_models_own(tiny, tmp_path):
    """Through the evaluation's and the benchmark's own path (not PEFT's switch called here): the base
    answers as the base model alone does, while the adapter answers otherwise."""
    from motioncoach.benchmarks.questions import MCQ_SYSTEM, mcq_question
    from motioncoach.benchmarks.release import answer_models
    from motioncoach.benchmarks.suite import BenchmarkItem, SuiteInfo, write_suite
    from motioncoach.evaluation import EvalConfig, evaluate_adapter
    from motioncoach.serving.answer import answer_prompts
    from motioncoach.serving.backends import TransformersBackend
    from motioncoach.serving.prompt import Prompt

    data, trained = tiny
    loud = _loud(trained.checkpoint, tmp_path / "loud")
    config = EvalConfig(max_new_tokens=6, batch_size=2, max_pixels=trained.config.max_pixels, gallery_images=0)
    report = evaluate_adapter(trained.config.base_model, loud, data.splits.val.path, data.data_dir, config)
    items, _ = load_items(data.splits.val.path, data.data_dir)
    alone = TransformersBackend(trained.config.base_model, max_new_tokens=6, batch_size=2)
    base_only = {
        a.key: a.text
        for a in answer_prompts(alone, [i.prompt(config.max_pixels) for i in items], [i.sample for i in items])
    }
    assert {row.key: row.answers["base"] for row in report.rows} == base_only
    assert any(row.answers["adapter"] != row.answers["base"] for row in report.rows)  # the adapter is on for it

    (tmp_path / "suite").mkdir()
    shutil.copyfile(data.data_dir / items[0].key, tmp_path / "suite" / "p.png")
    item = BenchmarkItem(id="q", image="p.png", activity="standing", source="a coach",
                         choices=["Lift the chin", "Bend the knees"], answer=0)  # fmt: skip
    suite = write_suite(tmp_path / "suite", [item], SuiteInfo(name="one"))
    settings = {"max_new_tokens": 6, "batch_size": 2, "max_pixels": config.max_pixels}
    asked = answer_models({"suite_dir": str(suite.root), "base_model": trained.config.base_model,
                           "adapter_dir": str(loud), "settings": settings})  # fmt: skip
    question = Prompt(key="q", system=MCQ_SYSTEM, user=mcq_question(item), image=suite.image_path(item),
                      max_pixels=config.max_pixels)  # fmt: skip
    assert asked["answers"]["base"][0]["text"] == alone.generate([question])[0]
    assert asked["answers"]["adapter"][0]["text"] != asked["answers"]["base"][0]["text"]


@flow(name="release-under-test")
def _release(trained: TrainedAdapter, data_dir, adapter_dir, release: ReleaseConfig):
    """The release half of the finetune flow, as flows/finetune.py wires it after training."""
    from motioncoach.dataset import load_split

    hub_preflight(release)
    splits = load_split(data_dir)
    placed = place_adapter(trained, adapter_dir)
    config = eval_config_for(Profile.local, trained).model_copy(update={"max_new_tokens": 8})
    report = persist_in(data_dir, evaluate_task)(trained, splits, Profile.local, data_dir, config)
    report = score_with_people(report, data_dir)
    scored = None
    if release.benchmark:
        suite = find_suite(release.benchmark, data_dir)
        scored = persist_in(data_dir, benchmark_release)(trained, suite, "rules", Profile.local, data_dir)
    decision = release_gate(report, release.gate, scored, required=bool(release.benchmark))
    lineage = write_release(trained, splits, report, decision, release, placed, data_dir, scored)
    if release.push_dataset:
        lineage = upload_dataset(lineage, splits, release, placed, data_dir)
    status = upload_adapter(lineage, release, placed)
    return release_state(status, placed)


@flow(name="pipeline-under-test")
def _pipeline(trained: TrainedAdapter, data_dir, adapter_dir, release: ReleaseConfig):
    """As motioncoach-pipeline ends: in the state its finetune subflow ended in."""
    return forward_state(_release(trained, data_dir, adapter_dir, release, return_state=True))


def test_release_runs_as_prefect_tasks_gated_then_published(tiny, tmp_path, monkeypatch, task_states):
    data, trained = tiny
    for name in HF_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    adapter_dir = tmp_path / "lora-adapter"
    state = _pipeline(trained, data.data_dir, adapter_dir, ReleaseConfig(), return_state=True)
    assert state.is_completed() and state.name == "Kept local" and state.result() == adapter_dir
    assert "HF_ADAPTER_REPO_ID is not set" in state.message
    for name in ("adapter_model.safetensors", CARD_FILE, EVAL_FILE, LINEAGE_FILE, "loss.png"):
        assert (adapter_dir / name).is_file(), name
    lineage = json.loads((adapter_dir / LINEAGE_FILE).read_text())
    assert lineage["hub"]["status"] == "skipped" and not lineage["gate"]["passed"]
    card = (adapter_dir / CARD_FILE).read_text()
    assert "| rules | 1.000 | 1.000 | 1.000 | 0.000 | 1.000 | 1.000 | 1.000 |" in card
    assert list((adapter_dir / "gallery").glob("*.png"))

    with FakeHub() as hub:
        monkeypatch.setenv("HF_TOKEN", hub.token)
        monkeypatch.setenv("HF_ADAPTER_REPO_ID", "tester/motioncoach-lora")
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        release = ReleaseConfig(gate=GateConfig(enabled=False), push_dataset=True)
        again = _release(trained, data.data_dir, adapter_dir, release, return_state=True)
        assert again.is_completed() and again.name == "Published", again.message
        assert task_states(again.state_details.flow_run_id)["evaluate-adapter"] == "Cached"
        uploaded = hub.repo("tester/motioncoach-lora").files
        assert {"adapter_model.safetensors", CARD_FILE, EVAL_FILE} <= set(uploaded)
        assert b"gate disabled" in uploaded[CARD_FILE] and b"- tester/motioncoach-lora-dataset" in uploaded[CARD_FILE]
        assert "train.jsonl" in hub.repo("tester/motioncoach-lora-dataset", kind="dataset").files
    lineage = json.loads((adapter_dir / LINEAGE_FILE).read_text())
    assert lineage["hub"]["status"] == "uploaded" and lineage["dataset_hub"]["status"] == "uploaded"
    assert hub.token not in (adapter_dir / LINEAGE_FILE).read_text()
    shutil.rmtree(adapter_dir)


def test_the_release_records_what_people_judged_beside_the_teacher(tiny, tmp_path, monkeypatch):
    """Verdicts on the validation labels make a human-verified subset; a required benchmark joins the gate;
    the card shows the student beside its base and its teacher on what people said."""
    from prefect.artifacts import Artifact

    from motioncoach.audit import AuditBook, candidates_in, verdicts_from_entries
    from motioncoach.benchmarks.suite import BenchmarkItem, SuiteInfo, write_suite

    data, trained = tiny
    for name in HF_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    val = {row["images"][0].split("/")[1].split(".")[0] for row in read_jsonl(data.splits.val.path)}
    book = AuditBook.read(data.data_dir)
    approved = [{"id": c.sha256, "verdict": "approve"} for c in candidates_in(data.data_dir) if c.sha256 in val]
    book.record(data.data_dir, verdicts_from_entries(approved, candidates_in(data.data_dir), "coach-anna"))
    photo = next(p for p in (data.data_dir / "images").iterdir() if p.stem in val)
    (tmp_path / "suite").mkdir()
    shutil.copyfile(photo, tmp_path / "suite" / photo.name)
    common = {"image": photo.name, "activity": "standing", "source": "a coach"}
    suite = write_suite(tmp_path / "suite", [
        BenchmarkItem(id="q", choices=["Stand tall", "Sit down"], answer=0, **common),
        BenchmarkItem(id="f", form_ok=True, **common),
    ], SuiteInfo(name="one-photo", license="CC0"))  # fmt: skip
    adapter_dir = tmp_path / "lora-adapter"
    release = ReleaseConfig(gate=GateConfig(min_rows=1), benchmark=str(suite.root))
    state = _release(trained, data.data_dir, adapter_dir, release, return_state=True)
    assert state.is_completed() and state.name == "Kept local"
    lineage = json.loads((adapter_dir / LINEAGE_FILE).read_text())
    assert lineage["audit"]["approved"] == lineage["audit"]["audited"] == len(approved) > 0
    assert lineage["audit"]["verified_val_rows"] == len(val) and [m["model"] for m in lineage["people"]] == [
        "base", "adapter", "rules",
    ]  # fmt: skip
    people = json.loads(Artifact.get("evaluation-people").data)
    assert [row["model"] for row in people] == ["base", "adapter", "rules"] and people[2]["agreement"] == 1.0
    bench = lineage["benchmark"]
    assert set(bench["models"]) == {"base", "adapter", "teacher"} and bench["license"] == "CC0"
    assert bench["models"]["teacher"]["mcq_accuracy"] is None  # the rules answer no multiple choice
    assert [c["metric"] for c in lineage["gate"]["comparisons"]][-1].startswith("benchmark one-photo: ")
    card = (adapter_dir / CARD_FILE).read_text()
    assert f"people approved {len(approved)} of {len(approved)} audited teacher labels (pass rate 1.00)" in card
    assert "**Benchmark one-photo** (2 human-labelled items: 1 multiple choice, 1 form; CC0)" in card
    assert "| teacher | n/a |" in card and "| base | " in card and "| adapter | " in card
    assert [row["model"] for row in json.loads(Artifact.get("benchmark").data)] == ["base", "adapter", "teacher"]


# ---- Metrics and the gate on answers whose scores are counted by hand ----


def _teacher_with_a_correction():
    """A rules label with one correction, major or intermediate, on a real detected pose."""
    from motioncoach.labels import RulesLabeler
    from tests.real_poses import all_poses

    for _, sample in all_poses():
        for activity in ("squat", "plank", "warrior2", "russian twist", "lunges"):
            posed = sample.model_copy(update={"activity": activity})
            label = RulesLabeler().label(posed)
            points = label.feedback_points
            if len(points) == 1 and points[0].severity in ("major", "intermediate"):
                return posed, label
    raise AssertionError("no real pose gives the rules labeler one major or intermediate correction")


def test_metrics_over_mixed_answers_are_the_shares_counted_by_hand():
    from motioncoach.evaluation.score import score_answer, summarize
    from motioncoach.labels import CoachingLabel

    sample, teacher = _teacher_with_a_correction()
    as_dict = json.loads(teacher.to_json())
    lower = {**as_dict, "progress_score": teacher.progress_score - 10}
    lighter = json.loads(teacher.to_json())
    lighter["feedback_points"][0]["severity"] = "minor"
    for answer in (lower, lighter):
        CoachingLabel.model_validate(answer)  # both are labels a teacher could have written
    answers = [
        teacher.to_json(),  # the teacher's own label: agrees on everything
        json.dumps(lower),  # the same corrections, scored 10 lower: read as the app scores them, no error
        json.dumps(lighter),  # the same joint and side, another severity
        '{"status": "success"}',  # JSON, not a label
        "Your form looks fine to me.",  # not JSON
    ]
    scores = [score_answer(text, teacher, sample) for text in answers]
    metrics = summarize("adapter", scores)
    assert (metrics.rows, metrics.json_valid_rate, metrics.schema_valid_rate, metrics.grounded_rate) == (
        5,
        0.8,
        0.6,
        0.6,
    )
    # Only the lighter severity moves the app's score: the app takes 12 for a major, 5 for an intermediate, 2
    # for a minor, so a major or intermediate read as minor moves it by 10 or 3.
    lighter_error = {"major": 10, "intermediate": 3}[teacher.feedback_points[0].severity]
    assert [s.score_error for s in scores[:3]] == [0, 0, lighter_error]
    assert metrics.score_mae == round(lighter_error / 3, 2)
    assert (metrics.focus_joint_agreement, metrics.side_agreement, metrics.agreement) == (0.6, 0.6, 0.6)
    assert metrics.severity_agreement == 0.4  # the lighter correction no longer agrees
    assert scores[2].severity == "minor" and scores[3].problem and scores[4].json_valid is False


def _report_of(pairs: list[tuple[bool, bool]]) -> EvalReport:
    """An evaluation whose rows differ only in whether the adapter's and the base model's answers are valid."""
    from motioncoach.evaluation.config import EvalConfig
    from motioncoach.evaluation.report import RowResult
    from motioncoach.evaluation.score import AnswerScore, summarize
    from tests.real_poses import all_poses

    sample = all_poses()[0][1]

    def score(valid: bool) -> AnswerScore:
        return AnswerScore(json_valid=valid, schema_valid=valid, grounded=valid, joint_agrees=valid, side_agrees=valid)

    rows = [
        RowResult(
            key=f"images/{i}.png",
            image=f"images/{i}.png",
            sample=sample,
            teacher="{}",
            answers={},
            scores={"adapter": score(a), "base": score(b)},
        )  # fmt: skip
        for i, (a, b) in enumerate(pairs)
    ]
    models = [summarize(m, [r.scores[m] for r in rows]) for m in ("base", "adapter")]
    return EvalReport(base_model="base", adapter="adapter", config=EvalConfig(), val_rows=len(rows), models=models,
                      rows=rows)  # fmt: skip


def test_the_gate_interval_is_the_spread_a_paired_bootstrap_gives_on_varied_rows():
    """40 rows: the adapter alone is right on 15, the base alone on 5, both or neither on 20. The mean
    difference is 10/40 = 0.25; the per-row differences have variance 20/40 - 0.25^2 = 0.4375, so the
    standard error is sqrt(0.4375 / 40) = 0.105 and a 95% interval spans about 0.25 +- 0.205."""
    pairs = [(True, False)] * 15 + [(False, True)] * 5 + [(True, True)] * 10 + [(False, False)] * 10
    decision = decide(_report_of(pairs), GateConfig(min_rows=20))
    for comparison in decision.comparisons:
        low, high = comparison["interval"]
        assert comparison["difference"] == 0.25
        assert 0.0 < low < 0.1 and 0.4 < high < 0.5, comparison  # within a bootstrap's noise of 0.045 to 0.455
    assert decision.passed and "over 40 rows" in decision.reason

    # 8 rows each way and 24 ties: no lead at all, and an interval that straddles zero on both sides.
    even = decide(_report_of([(True, False)] * 8 + [(False, True)] * 8 + [(True, True)] * 24), GateConfig(min_rows=20))
    low, high = even.comparisons[0]["interval"]
    assert even.comparisons[0]["difference"] == 0.0 and low < -0.1 and high > 0.1
    assert not even.passed and "does not beat the base model" in even.reason


def test_the_gate_needs_min_rows_rows_and_decides_at_exactly_that_many():
    """An adapter right where the base model is wrong on every row: passed at 20 rows with min_rows=20, and
    refused at 19 (too few to tell the models apart), naming the rule."""
    at_the_limit = decide(_report_of([(True, False)] * 20), GateConfig(min_rows=20))
    assert at_the_limit.passed and at_the_limit.rows == 20
    one_short = decide(_report_of([(True, False)] * 19), GateConfig(min_rows=20))
    assert not one_short.passed
    assert one_short.reason.startswith("only 19 validation rows were evaluated, fewer than the 20 the gate needs")
