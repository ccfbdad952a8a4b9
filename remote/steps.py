"""Each pipeline step on Modal, from the client's side: call the deployed function, bring results home.

These are plain functions over a `Remote` (the deployed functions and the volume), so the tasks
stay thin and tests can hand in the app's functions run locally and a volume on disk. What
crosses to Modal is JSON-able: configs and records dumped by pydantic.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from motioncoach.config import LabelConfig, PoseFilterConfig, SourceConfig, SplitConfig, TrainConfig, local_train_config
from motioncoach.dataset import DATASET_FILE, SPLITS_DIR, DatasetFile, SplitSummary
from motioncoach.dataset.rows import refuse_emptying
from motioncoach.errors import TrainingError
from motioncoach.evaluation.gallery import GALLERY_DIR
from motioncoach.labels.outcomes import LabelReport
from motioncoach.labels.store import LABELS_FILE
from motioncoach.pose import PoseFilterReport
from motioncoach.pose.shards import merge_pose_caches, merge_reports, shard_records
from motioncoach.publish import HubConfig, HubStatus
from motioncoach.records import ImageRecord, PoseSample
from motioncoach.sources import source_kind
from motioncoach.sources.samples import assemble_samples
from motioncoach.teachers.relabel import RelabelResult
from motioncoach.teachers.shards import shard_count, shard_samples
from motioncoach.training.checkpoints import ADAPTER_FILES, copy_adapter, record_step
from motioncoach.training.session import TrainedAdapter, run_dir_for
from remote.client import Remote, modal_errors, scratch_dir_beside, volume_get_command

logger = logging.getLogger(__name__)

UPLOADS_DIR = "raw/uploads"
CALL_RECORD = "modal_call.json"
MODAL_ADAPTER_FILE = "modal-adapter.json"  # in --adapter-dir: where the adapter is on the volume
RELEASE_FILES = ("README.md", "eval.json", "lineage.json")
STORE_FILE = "labels.sqlite"  # beside the run's checkpoints: which Modal call trains this run
TINY_MODEL_ON_VOLUME = "models/tiny-qwen3-vl"
UNREACHABLE_SECONDS = 300
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
    payload = [[r.model_dump(mode="json") for r in shard] for shard in shards]
    results = []
    with modal_errors():
        outputs = remote.function("filter_pose_shard").map(
            payload, kwargs={"config": config.model_dump(mode="json"), "name": remote.name}, order_outputs=False
        )
        for result in outputs:
            results.append(result)
            if progress:
                progress(sum(len(r["report"]["kept"]) + len(r["report"]["rejected"]) for r in results), len(records))
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
    payload = [[s.model_dump(mode="json") for s in shard] for shard in shards]
    results, done = [], 0
    with modal_errors():
        outputs = remote.function("label_shard").map(
            payload,
            kwargs={"config": config.model_dump(mode="json"), "name": remote.name, "shards": len(shards)},
            order_outputs=False,
        )
        for result in outputs:
            results.append(result)
            done += len(result["report"]["outcomes"])
            if progress:
                progress(done, len(samples))
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
    with modal_errors():
        answer = remote.function("relabel").remote(
            config.model_dump(mode="json"), SplitConfig().model_dump(mode="json"), remote.name
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
) -> TrainedAdapter:
    """Train on 8 GPUs from the base model's copy on the volume, reporting steps as checkpoints are committed.

    The spawned call is owned: its id is recorded on the volume and locally, a rerun of the same run
    re-attaches to it instead of paying for a second one, and an interrupted client cancels it.
    """
    # The GPU function the recipe asks for: 8xH200, or one GPU for --smoke (a rehearsal runs either).
    function = "train" if config.nproc_per_node > 1 else "train_single_gpu"
    if remote.rehearsal and not config.base_model.startswith(f"{remote.settings.volume_path}/"):
        config = rehearsal_train_config(remote)  # the 32B recipe needs GPUs: the tiny model's instead
    with modal_errors():
        base_model = remote.function("download_base_model").remote(config.base_model)
    config = config.model_copy(update={"base_model": base_model})
    run_dir = run_dir_for(split, config, Path(remote.name)).as_posix()  # what the function will use
    local_record = Path(data_dir) / run_dir.split("/", 1)[1] / CALL_RECORD
    expected = {"train": split.train.sha256, "val": split.val.sha256}
    with modal_errors():
        call = attach_training(remote, run_dir, local_record)
        if call is None:
            call = remote.function(function).spawn(config.model_dump(mode="json"), remote.name, expected, run_dir)
            record_call(remote, call, run_dir, local_record)
        result = watch_call(call, remote, f"{run_dir}/logging.jsonl", on_log, local_record)
    if "error" in result:  # deterministic: the function returned it rather than let Modal retry
        raise TrainingError(result["error"])
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

    root = remote.volume.root  # the rehearsal's volume is a directory; this is the harness, not the client
    build_tiny_qwen3_vl(root / TINY_MODEL_ON_VOLUME)
    return local_train_config(f"{remote.settings.volume_path}/{TINY_MODEL_ON_VOLUME}")


def attach_training(remote: Remote, run_dir: str, local_record: Path):
    """The training call recorded for this run when it can still give its result; None to spawn anew."""
    record = _read_record(remote, run_dir, local_record)
    if not record or record.get("state") == "cancelled" or remote.call_from_id is None:
        return None
    try:
        call = remote.call_from_id(record["call_id"])
        call.get(timeout=0)  # finished: its result is there; still running: TimeoutError
    except TimeoutError:
        logger.warning("re-attaching to the training call %s, still running on Modal", record["call_id"])
        return call
    except Exception as exc:  # noqa: BLE001 - failed, cancelled, expired or unknown: a new call resumes the run
        logger.info("the recorded training call %s cannot be reused (%s): spawning a new one", record["call_id"], exc)
        return None
    logger.info("the recorded training call %s has finished: using its result", record["call_id"])
    return call


def record_call(remote: Remote, call, run_dir: str, local_record: Path, state: str = "running") -> None:
    """Remember a spawned call on the volume (for any client) and in the local run state (for hooks)."""
    record = json.dumps({"call_id": call.object_id, "state": state, "at": time.time()}).encode()
    local_record.parent.mkdir(parents=True, exist_ok=True)
    local_record.write_bytes(record)
    remote.write(f"{run_dir}/{CALL_RECORD}", record)


def cancel_recorded_calls(remote: Remote, data_dir: Path) -> list[str]:
    """Cancel every training call this data dir's run state says is running (flow cancel and crash hooks)."""
    cancelled = []
    for path in sorted(Path(data_dir).glob(f"runs/*/{CALL_RECORD}")):
        record = json.loads(path.read_text())
        if record.get("state") != "running" or remote.call_from_id is None:
            continue
        remote.call_from_id(record["call_id"]).cancel()
        path.write_text(json.dumps(record | {"state": "cancelled", "at": time.time()}))
        cancelled.append(record["call_id"])
    return cancelled


def watch_call(call, remote: Remote, log_path: str, on_log, local_record: Path) -> dict:
    """The call's result. An interrupt (Ctrl-C, SIGTERM, a Prefect cancel) or a client that cannot
    reach Modal any more cancels the call: no GPU keeps running without an owner."""
    try:
        result = _wait(call, remote, log_path, on_log)
    except BaseException:
        logger.warning("stopping the training call %s on Modal", call.object_id)
        call.cancel()
        _mark(local_record, "cancelled")
        raise
    _mark(local_record, "finished")
    return result


def _read_record(remote: Remote, run_dir: str, local_record: Path) -> dict | None:
    for read in (local_record.read_bytes, lambda: remote.read(f"{run_dir}/{CALL_RECORD}")):
        try:
            return json.loads(read())
        except (FileNotFoundError, json.JSONDecodeError):
            continue
    return None


def _mark(local_record: Path, state: str) -> None:
    if local_record.is_file():
        record = json.loads(local_record.read_text())
        local_record.write_text(json.dumps(record | {"state": state, "at": time.time()}))


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
    _write_modal_adapter(adapter_dir, remote, package, command)
    if command:
        for name in ADAPTER_FILES:  # an earlier run's weights must not pass for this run's
            (Path(adapter_dir) / name).unlink(missing_ok=True)
        return adapter_dir, command
    with scratch_dir_beside(adapter_dir) as tmp:
        remote.fetch_dir(package["path"], tmp)
        copy_adapter(tmp, adapter_dir)
        if (tmp / "loss.png").is_file():
            (adapter_dir / "loss.png").write_bytes((tmp / "loss.png").read_bytes())
    return adapter_dir, None


def modal_adapter(adapter_dir: Path) -> dict | None:
    """Where the adapter in adapter_dir was packaged on the Modal volume; None for a local run."""
    try:
        return json.loads((Path(adapter_dir) / MODAL_ADAPTER_FILE).read_text())
    except FileNotFoundError:
        return None


def _write_modal_adapter(adapter_dir: Path, remote: Remote, package: dict, command: str | None) -> None:
    record = {
        "volume": remote.settings.volume_name,
        "data_dir": remote.name,
        "path": package["path"],
        "bytes": package["bytes"],
        "downloaded": command is None,
        "command": command,
    }
    Path(adapter_dir).mkdir(parents=True, exist_ok=True)
    (Path(adapter_dir) / MODAL_ADAPTER_FILE).write_text(json.dumps(record, indent=2) + "\n")


def put_release_files(remote: Remote, adapter_dir: Path, folder: str) -> list[str]:
    """Copy the card, eval.json and lineage.json beside the weights on the volume (what `modal volume get`
    and the upload take), replacing PEFT's generic README."""
    names = [name for name in RELEASE_FILES if (Path(adapter_dir) / name).is_file()]
    with modal_errors(), remote.volume.batch_upload(force=True) as batch:
        for name in names:
            batch.put_file(Path(adapter_dir) / name, f"{folder}/{name}")
    return names


def hub_account(remote: Remote, hub: HubConfig) -> dict:
    """The account of huggingface-secret's HF_TOKEN and the repos the secret names (HubError if rejected)."""
    with modal_errors():
        return remote.function("hub_account").remote(hub.model_dump(mode="json"))


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


def _wait(call, remote: Remote, log_path: str, on_log: Callable[[dict], None] | None) -> dict:
    """The call's result; meanwhile the steps committed to the run's logging.jsonl go to on_log.

    Errors reaching Modal are retried for a few minutes before the client gives up (and cancels).
    """
    from modal.exception import ConnectionError as ModalConnectionError

    seen = 0
    unreachable_since = None
    while True:
        try:
            result = call.get(timeout=remote.settings.poll_seconds)
            return result
        except TimeoutError:
            unreachable_since = None
            seen = _report_new_steps(remote, log_path, seen, on_log)
        except (ModalConnectionError, OSError) as exc:
            unreachable_since = unreachable_since or time.monotonic()
            if time.monotonic() - unreachable_since > UNREACHABLE_SECONDS:
                raise
            logger.warning("Modal is unreachable (%s); still waiting for the training call", exc)
            time.sleep(min(30.0, remote.settings.poll_seconds))


def _report_new_steps(remote: Remote, log_path: str, seen: int, on_log: Callable[[dict], None] | None) -> int:
    """Pass the log records after the first `seen` lines to on_log; returns the lines read so far."""
    try:
        lines = remote.read(log_path).decode("utf-8", errors="replace").splitlines()
    except FileNotFoundError:  # not written or not committed yet: nothing to report
        return seen
    for line in lines[seen:]:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        step = record_step(record) if isinstance(record, dict) else None
        if step is not None and on_log:
            on_log({**record, "step": step})
    return len(lines)
