"""The lineage record of a run: sources, filter yield, labelers, cost, training, evaluation, and
where the adapter went. Written as lineage.json; the markdown artifact and the model card are
rendered from it. Everything is read from what the pipeline left in the data dir, so the record
is the same whether `motioncoach run` or a later `motioncoach train` makes it.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter, defaultdict
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from pydantic import BaseModel, Field

from motioncoach.dataset import SplitSummary, read_jsonl
from motioncoach.evaluation.gate import GateDecision
from motioncoach.evaluation.report import EvalReport, display_path
from motioncoach.evaluation.score import ModelMetrics
from motioncoach.labels.schema import SCHEMA_VERSION
from motioncoach.labels.store import LABELS_FILE
from motioncoach.modal_release import read_modal_adapter
from motioncoach.pose.cache import CACHE_FILE_NAME
from motioncoach.publish.hub import HubStatus
from motioncoach.publish.rendering import render_lineage_markdown
from motioncoach.publish.sources import SourceSummary, summarize_sources
from motioncoach.serving.merge import ADAPTER_WEIGHTS, LoraPlacement, lora_placement
from motioncoach.serving.release import LINEAGE_FILE
from motioncoach.serving.vllm import MAX_MODEL_LEN, VLLM_VERSION
from motioncoach.teachers.request import asked_version
from motioncoach.teachers.store import STORE_FILE
from motioncoach.training.base_model import hub_model_id
from motioncoach.training.checkpoints import RunDirState, run_dir_state
from motioncoach.training.session import TrainedAdapter


class FilterYield(BaseModel):
    """What the YOLO pose filter kept, under the settings the dataset's images were kept with."""

    seen: int
    kept: int
    rejected: int
    reasons: dict[str, int] = Field(description="Rejections by reason.")
    by_activity: dict[str, dict[str, int]]

    @property
    def rate(self) -> float:
        return self.kept / self.seen if self.seen else 0.0


class LabelerSummary(BaseModel):
    """One labeler's outcomes in the last labeling run."""

    labeler: str
    model_id: str
    labeled: int = 0
    abstained: int = Field(0, description="Of the labeled: photos the labeler found it cannot coach (low_confidence).")
    failed: int = 0
    deferred: int = 0
    disagreed: int = 0
    rejected: int = Field(0, description="Labels people rejected in the audit: kept out of the dataset.")


class TeacherCost(BaseModel):
    """Spend recorded in the label store for the current prompts, per teacher model."""

    teacher: str
    model_id: str
    labels: int
    input_tokens: int
    output_tokens: int
    cost_usd: float


class DatasetSummary(BaseModel):
    rows: int
    train_rows: int
    val_rows: int
    train_sha256: str
    val_sha256: str
    activities: dict[str, int]


class TrainingSummary(BaseModel):
    base_model: str = Field(description="A Hub id, or a directory shown relative to the data dir.")
    config: dict
    run: str
    checkpoint: str
    eval_loss: float | None
    steps: int | None
    effective_batch_size: int


class ServingSummary(BaseModel):
    """How the release is served, and why the merged model is the one to serve."""

    placement: LoraPlacement | None = Field(description="LoRA modules per part of the model, from the tensor names.")
    served_as: str = Field(description="What answered as the fine-tuned model in the evaluation.")
    merged: str | None = Field(None, description="The merged release (base + LoRA folded in), where it is.")
    vllm_version: str = Field(VLLM_VERSION, description="The vLLM the serving image pins (it has the tower flag).")
    max_model_len: int = Field(MAX_MODEL_LEN, gt=0, description="The context the release is served with.")


class PoseModel(BaseModel):
    """The pose weights the dataset's photos were filtered with: what `coach` and `serve` must detect with."""

    weights: str
    sha256: str


class Lineage(BaseModel):
    """Everything a user of the adapter may want to know about how it was made."""

    created_at: str
    motioncoach_version: str
    prompt_version: str
    schema_version: str
    sources: list[SourceSummary]
    pose_filter: FilterYield | None
    pose: PoseModel | None = Field(None, description="The pose model the dataset was filtered with.")
    labelers: list[LabelerSummary]
    agreement_rate: float | None = Field(description="Consensus: share of labeled images both teachers agree on.")
    cost: list[TeacherCost]
    total_cost_usd: float
    dataset: DatasetSummary
    training: TrainingSummary
    evaluation: list[ModelMetrics]
    eval_rows: int
    people: list[ModelMetrics] = Field(
        default_factory=list, description="Each model on the validation rows whose label people approved."
    )
    audit: dict | None = Field(None, description="What people found of the teacher's labels, pass rate included.")
    benchmark: dict | None = Field(None, description="Base, student and teacher on a human-labelled benchmark.")
    gate: GateDecision
    adapter_dir: str
    hub: HubStatus
    dataset_hub: HubStatus | None = None
    serving: ServingSummary | None = None
    merged_hub: HubStatus | None = None
    run_dir: RunDirState | None = Field(None, description="What the training run left where it ran (the volume).")

    def write(self, dest_dir: Path) -> Path:
        path = Path(dest_dir) / LINEAGE_FILE
        path.write_text(self.model_dump_json(indent=2) + "\n")
        return path

    def to_markdown(self) -> str:
        """The record for people: the Prefect artifact, and the heart of the model card."""
        return render_lineage_markdown(self)


def build_lineage(
    *,
    data_dir: Path,
    splits: SplitSummary,
    trained: TrainedAdapter,
    report: EvalReport,
    decision: GateDecision,
    adapter_dir: Path,
    hub: HubStatus,
    dataset_hub: HubStatus | None = None,
    label_store: Path | None = None,
    benchmark: dict | None = None,
) -> Lineage:
    """Assemble the record from the data dir's files and the run's results."""
    data_dir = Path(data_dir)
    rows = read_jsonl(splits.train.path) + read_jsonl(splits.val.path)
    shas = {Path(row["images"][0]).stem for row in rows}
    outcomes = _label_outcomes(data_dir)
    cache = _cache_entries(data_dir)
    paths = [_source_path(sha, outcomes, cache) for sha in sorted(shas)]
    cost = _costs(label_store or data_dir / STORE_FILE)
    return Lineage(
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        motioncoach_version=_version(),
        prompt_version=asked_version(),
        schema_version=SCHEMA_VERSION,
        sources=summarize_sources([p for p in paths if p], data_dir),
        pose_filter=_filter_yield(cache, shas),
        pose=_pose_model(cache, shas),
        labelers=_labelers(outcomes),
        agreement_rate=_agreement(outcomes),
        cost=cost,
        total_cost_usd=round(sum(c.cost_usd for c in cost), 6),
        dataset=DatasetSummary(
            rows=len(rows),
            train_rows=splits.train.rows,
            val_rows=splits.val.rows,
            train_sha256=splits.train.sha256,
            val_sha256=splits.val.sha256,
            activities=dict(sorted(Counter(_activity(row) for row in rows).items())),
        ),
        training=_training(trained, data_dir),
        evaluation=report.models,
        eval_rows=len(report.rows),
        people=report.people,
        audit=report.audit,
        benchmark=benchmark,
        gate=decision,
        adapter_dir=str(adapter_dir),
        hub=hub,
        dataset_hub=dataset_hub,
        serving=_serving(Path(adapter_dir), report, data_dir),
        run_dir=_run_dir(Path(adapter_dir), trained),
    )


def _serving(adapter_dir: Path, report: EvalReport, data_dir: Path) -> ServingSummary:
    """Where the LoRA modules sit (from the adapter's own file, or its package record on the volume) and
    where the merged release is."""
    on_modal = _modal_record(adapter_dir)
    if (adapter_dir / ADAPTER_WEIGHTS).is_file():
        placement = lora_placement(adapter_dir)  # an unreadable weights file fails here, before any upload
    else:
        placement = LoraPlacement.model_validate(on_modal["placement"]) if on_modal.get("placement") else None
    merged = (on_modal.get("merged") or {}).get("path")
    return ServingSummary(placement=placement, served_as=report.served_as, merged=f"/data/{merged}" if merged else None)


def _run_dir(adapter_dir: Path, trained: TrainedAdapter) -> RunDirState | None:
    on_modal = _modal_record(adapter_dir)
    if on_modal.get("run_dir"):
        return RunDirState.model_validate(on_modal["run_dir"])
    return run_dir_state(trained.run_dir) if Path(trained.run_dir).is_dir() else None


def _modal_record(adapter_dir: Path) -> dict:
    return read_modal_adapter(adapter_dir) or {}


def _version() -> str:
    try:
        return metadata.version("motioncoach")
    except metadata.PackageNotFoundError:
        return "dev"


def _activity(row: dict) -> str:
    user = next(m["content"] for m in row["messages"] if m["role"] == "user")
    first = user.replace("<image>", "").splitlines()[0]
    return first.removeprefix("Activity: ").strip()


def _label_outcomes(data_dir: Path) -> list[dict]:
    path = data_dir / LABELS_FILE
    return read_jsonl(path) if path.is_file() else []


def _cache_entries(data_dir: Path) -> dict[str, dict]:
    try:
        return json.loads((data_dir / CACHE_FILE_NAME).read_text(encoding="utf-8"))["entries"]
    except (OSError, ValueError, KeyError):
        return {}


def _source_path(sha: str, outcomes: list[dict], cache: dict[str, dict]) -> Path | None:
    for outcome in outcomes:
        if outcome.get("sha256") == sha and outcome.get("source_path"):
            return Path(outcome["source_path"])
    for key, entry in cache.items():
        if key.startswith(f"{sha}:") and entry.get("source_path"):
            return Path(entry["source_path"])
    return None


def _filter_yield(cache: dict[str, dict], shas: set[str]) -> FilterYield | None:
    """Every image scanned with the settings (fingerprint) the dataset's images were kept with."""
    fingerprints = Counter(key.split(":", 1)[1] for key in cache if key.split(":", 1)[0] in shas and ":" in key)
    if not fingerprints:
        return None
    fingerprint = fingerprints.most_common(1)[0][0]
    entries = [e for key, e in cache.items() if key.endswith(f":{fingerprint}")]
    reasons = Counter(e.get("reason") or "rejected" for e in entries if e.get("outcome") != "kept")
    by_activity: dict[str, Counter] = defaultdict(Counter)
    for entry in entries:
        by_activity[entry.get("activity", "?")]["kept" if entry.get("outcome") == "kept" else "rejected"] += 1
    kept = sum(1 for e in entries if e.get("outcome") == "kept")
    return FilterYield(
        seen=len(entries),
        kept=kept,
        rejected=len(entries) - kept,
        reasons=dict(reasons.most_common()),
        by_activity={a: {"kept": c["kept"], "rejected": c["rejected"]} for a, c in sorted(by_activity.items())},
    )


def _pose_model(cache: dict[str, dict], shas: set[str]) -> PoseModel | None:
    """The weights the dataset's photos were kept by (the YOLO cache names them), with their sha256."""
    from motioncoach.pose.weights import WeightsError, pose_model

    names = Counter(e.get("weights") for key, e in cache.items() if key.split(":", 1)[0] in shas and e.get("weights"))
    if not names:
        return None
    try:
        return PoseModel.model_validate(pose_model(names.most_common(1)[0][0]))
    except (WeightsError, OSError):  # weights named by the cache that are not on this machine, nor known
        return None


def _labelers(outcomes: list[dict]) -> list[LabelerSummary]:
    summaries: dict[tuple[str, str], LabelerSummary] = {}
    for outcome in outcomes:
        key = (outcome.get("labeler", "?"), outcome.get("model_id", "?"))
        summary = summaries.setdefault(key, LabelerSummary(labeler=key[0], model_id=key[1]))
        status = outcome.get("status")
        if status in ("labeled", "failed", "deferred", "disagreed", "rejected"):
            setattr(summary, status, getattr(summary, status) + 1)
        if status == "labeled" and (outcome.get("label") or {}).get("status") == "low_confidence":
            summary.abstained += 1
    return [summaries[k] for k in sorted(summaries)]


def _agreement(outcomes: list[dict]) -> float | None:
    """labeled / (labeled + disagreed) for consensus labels (kept disagreements count as labeled)."""
    consensus = [o for o in outcomes if o.get("labeler") == "consensus" and o.get("status") in ("labeled", "disagreed")]
    if not consensus:
        return None
    return round(sum(1 for o in consensus if o["status"] == "labeled") / len(consensus), 4)


def _costs(path: Path) -> list[TeacherCost]:
    """Spend per teacher model on labels made with the current prompts, read-only from the label store."""
    if not path.is_file():
        return []
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            rows = db.execute(
                "SELECT teacher, model_id, COUNT(*), SUM(input_tokens), SUM(output_tokens), SUM(cost_usd) "
                "FROM labels WHERE prompt_version = ? GROUP BY teacher, model_id ORDER BY teacher, model_id",
                (asked_version(),),
            ).fetchall()
    except sqlite3.Error:
        return []
    return [
        TeacherCost(
            teacher=t, model_id=m, labels=n, input_tokens=i or 0, output_tokens=o or 0, cost_usd=round(c or 0.0, 6)
        )
        for t, m, n, i, o, c in rows
    ]


def _training(trained: TrainedAdapter, data_dir: Path) -> TrainingSummary:
    config = trained.config
    steps = max((p["step"] for p in trained.history), default=None)
    return TrainingSummary(
        base_model=hub_model_id(config.base_model) or display_path(config.base_model, data_dir),
        config={**config.model_dump(mode="json"), "base_model": display_path(config.base_model, data_dir)},
        run=display_path(str(trained.run_dir), data_dir),
        checkpoint=display_path(str(trained.checkpoint), data_dir),
        eval_loss=trained.eval_loss,
        steps=steps,
        effective_batch_size=config.effective_batch_size,
    )
