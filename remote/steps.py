"""Each pipeline step on Modal, from the client's side: call the deployed function, bring results home.

These are plain functions over a `Remote` (the deployed functions and the volume), so the tasks
stay thin and tests can hand in the app's functions run locally and a volume on disk. What
crosses to Modal is JSON-able: configs and records dumped by pydantic.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from motioncoach.config import LabelConfig, PoseFilterConfig, SourceConfig, SplitConfig, TrainConfig, local_train_config
from motioncoach.dataset import DATASET_FILE, SPLITS_DIR, DatasetFile, SplitSummary
from motioncoach.dataset.rows import refuse_emptying
from motioncoach.errors import ConfigurationError, TrainingError
from motioncoach.evaluation.gallery import GALLERY_DIR
from motioncoach.labels.outcomes import LabelReport
from motioncoach.labels.store import LABELS_FILE
from motioncoach.modal_release import MODAL_ADAPTER_FILE, read_modal_adapter
from motioncoach.pose import PoseFilterReport
from motioncoach.pose.shards import merge_pose_caches, merge_reports, shard_records
from motioncoach.publish import HubConfig, HubStatus
from motioncoach.records import ImageRecord, PoseSample
from motioncoach.sources import source_kind
from motioncoach.sources.samples import assemble_samples
from motioncoach.teachers.relabel import RelabelResult
from motioncoach.teachers.shards import shard_count, shard_samples
from motioncoach.teachers.store import STORE_FILE
from motioncoach.training.checkpoints import ADAPTER_FILES, copy_adapter
from motioncoach.training.session import TrainedAdapter, run_dir_for
from remote.calls import TrainingCalls, watch
from remote.client import Remote, modal_errors, scratch_dir_beside, volume_get_command
from remote.contract import CALL_RECORD, MERGED_DIR
from remote.paid import PaidCalls

logger = logging.getLogger(__name__)

UPLOADS_DIR = "raw/uploads"
RELEASE_FILES = ("README.md", "eval.json", "lineage.json")
TINY_MODEL_ON_VOLUME = "models/tiny-qwen3-vl"
NOT_GENERATED = "(no sample generation on Modal: load the adapter with PEFT or `swift infer --adapters` to try it)"


def find_images(remote: Remote, config: SourceConfig) -> list[ImageRecord]:
    """Download or assemble the source on the volume; a local folder or the samples are uploaded first."""
    kind = source_kind(config.source)
    if kind == "samples":  # photos inside packages installed here (ultralytics' too), not in the CPU image
        with tempfile.TemporaryDirectory() as tmp:
            remote.upload_dir(assemble_samples(Path(tmp)), f"{remote.name}/raw/samples")
    elif kind == "folder":
        folder = Path(config.source).expanduser().resolve()
        remote.upload_dir(folder, f"{remote.name}/{UPLOADS_DIR}/{folder.name}")
        config = config.model_copy(update={"source": f"{UPLOADS_DIR}/{folder.name}"})
    with modal_errors():
        records = remote.function("download_images").remote(config.model_dump(mode="json"), remote.name)
    return [ImageRecord.model_validate(record) for record in records]


def filter_poses(
    remote: Remote,
    records: Sequence[ImageRecord],
    config: PoseFilterConfig,
    local_cache: Path,
    progress: Callable[[int, int], None] | None = None,
) -> PoseFilterReport:
    """Fan the pose filter out over shards (a GPU each), merge their caches on the volume and into local_cache."""
    if remote.rehearsal:  # the shipped yolo11n-pose instead of yolo26x on a GPU
        config = config.model_copy(update={"weights": PoseFilterConfig().weights, "device": None})
    shards = shard_records(records, remote.settings.pose_shards)
    if not shards:
        return merge_reports([])
    done = []

    def shard_done(result: dict) -> None:
        done.append(len(result["report"]["kept"]) + len(result["report"]["rejected"]))
        if progress:
            progress(sum(done), len(records))

    with PaidCalls(remote, "pose filter") as paid:  # a GPU each: cancelled together if the step stops
        calls = [
            paid.spawn("filter_pose_shard", [r.model_dump(mode="json") for r in shard],
                       config=config.model_dump(mode="json"), name=remote.name)
            for shard in shards
        ]  # fmt: skip
        results = paid.as_completed(calls, shard_done)
    with modal_errors():
        merged = remote.function("merge_pose_shards").remote([r["cache"] for r in results], remote.name)
    # The volume's cache joins the local one: entries are keyed by content, weights and thresholds.
    with scratch_dir_beside(local_cache) as tmp:
        merge_pose_caches(local_cache, [remote.fetch(merged, tmp / "remote_cache.json")])
    return merge_reports([PoseFilterReport.model_validate(r["report"]) for r in results])


def label_poses(
    remote: Remote,
    samples: Sequence[PoseSample],
    config: LabelConfig,
    progress: Callable[[int, int], None] | None = None,
) -> LabelReport:
    """Label on Modal, fanned out over containers (the teachers' keys from the gemini-api-key secret);
    every shard's answers are folded into the label store on the volume."""
    shards = shard_samples(samples, shard_count(config, len(samples)))
    if not shards:
        return LabelReport(outcomes=[])
    done = []

    def shard_done(result: dict) -> None:
        done.append(len(result["report"]["outcomes"]))
        if progress:
            progress(sum(done), len(samples))

    # Each shard asks the teacher for hours: a stopped step stops them all (what they stored stays stored).
    with PaidCalls(remote, "labeling") as paid:
        calls = [
            paid.spawn("label_shard", [s.model_dump(mode="json") for s in shard],
                       config=config.model_dump(mode="json"), name=remote.name, shards=len(shards))
            for shard in shards
        ]  # fmt: skip
        results = paid.as_completed(calls, shard_done)
    with modal_errors():
        report = remote.function("merge_label_shards").remote(
            [s.model_dump(mode="json") for s in samples], results, remote.name
        )
    return LabelReport.model_validate(report)


def write_dataset(remote: Remote, labels: LabelReport, split: SplitConfig, data_dir: Path) -> SplitSummary:
    """Write the dataset and split on the volume, then copy pose_dataset.jsonl and splits/ into data_dir."""
    labeled = [o.model_dump(mode="json") for o in labels.labeled]
    with modal_errors():
        files = remote.function("write_dataset").remote(labeled, split.model_dump(mode="json"), remote.name)
    return _copy_dataset_home(remote, files, data_dir)


def relabel(remote: Remote, config: LabelConfig, data_dir: Path) -> tuple[RelabelResult, SplitSummary]:
    """The nightly relabel on the volume (teacher key from the gemini-api-key secret); the rebuilt
    labels.jsonl, dataset and split are copied into data_dir."""
    with PaidCalls(remote, "relabel") as paid:  # hours of teacher requests: cancelled if the step stops
        answer = paid.wait(
            paid.spawn("relabel", config.model_dump(mode="json"), SplitConfig().model_dump(mode="json"), remote.name)
        )
    summary = _copy_dataset_home(remote, answer["files"], data_dir)
    remote.fetch(f"{remote.name}/{LABELS_FILE}", Path(data_dir) / LABELS_FILE)
    return RelabelResult.model_validate(answer["result"]), summary


def _copy_dataset_home(remote: Remote, files: dict, data_dir: Path) -> SplitSummary:
    """Copy pose_dataset.jsonl and the split from the volume into data_dir, checked by sha256."""
    local = {
        "dataset": Path(data_dir) / DATASET_FILE,
        "train": Path(data_dir) / SPLITS_DIR / "train.jsonl",
        "val": Path(data_dir) / SPLITS_DIR / "val.jsonl",
    }
    copies = {}
    for key, path in local.items():
        if files[key]["rows"] == 0:
            refuse_emptying(path)  # an empty file on the volume never replaces rows here
        copy = DatasetFile.of(remote.fetch(files[key]["path"], path), files[key]["rows"])
        if copy.sha256 != files[key]["sha256"]:
            raise RuntimeError(f"{path} differs from {files[key]['path']} on the volume after the copy")
        copies[key] = copy
    return SplitSummary(train=copies["train"], val=copies["val"])


def train(
    remote: Remote,
    split: SplitSummary,
    config: TrainConfig,
    data_dir: Path,
    on_log: Callable[[dict], None] | None = None,
    smoke: bool = False,
) -> TrainedAdapter:
    """Train on 8 GPUs (two for --smoke) from the base model's copy on the volume, reporting steps as
    checkpoints are committed.

    The run dir has one live call: a rerun re-attaches to it while it runs or takes its result once it
    finished well; a call that failed, was cancelled or expired gives way to a new one, which resumes
    from the run's latest checkpoint. An interrupted client cancels the call and its containers.
    """
    if remote.rehearsal and not config.base_model.startswith(f"{remote.settings.volume_path}/"):
        config = rehearsal_train_config(remote)  # the 32B recipe needs GPUs: the tiny model's instead
    with modal_errors():
        base_model = remote.function("download_base_model").remote(config.base_model)
    config = config.model_copy(update={"base_model": base_model})
    run_dir = run_dir_for(split, config, Path(remote.name)).as_posix()  # what the function will use
    calls = TrainingCalls(remote, run_dir, Path(data_dir) / run_dir.split("/", 1)[1] / CALL_RECORD)
    expected = {"train": split.train.sha256, "val": split.val.sha256}
    call = calls.attach()
    if call is None:
        function = remote.function("train_smoke" if smoke else "train")
        call = calls.spawn(function, config.model_dump(mode="json"), remote.name, expected, run_dir)
    result = watch(call, calls, f"{run_dir}/logging.jsonl", on_log, remote.settings.poll_seconds)
    if "error" in result:  # deterministic: the function returned it rather than let Modal retry
        raise TrainingError(result["error"])
    steps_run = max((h.get("step") or 0 for h in result["history"]), default=0)
    if smoke and steps_run > config.save_steps and not result.get("committed_while_training"):
        raise TrainingError(
            "--smoke trained, but no checkpoint reached the volume while it ran: a preempted or lost full run "
            f"would start over. Look at the training call's log for failed commits ({run_dir}/swift.log on the "
            "volume) before the full run."
        )
    local_run = Path(data_dir) / result["run_dir"].split("/", 1)[1]  # <name>/runs/<key> -> data_dir/runs/<key>
    mount = Path(remote.settings.volume_path)
    return TrainedAdapter(
        config=config,
        run_dir=mount / result["run_dir"],  # as the functions see them
        checkpoint=mount / result["checkpoint"],
        eval_loss=result["eval_loss"],
        history=result["history"],
        loss_plot=remote.fetch(result["loss_plot"], local_run / "loss.png"),
        sample_output=NOT_GENERATED,
    )


def rehearsal_train_config(remote: Remote) -> TrainConfig:
    """A rehearsal trains the tiny Qwen3-VL, built on the stand-in volume, with the local CPU recipe."""
    from motioncoach.training.tiny_model import build_tiny_qwen3_vl
    from remote.rehearsal import TRAIN_STEPS_ENV

    root = remote.volume.root  # the rehearsal's volume is a directory; this is the harness, not the client
    build_tiny_qwen3_vl(root / TINY_MODEL_ON_VOLUME)
    config = local_train_config(f"{remote.settings.volume_path}/{TINY_MODEL_ON_VOLUME}")
    steps = os.environ.get(TRAIN_STEPS_ENV)
    if steps:
        try:
            config = config.model_copy(update={"max_steps": int(steps)})
        except ValueError:
            raise ConfigurationError(f"{TRAIN_STEPS_ENV}={steps!r} is not a whole number of steps") from None
    return config


def trained_data_dir(trained: TrainedAdapter) -> Path:
    """The data dir on the volume a Modal training run belongs to: run_dir is <data dir>/runs/<key>."""
    return trained.run_dir.parent.parent


def place_adapter(remote: Remote, trained: TrainedAdapter, adapter_dir: Path) -> tuple[Path, str | None]:
    """Package the best checkpoint on the volume; download it when small enough, else the command that does.

    Returns (where the adapter is or will be, the `modal volume get` command when it was too large).
    adapter_dir/modal-adapter.json records where the package is on the volume: the release files
    are put beside it and the Hub upload runs from there.
    """
    run_dir = trained.run_dir.relative_to(remote.settings.volume_path).as_posix()
    with modal_errors():
        package = remote.function("package_adapter").remote(run_dir, remote.name, adapter_dir.name)
    command = None
    if package["bytes"] > remote.settings.max_download_bytes:
        command = volume_get_command(remote.settings, package["path"], adapter_dir)
    record = package | {"base_model": str(trained.config.base_model)}
    if command:
        _write_modal_adapter(adapter_dir, remote, record, command)
        for name in ADAPTER_FILES:  # an earlier run's weights must not pass for this run's
            (Path(adapter_dir) / name).unlink(missing_ok=True)
        return adapter_dir, command
    with scratch_dir_beside(adapter_dir) as tmp:
        remote.fetch_dir(package["path"], tmp)
        copy_adapter(tmp, adapter_dir)  # a fresh folder of the adapter's files: the record is written after it
        if (tmp / "loss.png").is_file():
            (adapter_dir / "loss.png").write_bytes((tmp / "loss.png").read_bytes())
    _write_modal_adapter(adapter_dir, remote, record, None)
    return adapter_dir, None


def modal_adapter(adapter_dir: Path) -> dict | None:
    """Where the adapter in adapter_dir was packaged on the Modal volume; None for a local run."""
    return read_modal_adapter(adapter_dir)


def _write_modal_adapter(adapter_dir: Path, remote: Remote, package: dict, command: str | None) -> None:
    record = {
        "volume": remote.settings.volume_name,
        "data_dir": remote.name,
        "path": package["path"],
        "bytes": package["bytes"],
        "downloaded": command is None,
        "command": command,
        "base_model": package.get("base_model"),  # as the functions see it
        "placement": package.get("placement"),  # LoRA modules per part of the model, from its tensor names
        "run_dir": package.get("run_dir"),  # what the training run left on the volume
    }
    _save_modal_adapter(adapter_dir, record)


def _save_modal_adapter(adapter_dir: Path, record: dict) -> None:
    Path(adapter_dir).mkdir(parents=True, exist_ok=True)
    (Path(adapter_dir) / MODAL_ADAPTER_FILE).write_text(json.dumps(record, indent=2) + "\n")


def merge_release(remote: Remote, trained: TrainedAdapter, adapter_dir: Path) -> str:
    """Fold the packaged adapter into its base model on the volume (merged/<run>): the release vLLM loads
    whole, at the run's pixels. Recorded in adapter_dir/modal-adapter.json; its path as the functions see it."""
    return merge_on_volume(remote, adapter_dir, trained.config.max_pixels)["path"]


def merge_on_volume(remote: Remote, adapter_dir: Path, max_pixels: int | None = None) -> dict:
    """The merge of a modal-profile release where its weights are (merge_adapter, 192 GiB of memory): the
    record in adapter_dir names the package and base; max_pixels defaults to the release's lineage. Returns
    the merged folder's path (as the functions see it) and size, and records them in modal-adapter.json."""
    from motioncoach.serving.release import recorded_max_pixels

    record = modal_adapter(adapter_dir)
    if record is None:
        raise ConfigurationError(
            f"{adapter_dir} was not released by the modal profile (no {MODAL_ADAPTER_FILE}): place the adapter first"
        )
    pixels = max_pixels or recorded_max_pixels([Path(adapter_dir)])
    out = f"{record['data_dir']}/{MERGED_DIR}/{Path(record['path']).parent.name}"
    with PaidCalls(remote, "merge") as paid:  # cancelled if the step stops
        merged = paid.wait(paid.spawn("merge_adapter", record["path"], record["base_model"], out, "auto", pixels))
    _save_modal_adapter(adapter_dir, record | {"merged": {"path": merged["path"], "bytes": merged["bytes"]}})
    return {"path": f"{remote.settings.volume_path}/{merged['path']}", "bytes": merged["bytes"]}


def upload_merged_from_volume(remote: Remote, folder: str, repo_id: str, hub: HubConfig) -> HubStatus:
    """Upload the merged release from the volume, with the secret's token."""
    with modal_errors():
        status = remote.function("upload_merged").remote(folder, repo_id, hub.model_dump(mode="json"))
    return HubStatus.model_validate(status)


def put_release_files(remote: Remote, adapter_dir: Path, folder: str) -> list[str]:
    """Copy the card, eval.json and lineage.json beside the weights on the volume (what `modal volume get`
    and the upload take), replacing PEFT's generic README."""
    names = [name for name in RELEASE_FILES if (Path(adapter_dir) / name).is_file()]
    with modal_errors(), remote.volume.batch_upload(force=True) as batch:
        for name in names:
            batch.put_file(Path(adapter_dir) / name, f"{folder}/{name}")
    return names


def hub_account(remote: Remote, hub: HubConfig, repos: list[str] | None = None) -> dict:
    """The account of huggingface-secret's HF_TOKEN, checked able to write repos, and the repos the secret
    names (HubError if rejected)."""
    with modal_errors():
        return remote.function("hub_account").remote(hub.model_dump(mode="json"), repos or [])


def upload_adapter_from_volume(remote: Remote, folder: str, repo_id: str, hub: HubConfig) -> HubStatus:
    """Upload the packaged adapter and its release files from the volume, with the secret's token."""
    with modal_errors():
        status = remote.function("upload_adapter").remote(folder, repo_id, hub.model_dump(mode="json"))
    return HubStatus.model_validate(status)


def upload_dataset_from_volume(remote: Remote, lineage: dict, repo_id: str, hub: HubConfig) -> HubStatus:
    """Stage and upload the dataset where its images are: on the volume."""
    with modal_errors():
        status = remote.function("upload_dataset").remote(remote.name, lineage, repo_id, hub.model_dump(mode="json"))
    return HubStatus.model_validate(status)


def fetch_gallery(remote: Remote, trained: TrainedAdapter, dest: Path) -> list[Path]:
    """The gallery evaluate_adapter drew on the volume (where the photos are), copied into dest."""
    run_dir = trained.run_dir.relative_to(remote.settings.volume_path).as_posix()
    try:
        remote.fetch_dir(f"{run_dir}/eval/{GALLERY_DIR}", dest)
    except FileNotFoundError:
        return []
    return sorted(Path(dest).glob("*.png"))


def fetch_label_store(remote: Remote, dest: Path) -> Path | None:
    """A read-only copy of the label store on the volume (for the costs in the card), or None if there is none."""
    try:
        return remote.fetch(f"{remote.name}/{STORE_FILE}", dest)
    except FileNotFoundError:
        return None


def fetch_audit_book(remote: Remote, data_dir: Path) -> None:
    """Fold the verdicts on the volume (audit.jsonl, from any machine) into the local data dir's, oldest first."""
    from motioncoach.audit.verdicts import AUDIT_FILE, merge_verdict_files

    with scratch_dir_beside(Path(data_dir) / AUDIT_FILE) as tmp:
        try:
            there = remote.fetch(f"{remote.name}/{AUDIT_FILE}", tmp / AUDIT_FILE)
        except FileNotFoundError:
            return
        merge_verdict_files(Path(data_dir) / AUDIT_FILE, there)


def put_audit_book(remote: Remote, data_dir: Path) -> None:
    """The local verdicts onto the volume, where the relabel and other machines read them."""
    from motioncoach.audit.verdicts import AUDIT_FILE

    fetch_audit_book(remote, data_dir)  # nothing another machine recorded is overwritten
    remote.write(f"{remote.name}/{AUDIT_FILE}", (Path(data_dir) / AUDIT_FILE).read_bytes())


def fetch_dataset_photos(remote: Remote, sha256s: list[str], data_dir: Path) -> None:
    """The dataset's copies of these images (images/<sha256>.<ext> on the volume) into the local data dir."""
    from motioncoach.dataset import DATASET_FILE, read_jsonl

    rows = read_jsonl(Path(data_dir) / DATASET_FILE) if (Path(data_dir) / DATASET_FILE).is_file() else []
    wanted = set(sha256s)
    for row in rows:
        image = row["images"][0]
        if Path(image).stem in wanted and not (Path(data_dir) / image).is_file():
            remote.fetch(f"{remote.name}/{image}", Path(data_dir) / image)


_REHEARSED = {"max_new_tokens": 32, "batch_size": 4}  # the tiny random model on CPU: short answers


def benchmark(remote: Remote, trained: TrainedAdapter, suite, teacher: str, config: LabelConfig, settings, merged):
    """The release on a benchmark on Modal: base and student answered on a GPU where the weights are (vLLM
    serving the merged release), the teacher where its secret is; the suite's folder is uploaded once."""
    from motioncoach.benchmarks.release import join_halves
    from motioncoach.benchmarks.suite import SUITE_FILE
    from motioncoach.config import MODAL_POSE_WEIGHTS
    from motioncoach.hashing import file_sha256

    folder = f"{remote.name}/benchmarks/{suite.name}"
    try:
        there = remote.read(f"{folder}/{SUITE_FILE}")
    except FileNotFoundError:
        there = b""
    if there != (suite.root / SUITE_FILE).read_bytes():
        remote.upload_dir(suite.root, folder)
    logger.info("benchmark %s on the volume: %s (%s)", suite.name, folder, file_sha256(suite.root / SUITE_FILE)[:12])
    mount = remote.settings.volume_path
    pose = PoseFilterConfig().weights if remote.rehearsal else MODAL_POSE_WEIGHTS  # what the dataset was filtered by
    rehearsed = _REHEARSED if remote.rehearsal else {}
    request = {
        "suite_dir": f"{mount}/{folder}", "base_model": str(trained.config.base_model),
        "adapter_dir": str(trained.checkpoint), "merged_dir": merged,
        "engine": "transformers" if remote.rehearsal else "vllm",
        "settings": settings.model_copy(update={"pose_weights": pose} | rehearsed).model_dump(),
    }  # fmt: skip
    with PaidCalls(remote, "benchmark") as paid:  # an H200, then the teacher's paid API
        models = paid.wait(paid.spawn("benchmark_models", request, remote.name))
        halves = None
        if teacher != "none":
            ask = {"suite_dir": f"{mount}/{folder}", "teacher": teacher, "labeling": config.model_dump(mode="json")}
            halves = paid.wait(paid.spawn("benchmark_teacher", ask, models["poses"], remote.name))
    return join_halves(suite.root, models, halves, teacher)


def evaluate(remote: Remote, request: dict) -> dict:
    """The evaluation on an H200 where the weights are (evaluate_adapter); cancelled if the step stops."""
    with PaidCalls(remote, "evaluation") as paid:
        return paid.wait(paid.spawn("evaluate_adapter", request, remote.name))
