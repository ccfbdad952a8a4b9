"""A release on a benchmark: the model half (base and student, where the weights are) and the teacher half
(where the teacher's key is), joined into one report.

On the local profile both halves run here. On Modal the model half runs in a GPU function on the volume
(vLLM serving the merged release) and the teacher half in a function holding the teacher's secret; what
crosses between them is JSON: the request below, the poses, the answers.
"""

from __future__ import annotations

from pathlib import Path

from motioncoach.benchmarks.metrics import BenchmarkReport, ItemAnswer
from motioncoach.benchmarks.run import (
    RULES_KINDS,
    BenchmarkSettings,
    answer_with_model,
    answer_with_rules,
    answer_with_teacher,
    benchmark_report,
    detect_items,
)
from motioncoach.benchmarks.suite import load_suite
from motioncoach.config import LabelConfig
from motioncoach.records import PoseSample
from motioncoach.serving.served import served_models

TEACHERS = ("gemini", "openrouter", "rules", "none")


def poses_to_json(poses: dict[str, PoseSample | str]) -> dict:
    return {k: v if isinstance(v, str) else v.model_dump(mode="json") for k, v in poses.items()}


def poses_from_json(data: dict) -> dict[str, PoseSample | str]:
    return {k: v if isinstance(v, str) else PoseSample.model_validate(v) for k, v in data.items()}


def answer_models(request: dict) -> dict:
    """The model half. request: {"suite_dir", "base_model", "adapter_dir" (or None), "merged_dir" (or None),
    "engine": "transformers" | "vllm", "settings": BenchmarkSettings fields, "roles": ["base", "adapter"]}.
    Returns {"poses", "answers": {role: [ItemAnswer]}, "served_as": {role: text}} as JSON."""
    suite = load_suite(Path(request["suite_dir"]))
    settings = BenchmarkSettings.model_validate(request.get("settings") or {})
    poses = detect_items(suite, settings.pose_weights)
    adapter = Path(request["adapter_dir"]) if request.get("adapter_dir") else None
    roles = set(request.get("roles") or ("base", "adapter"))
    answers, served_as = {}, {}
    for served in served_models(
        str(request["base_model"]), adapter, request.get("merged_dir"), request.get("engine", "transformers"),
        max_new_tokens=settings.max_new_tokens, batch_size=settings.batch_size,
        skip=frozenset({"base", "adapter"} - roles),
    ):  # fmt: skip
        given = answer_with_model(suite, served.backend, poses, settings)
        answers[served.role] = [a.model_dump(mode="json") for a in given.values()]
        served_as[served.role] = served.served_as
    return {"poses": poses_to_json(poses), "answers": answers, "served_as": served_as}


def answer_teacher(request: dict, poses: dict, store_path: Path) -> dict:
    """The teacher half. request: {"suite_dir", "teacher", "labeling": LabelConfig fields}; poses as the model
    half found them (or {} to detect here). Returns {"answers": [ItemAnswer], "pass": {...}} as JSON."""
    suite = load_suite(Path(request["suite_dir"]))
    found = poses_from_json(poses) if poses else detect_items(suite, BenchmarkSettings().pose_weights)
    teacher = request["teacher"]
    if teacher == "rules":
        return {"answers": [a.model_dump(mode="json") for a in answer_with_rules(suite, found).values()], "pass": None}
    config = LabelConfig.model_validate(request.get("labeling") or {})
    answers, result = answer_with_teacher(suite, teacher, config, store_path, found)
    kept = ("requests", "cost_usd", "answers_cost_usd", "from_store", "not_asked", "stop_reason")
    summary = {k: getattr(result, k) for k in kept}
    return {"answers": [a.model_dump(mode="json") for a in answers.values()], "pass": summary}


def join_halves(suite_dir: Path, models: dict, teacher: dict | None, teacher_name: str) -> BenchmarkReport:
    """The report of both halves."""
    from motioncoach.benchmarks.teacher import TeacherPass

    suite = load_suite(suite_dir)
    answers = {
        role: {a["item"]: ItemAnswer.model_validate(a) for a in given} for role, given in models["answers"].items()
    }
    served_as = dict(models.get("served_as") or {})
    spent = None
    if teacher is not None:
        answers["teacher"] = {a["item"]: ItemAnswer.model_validate(a) for a in teacher["answers"]}
        served_as["teacher"] = teacher_name
        spent = TeacherPass(**teacher["pass"]) if teacher.get("pass") else None
    kinds = {"teacher": RULES_KINDS} if teacher_name == "rules" else None
    order = {name: answers[name] for name in ("base", "adapter", "teacher") if name in answers}
    return benchmark_report(suite, order, kinds=kinds, served_as=served_as, teacher=spent)
