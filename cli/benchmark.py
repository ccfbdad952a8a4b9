"""`motioncoach benchmark`: base, student and teacher scored on a human-labelled suite, here."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from motioncoach.errors import MotionCoachError

SuiteOption = Annotated[
    str,
    typer.Option(
        help="A benchmark: a folder with benchmark.jsonl and its images, a folder of photos sorted into one "
        "sub-folder per verdict (with --form-ok-folder), or 'exact' (ExAct's sports and dance, from the Hub).",
        show_default=False,
    ),
]
TeacherOption = Annotated[
    str,
    typer.Option(
        help="The teacher to score beside the models: gemini, openrouter (paid once: answers are kept in "
        "--data-dir), rules (offline, form items only) or none."
    ),
]


def benchmark(
    suite: SuiteOption,
    adapter: Annotated[
        str | None,
        typer.Option(
            help="The student: a LoRA adapter or merged model directory, or a Hub repo (default: ./lora-adapter)."
        ),
    ] = None,
    base_model: Annotated[str | None, typer.Option(help="The base model, when the adapter does not record it.")] = None,
    teacher: TeacherOption = "none",
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object: the metrics per model.")] = False,
    data_dir: Annotated[Path, typer.Option(help="Where suites are built and teacher answers kept.")] = Path("./data"),
    form_ok_folder: Annotated[
        str | None, typer.Option(help="With a folder of photos by verdict: the sub-folder of correct form.")
    ] = None,
    activity: Annotated[str | None, typer.Option(help="With --form-ok-folder: the activity the photos show.")] = None,
    max_cost: Annotated[
        float | None, typer.Option(min=0, help="Stop before the teacher's spend (USD) passes it.")
    ] = None,
    gemini_model: Annotated[str, typer.Option(help="Gemini model id.")] = "gemini-3-flash-preview",
    openrouter_model: Annotated[str, typer.Option(help="OpenRouter model id.")] = "google/gemma-3-27b-it:free",
    max_new_tokens: Annotated[int, typer.Option(min=1, help="Tokens each model answer may use.")] = 1024,
    batch_size: Annotated[int, typer.Option(min=1, help="Prompts per model call.")] = 4,
) -> None:
    """Score base, student and teacher on the same human-labelled items (mcq_accuracy, error_recall,
    error_precision, says_ok_rate, with 95% intervals)."""
    from motioncoach.benchmarks.release import TEACHERS
    from motioncoach.benchmarks.resolve import resolve_suite
    from motioncoach.benchmarks.run import ANSWERS_FILE
    from motioncoach.config import LabelConfig
    from motioncoach.runtime import resolve_dir

    try:
        if teacher not in TEACHERS:
            raise MotionCoachError(f"--teacher {teacher}: choose one of {', '.join(TEACHERS)}")
        labeling = LabelConfig(
            labeler=teacher if teacher in ("gemini", "openrouter") else "rules", max_cost=max_cost,
            gemini_model=gemini_model, openrouter_model=openrouter_model,
        )  # fmt: skip
        if teacher in ("gemini", "openrouter"):
            from motioncoach.teachers.keys import check_keys
            from motioncoach.teachers.labeling import check_label_config

            check_keys(teacher)
            check_label_config(labeling)
        data = resolve_dir(data_dir)
        found = resolve_suite(suite, data, form_ok_folder=form_ok_folder, activity=activity)
        report = _score(found.root, adapter, base_model, teacher, labeling, data / ANSWERS_FILE,
                        max_new_tokens, batch_size)  # fmt: skip
    except MotionCoachError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from None
    saved = data / "benchmarks" / "reports" / f"{report.suite}.json"
    saved.parent.mkdir(parents=True, exist_ok=True)
    saved.write_text(report.model_dump_json(indent=2) + "\n")
    typer.echo(_table(report), err=True)
    typer.echo(f"every answer: {saved}", err=True)
    if as_json:
        typer.echo(json.dumps(report.summary()))


def _score(suite_dir, adapter, base_model, teacher, labeling, store, max_new_tokens, batch_size):
    from motioncoach.benchmarks.release import answer_models, answer_teacher, join_halves
    from motioncoach.benchmarks.run import BenchmarkSettings
    from motioncoach.serving.models import release_pose_weights, student_and_base

    student = student_and_base(adapter, base_model)
    settings = BenchmarkSettings(
        max_new_tokens=max_new_tokens, batch_size=batch_size, max_pixels=student.max_pixels if student else 1003520,
        pose_weights=release_pose_weights(student.choice if student else None),
    )  # fmt: skip
    models = {"poses": {}, "answers": {}, "served_as": {}}
    if student is not None:
        models = answer_models({
            "suite_dir": str(suite_dir), "base_model": student.base, "adapter_dir": student.adapter,
            "merged_dir": student.merged, "engine": "transformers", "settings": settings.model_dump(),
            "roles": student.roles,
        })  # fmt: skip
    halves = None
    if teacher != "none":
        request = {"suite_dir": str(suite_dir), "teacher": teacher, "labeling": labeling.model_dump(mode="json")}
        halves = answer_teacher(request, models["poses"], store)
    return join_halves(suite_dir, models, halves, teacher)


def _table(report) -> str:
    """The headline metrics, one line per model, for people."""
    lines = [f"{report.suite}: {report.items} items ({report.counts.get('mcq', 0)} multiple choice, "
             f"{report.counts.get('form_ok', 0)} form); {report.license}".rstrip("; ")]  # fmt: skip
    for row in report.table():
        cells = [f"{k} {row[k]:.3f} [{row[k + '_95']}]" for k in ("mcq_accuracy", "error_recall", "error_precision",
                                                                    "says_ok_rate") if row[k] is not None]  # fmt: skip
        chance = f" (chance {row['chance']:.2f})" if row["chance"] is not None else ""
        lines.append(f"  {row['model']:8} " + ", ".join(cells) + chance)
    if report.teacher_cost_usd or report.teacher_requests:
        lines.append(f"  teacher: answers bought for ${report.teacher_cost_usd:.4f}; this run sent "
                     f"{report.teacher_requests} requests (${report.teacher_spent_usd:.4f})")  # fmt: skip
    if report.stop_reason:
        lines.append(f"  teacher stopped: {report.stop_reason}")
    return "\n".join(lines)
