"""Measuring a fine-tuned model before it ships: answers on the validation split, asked through the serving
path, scored against the teacher.

Every module imports cheaply; torch, transformers, peft and vLLM load inside functions.
"""

from motioncoach.evaluation.config import GATE_METRICS, EvalConfig, GateConfig, local_eval_config
from motioncoach.evaluation.evaluate import (
    Generate,
    RulesBackend,
    ScriptedBackend,
    answer_all,
    evaluate_adapter,
    evaluate_items,
    rules_generator,
    score_items,
    write_eval_files,
)
from motioncoach.evaluation.gate import GateDecision, decide
from motioncoach.evaluation.items import EvalItem, load_items
from motioncoach.evaluation.report import ANSWERS_FILE, EVAL_FILE, EvalReport, RowResult, display_path
from motioncoach.evaluation.run import run_evaluation
from motioncoach.evaluation.score import AnswerScore, ModelMetrics, score_answer, summarize
from motioncoach.serving.prompt import Prompt

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
    "Prompt",
    "RowResult",
    "RulesBackend",
    "ScriptedBackend",
    "answer_all",
    "decide",
    "display_path",
    "evaluate_adapter",
    "evaluate_items",
    "load_items",
    "local_eval_config",
    "rules_generator",
    "run_evaluation",
    "score_answer",
    "score_items",
    "summarize",
    "write_eval_files",
]
