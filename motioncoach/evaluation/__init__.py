"""Measuring an adapter before it ships: answers on the validation split, scored against the teacher.

Every module imports cheaply; torch, transformers and peft load inside functions.
"""

from motioncoach.evaluation.config import GATE_METRICS, EvalConfig, GateConfig, local_eval_config
from motioncoach.evaluation.evaluate import (
    ANSWERS_FILE,
    EVAL_FILE,
    EvalReport,
    RowResult,
    evaluate_adapter,
    evaluate_items,
    rules_generator,
    run_evaluation,
    write_eval_files,
)
from motioncoach.evaluation.gate import GateDecision, decide
from motioncoach.evaluation.generate import Generate, PeftGenerators, Prompt, load_generators
from motioncoach.evaluation.items import EvalItem, load_items
from motioncoach.evaluation.score import AnswerScore, ModelMetrics, score_answer, summarize

__all__ = [
    "ANSWERS_FILE",
    "EVAL_FILE",
    "GATE_METRICS",
    "AnswerScore",
    "EvalConfig",
    "EvalItem",
    "EvalReport",
    "GateConfig",
    "GateDecision",
    "Generate",
    "ModelMetrics",
    "PeftGenerators",
    "Prompt",
    "RowResult",
    "decide",
    "evaluate_adapter",
    "evaluate_items",
    "load_generators",
    "load_items",
    "local_eval_config",
    "rules_generator",
    "run_evaluation",
    "score_answer",
    "summarize",
    "write_eval_files",
]
