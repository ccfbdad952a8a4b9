"""finetune: LoRA-train on the split dataset, measure the adapter against its base, ship it if it is better."""

from __future__ import annotations

from pathlib import Path

from prefect import flow
from prefect.runtime import flow_run
from prefect.states import State

from flows.parameters import BenchmarkTeacher, MaxDownloadMb, train_run_name
from motioncoach.config import Profile
from motioncoach.publish import ReleaseSettings, with_release_flags
from motioncoach.runtime import apply_local_defaults, resolve_dir
from tasks.audit import check_audit
from tasks.benchmark import benchmark_release, find_suite
from tasks.evaluate import evaluate_adapter, release_gate, score_with_people
from tasks.hub import hub_preflight, release_state, upload_adapter, upload_dataset, upload_merged, write_release
from tasks.locks import cancel_paid_calls, hold_data_dir, modal_preflight
from tasks.publish import merge_release, place_adapter
from tasks.secrets import ensure_teacher_keys
from tasks.storage import persist_in
from tasks.training import find_split, train_adapter


@flow(
    name="finetune",
    description="Train a LoRA adapter on the dataset in data_dir, evaluate it against its base model and the rules, "
    "place it in adapter_dir with its card, and upload it when it is better.",
    on_cancellation=[cancel_paid_calls],
    on_crashed=[cancel_paid_calls],
    flow_run_name=train_run_name,
)
def finetune(
    data_dir: Path = Path("./data"),
    adapter_dir: Path = Path("./lora-adapter"),
    profile: Profile = Profile.local,
    gate: bool = True,
    push_dataset: bool = False,
    release: ReleaseSettings | None = None,
    max_download_mb: MaxDownloadMb = 2000,
    smoke: bool = False,
    benchmark: str | None = None,
    benchmark_teacher: BenchmarkTeacher = "none",
) -> State:
    """Train a LoRA adapter on the split in data_dir, evaluate it, place it with its card, upload it when it is better.

    Args:
        data_dir: Where images, caches, labels and the dataset live, on the worker's machine.
        adapter_dir: Where the trained LoRA adapter and its card are placed.
        profile: Where heavy steps run: local (the worker) or modal (Modal functions on the volume).
        gate: Upload the adapter only if it beats its base model on validation.
        push_dataset: Also upload the dataset (splits, images, card) to HF_DATASET_REPO_ID.
        release: The gate's rules (metrics, margin, minimum rows) and how uploads are made.
        max_download_mb: On Modal: download the adapter when it is at most this many MB (0 or more); a larger one
            stays on the volume.
        smoke: On Modal: a cheap real run on a small model on two GPUs under two processes, to prove the account,
            the multi-process launch and the checkpoint commits first.
        benchmark: A human-labelled benchmark to score base, student and teacher on after the evaluation: a suite
            folder, or 'exact'. Empty: none (or release.benchmark).
        benchmark_teacher: The teacher the benchmark scores beside the models: gemini, openrouter, rules or none.
    """
    apply_local_defaults()
    release = with_release_flags(release, gate=gate, push_dataset=push_dataset)
    if profile == Profile.modal:
        modal_preflight(data_dir)  # the same readiness checks as `run` and `dataset`, before any GPU
    hub_preflight(release, profile, data_dir)
    data = resolve_dir(data_dir)
    suite_ref = benchmark or release.benchmark
    if suite_ref and profile == Profile.local:
        ensure_teacher_keys(benchmark_teacher if benchmark_teacher in ("gemini", "openrouter") else "rules")
    with hold_data_dir(data, f"finetune run {flow_run.name!r}", profile):
        splits = find_split(data)
        check_audit(release.min_audit_pass_rate, data, profile)  # people rejected too many labels: no GPU is paid
        trained = persist_in(data, train_adapter)(splits, profile, data, smoke)
        placed = place_adapter(trained, Path(adapter_dir).expanduser().resolve(), profile, max_download_mb)
        # On Modal the release is the merged model, and it is what the evaluation measures (served by vLLM).
        merged = merge_release(trained, placed) if profile == Profile.modal else None
        report = persist_in(data, evaluate_adapter)(trained, splits, profile, data, merged=merged)
        report = score_with_people(report, data, profile)
        scored = None
        if suite_ref:
            suite = find_suite(suite_ref, data)
            scored = persist_in(data, benchmark_release)(trained, suite, benchmark_teacher, profile, data, merged)
        decision = release_gate(report, release.gate, scored, required=bool(release.benchmark))
        lineage = write_release(trained, splits, report, decision, release, placed, data, scored)
        if release.push_dataset:
            lineage = upload_dataset(lineage, splits, release, placed, data)
        status = upload_adapter(lineage, release, placed)
        if merged is not None:
            upload_merged(lineage, release, placed, merged)  # HF_MERGED_REPO_ID, when the adapter went up
        return release_state(status, placed)
