"""The evaluation as a remote worker (the Modal function) runs it: a JSON-able request in, the report out.

On the modal profile the fine-tuned model is answered as it will be served: the merged release (base and
LoRA folded into one Qwen3-VL, vision tower and mergers included) in vLLM, every validation row in
flight at once; then the base model the same way. Answers are kept as they come, so an evaluation cut
short continues where it stopped. A rehearsal (no GPU) asks the same merged weights in transformers, and
the local profile the base with the adapter applied by PEFT.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from motioncoach.evaluation.answers import LOG_FILE, AnswerLog
from motioncoach.evaluation.config import EvalConfig
from motioncoach.evaluation.evaluate import RulesBackend, answer_all, score_items, write_eval_files
from motioncoach.evaluation.items import load_items
from motioncoach.evaluation.report import display_path
from motioncoach.hashing import file_sha256
from motioncoach.serving.served import served_models
from motioncoach.serving.vllm import VLLM_VERSION


def run_evaluation(request: dict, on_answers: Callable[[], None] | None = None) -> dict:
    """request: {"base_model": id or dir, "adapter_dir": dir, "merged_dir": dir (optional), "engine":
    "vllm" | "transformers", "data_dir": dir, "val_path": file (relative paths are taken inside data_dir),
    "config": EvalConfig fields, "out_dir": where eval.json, eval_answers.jsonl and gallery/ go}.
    Returns the whole EvalReport as JSON (EvalReport.model_validate() reads it back); on_answers is called
    whenever answers were kept (a Modal function commits its volume there)."""
    from motioncoach.evaluation.gallery import GALLERY_DIR, draw_gallery

    data_dir, out_dir = Path(request["data_dir"]), Path(request["out_dir"])
    config = EvalConfig.model_validate(request.get("config") or {})
    val_path = data_dir / request["val_path"]  # an absolute val_path stays as it is
    items, skipped = load_items(val_path, data_dir, config.max_rows)
    base, adapter, merged = request["base_model"], Path(request["adapter_dir"]), request.get("merged_dir")
    engine = request.get("engine", "transformers")
    answers = AnswerLog(
        out_dir / LOG_FILE,
        identity={"val": file_sha256(val_path), "config": config.fingerprint(), "engine": engine, "base": str(base),
                  "adapter": file_sha256(adapter / "adapter_model.safetensors"), "merged": str(merged or "")},
    )  # fmt: skip
    texts: dict[str, dict[str, str]] = {}
    # Roles answered before this attempt are not loaded again (on Modal: no vLLM server to start).
    done = frozenset(role for role in ("adapter", "base") if all(i.key in answers.known(role) for i in items))
    texts |= {role: answers.known(role) for role in done}
    for served in served_models(
        str(base), adapter, merged, engine, max_new_tokens=config.max_new_tokens, batch_size=config.batch_size,
        skip=done, log_dir=out_dir,
    ):  # fmt: skip
        texts[served.role] = answer_all(items, served.role, served.backend, config, answers, on_answers)
    if engine == "vllm":
        served_as = f"the merged release ({display_path(merged, data_dir)}) served by vLLM {VLLM_VERSION}"
    elif merged:
        served_as = f"the merged release ({display_path(merged, data_dir)}) in transformers"
    else:
        served_as = "the base model with the LoRA adapter applied by PEFT, in transformers"
    texts["rules"] = answer_all(items, "rules", RulesBackend(items, config.keypoint_conf), config)
    report = score_items(
        items, texts, config, base_model=display_path(base, data_dir), adapter=display_path(adapter, data_dir),
        served_as=served_as, skipped=skipped,
    )  # fmt: skip
    write_eval_files(report, out_dir)
    draw_gallery(report, out_dir / GALLERY_DIR, report.config.gallery_images)
    return report.model_dump(mode="json")
