"""Each pipeline step on Modal, from the client's side: call the deployed function, bring results home.

These are plain functions over a `Remote` (the deployed functions and the volume), so the tasks
stay thin and tests can hand in the app's functions run locally and a volume on disk. What
crosses to Modal is JSON-able: configs and records dumped by pydantic.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from motioncoach.config import LabelConfig, PoseFilterConfig, SourceConfig, SplitConfig, TrainConfig
from motioncoach.dataset import DATASET_FILE, SPLITS_DIR, DatasetFile, SplitSummary
from motioncoach.labels.outcomes import LabelReport
from motioncoach.pose import PoseFilterReport
from motioncoach.pose.shards import merge_pose_caches, merge_reports, shard_records
from motioncoach.records import ImageRecord, PoseSample
from motioncoach.sources import source_kind
from motioncoach.sources.samples import assemble_samples
from motioncoach.training.checkpoints import copy_adapter, record_step
from motioncoach.training.session import TrainedAdapter, run_dir_for
from tasks.modal_client import Remote, modal_errors, scratch_dir_beside, volume_get_command

UPLOADS_DIR = "raw/uploads"
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


def label_poses(remote: Remote, samples: Sequence[PoseSample], config: LabelConfig) -> LabelReport:
    """Label on Modal with the teacher's key from the gemini-api-key secret; the store stays on the volume."""
    with modal_errors():
        report = remote.function("label_poses").remote(
            [s.model_dump(mode="json") for s in samples], config.model_dump(mode="json"), remote.name
        )
    return LabelReport.model_validate(report)


def write_dataset(remote: Remote, labels: LabelReport, split: SplitConfig, data_dir: Path) -> SplitSummary:
    """Write the dataset and split on the volume, then copy pose_dataset.jsonl and splits/ into data_dir."""
    labeled = [o.model_dump(mode="json") for o in labels.labeled]
    with modal_errors():
        files = remote.function("write_dataset").remote(labeled, split.model_dump(mode="json"), remote.name)
    local = {
        "dataset": Path(data_dir) / DATASET_FILE,
        "train": Path(data_dir) / SPLITS_DIR / "train.jsonl",
        "val": Path(data_dir) / SPLITS_DIR / "val.jsonl",
    }
    copies = {}
    for key, path in local.items():
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
    """Train on 8 GPUs from the base model's copy on the volume, reporting steps as checkpoints are committed."""
    with modal_errors():
        base_model = remote.function("download_base_model").remote(config.base_model)
    config = config.model_copy(update={"base_model": base_model})
    run_dir = run_dir_for(split, config, Path(remote.name)).as_posix()  # what the function will use
    expected = {"train": split.train.sha256, "val": split.val.sha256}
    with modal_errors():
        call = remote.function("train").spawn(config.model_dump(mode="json"), remote.name, expected)
        result = _wait(call, remote, f"{run_dir}/logging.jsonl", on_log)
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


def trained_data_dir(trained: TrainedAdapter) -> Path:
    """The data dir on the volume a Modal training run belongs to: run_dir is <data dir>/runs/<key>."""
    return trained.run_dir.parent.parent


def place_adapter(remote: Remote, trained: TrainedAdapter, adapter_dir: Path) -> tuple[Path, str | None]:
    """Package the best checkpoint on the volume; download it when small enough, else the command that does.

    Returns (where the adapter is or will be, the `modal volume get` command when it was too large).
    """
    run_dir = trained.run_dir.relative_to(remote.settings.volume_path).as_posix()
    with modal_errors():
        package = remote.function("package_adapter").remote(run_dir, remote.name, adapter_dir.name)
    if package["bytes"] > remote.settings.max_download_bytes:
        return adapter_dir, volume_get_command(remote.settings, package["path"], adapter_dir)
    with scratch_dir_beside(adapter_dir) as tmp:
        remote.fetch_dir(package["path"], tmp)
        copy_adapter(tmp, adapter_dir)
        if (tmp / "loss.png").is_file():
            (adapter_dir / "loss.png").write_bytes((tmp / "loss.png").read_bytes())
    return adapter_dir, None


def _wait(call, remote: Remote, log_path: str, on_log: Callable[[dict], None] | None) -> dict:
    """The call's result; meanwhile the steps committed to the run's logging.jsonl go to on_log."""
    seen = 0
    while True:
        try:
            return call.get(timeout=remote.settings.poll_seconds)
        except TimeoutError:
            seen = _report_new_steps(remote, log_path, seen, on_log)


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
