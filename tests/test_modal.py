"""The Modal app, without Modal: the module imports bare, each function's spec is the issue's (read
from the Modal objects), the bodies run locally (`.local()`) on tiny inputs through the real client
steps and match the local profile, the 8-GPU command is the original recipe, and missing
credentials fail at once with what to run.

The client talks to the app through the rehearsal (remote.rehearsal): each call runs in a
process of its own, arguments and results cross as JSON with volume paths, and the volume is a
directory reached only through the calls a real modal.Volume answers (read_file, listdir,
batch_upload).
"""

from __future__ import annotations

import dataclasses
import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import modal
import pytest

from motioncoach.config import (
    MODAL_POSE_WEIGHTS,
    LabelConfig,
    ModalConfig,
    PoseFilterConfig,
    Profile,
    SourceConfig,
    SplitConfig,
    TrainConfig,
    default_labeler,
    default_source,
    local_train_config,
    pose_filter_config,
)
from motioncoach.dataset import DATASET_FILE, build_dataset, split_dataset
from motioncoach.errors import ConfigurationError
from motioncoach.labels.outcomes import label_samples
from motioncoach.labels.rules import RulesLabeler
from motioncoach.pose import CACHE_FILE_NAME, filter_poses
from motioncoach.pose.shards import shard_records
from motioncoach.pose.weights import CACHE_HOME
from motioncoach.records import ImageRecord
from motioncoach.sources import collect_images
from motioncoach.training.checkpoints import find_best_checkpoint
from motioncoach.training.swift_command import swift_env, swift_launcher, swift_sft_args
from remote import app as modal_app
from remote import images
from remote import steps as modal_steps
from remote.client import MISSING_CREDENTIALS, Remote, check_modal_credentials, connect, modal_errors
from remote.rehearsal import REHEARSAL_ENV
from remote.rehearsal.volume import RehearsalVolume
from tests.fakes import GeminiFake
from tests.rehearsal import rehearsal_calls

# `.local()` warns that the volume is not mounted: here the volume is MOTIONCOACH_VOLUME_ROOT.
pytestmark = pytest.mark.filterwarnings("ignore:The .* function is executing locally:UserWarning")

ROOT = Path(__file__).resolve().parents[1]
POSE = PoseFilterConfig(batch_size=4)  # the shipped yolo11n-pose: real weights, offline
VOLUME_DATA_DIR = Path("/data/data")  # the data dir "data" as the functions see it on the volume
HEAVY = {"torch", "ultralytics", "swift", "transformers", "peft", "cv2", "prefect"}


# ---- The deployed functions: the rehearsal runs each call in a local process on a directory volume ----


# ---- The dataset steps run both ways, once for the module ----


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory):
    """The samples through download, pose filter, rules labels and split: by the local profile's domain
    calls, and by the modal profile's client steps against the app's functions on a directory volume."""
    base = tmp_path_factory.mktemp("modal-run")
    volume = base / "volume"
    volume.mkdir()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MOTIONCOACH_VOLUME_ROOT", str(volume))
        local = base / "local" / "data"
        records = collect_images(SourceConfig(), local)
        poses = filter_poses(records, POSE, local / CACHE_FILE_NAME)
        labels = label_samples(poses.kept, RulesLabeler())
        dataset = build_dataset(labels.labeled, local)
        split = split_dataset(dataset.path, SplitConfig(), local / "splits")

        client = base / "client" / "data"
        with pytest.MonkeyPatch.context() as rehearsing:  # only while connecting: other tests check credentials
            rehearsing.setenv(REHEARSAL_ENV, str(volume))
            remote = connect(client, ModalConfig(pose_shards=2))
        m_records = modal_steps.find_images(remote, SourceConfig())
        m_poses = modal_steps.filter_poses(remote, m_records, POSE, client / CACHE_FILE_NAME)
        m_labels = modal_steps.label_poses(remote, m_poses.kept, LabelConfig())
        m_split = modal_steps.write_dataset(remote, m_labels, SplitConfig(), client)
        yield SimpleNamespace(
            volume=volume,
            local=local,
            client=client,
            remote=remote,
            records=records,
            poses=poses,
            labels=labels,
            split=split,
            m_records=m_records,
            m_poses=m_poses,
            m_labels=m_labels,
            m_split=m_split,
        )


def _same(value, run) -> str:
    """A JSON rendering with each side's data dir replaced by <data>, to compare the two runs."""
    text = json.dumps(value, sort_keys=True, default=str)
    for prefix in (run.volume / "data", VOLUME_DATA_DIR, run.local):
        text = text.replace(str(prefix), "<data>")
    return text


def _entries(cache: Path) -> dict:
    entries = json.loads(cache.read_text())["entries"]
    return {key: {k: v for k, v in entry.items() if k != "created_at"} for key, entry in entries.items()}


def test_download_lists_the_same_images_on_the_volume(runs):
    assert _same([r.model_dump() for r in runs.m_records], runs) == _same([r.model_dump() for r in runs.records], runs)
    # The records name volume paths, as on Modal, never the directory standing in for the volume: the
    # client reaches the files only through the volume API.
    assert all(r.path.is_relative_to(VOLUME_DATA_DIR / "raw") for r in runs.m_records)
    assert not any(str(runs.volume) in str(r.path) for r in runs.m_records)
    local = {r.path.name: r.path.read_bytes() for r in runs.records}
    for record in runs.m_records:
        on_volume = runs.remote.read(record.path.relative_to(runs.remote.settings.volume_path).as_posix())
        assert on_volume == local[record.path.name]


def test_sharded_pose_filter_equals_one_filter_poses_call(runs):
    calls = rehearsal_calls(runs.volume)
    assert calls.count("filter_pose_shard") == 2 and calls.count("merge_pose_shards") == 1
    assert _same(runs.m_poses.model_dump(), runs) == _same(runs.poses.model_dump(), runs)
    assert runs.m_poses.kept and runs.m_poses.rejected
    # The merged yolo_cache.json on the volume holds exactly the entries the local run cached.
    on_volume = _entries(runs.volume / "data" / CACHE_FILE_NAME)
    assert _same(on_volume, runs) == _same(_entries(runs.local / CACHE_FILE_NAME), runs)
    assert not list((runs.volume / "data" / "pose-shards").iterdir())  # shard caches merged and removed
    assert _entries(runs.client / CACHE_FILE_NAME) == on_volume  # and the local copy


def test_dataset_rows_and_split_are_the_local_profiles(runs):
    assert _same(runs.m_labels.model_dump(), runs) == _same(runs.labels.model_dump(), runs)
    for name in (DATASET_FILE, "splits/train.jsonl", "splits/val.jsonl"):
        on_volume = (runs.volume / "data" / name).read_bytes()
        assert on_volume == (runs.local / name).read_bytes()  # same rows, byte for byte
        assert (runs.client / name).read_bytes() == on_volume  # and copied home
    assert runs.m_split.train.sha256 == runs.split.train.sha256 and runs.m_split.val.sha256 == runs.split.val.sha256
    rows = [json.loads(line) for line in (runs.volume / "data" / DATASET_FILE).read_text().splitlines()]
    assert all((runs.volume / "data" / image).is_file() for row in rows for image in row["images"])


def test_a_folder_source_is_uploaded_to_the_volume(runs, tmp_path):
    (tmp_path / "yoga").mkdir()
    photo = next(r.path for r in runs.records if r.path.name == "astronaut.png")
    (tmp_path / "yoga" / "warrior.png").write_bytes(photo.read_bytes())
    records = modal_steps.find_images(runs.remote, SourceConfig(source=str(tmp_path)))
    assert [(r.activity, r.path.name) for r in records] == [("yoga", "warrior.png")]
    assert records[0].path == VOLUME_DATA_DIR / "raw" / "uploads" / tmp_path.name / "yoga" / "warrior.png"
    assert (runs.volume / records[0].path.relative_to("/data")).read_bytes() == photo.read_bytes()


def test_teacher_labels_fan_out_over_containers_that_share_the_store_on_the_volume(runs, monkeypatch):
    """The pose filter's photos and 40 more over two label_shard containers: one answer per image, all in the
    volume's store, the day's requests counted once, the shards' own stores gone, and a rerun answered by the
    store on the volume without a request."""
    from tests.test_labeling import make_samples

    photos = runs.volume / "data" / "raw" / "fan-out"
    samples = list(runs.m_poses.kept) + [
        s.model_copy(update={"source_path": VOLUME_DATA_DIR / "raw" / "fan-out" / s.source_path.name})
        for s in make_samples(photos, 40, seed=7)
    ]
    total = len(samples)
    key = "test-key"
    with GeminiFake(api_key=key, latency=0.05) as fake:
        monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", fake.base_url)
        monkeypatch.setenv("GEMINI_API_KEY", key)
        config = LabelConfig(labeler="gemini", concurrency=4, containers=2, rpm=60_000)
        before, counted = len(rehearsal_calls(runs.volume)), _gemini_requests_today(runs.volume)
        seen = []
        report = modal_steps.label_poses(runs.remote, samples, config, lambda done, total: seen.append((done, total)))
        assert rehearsal_calls(runs.volume)[before:] == ["label_shard"] * 2 + ["merge_label_shards"]
        assert len(report.labeled) == total == fake.requests and set(fake.requests_per_image.values()) == {1}
        assert [o.sample.sha256 for o in report.outcomes] == [s.sha256 for s in samples]
        assert report.usage[0]["requests"] == total and seen[-1] == (total, total)
        with sqlite3.connect(runs.volume / "data" / "labels.sqlite") as db:
            shas = {row[0] for row in db.execute("SELECT sha256 FROM labels WHERE status = 'labeled'")}
        assert {s.sha256 for s in samples} <= shas and _gemini_requests_today(runs.volume) == counted + total
        assert not list((runs.volume / "data" / "label-shards").glob("*"))
        assert (runs.volume / "data" / "labels.jsonl").read_text().count("\n") == total
        fake.reset_counters()
        again = modal_steps.label_poses(runs.remote, samples, config)
        assert fake.requests == 0 and [o.label for o in again.labeled] == [o.label for o in report.labeled]


def _gemini_requests_today(volume: Path) -> int:
    """Gemini requests the label store on the volume counted today (other tests share this volume)."""
    store = volume / "data" / "labels.sqlite"
    if not store.exists():
        return 0
    with sqlite3.connect(store) as db:
        query = "SELECT COALESCE(SUM(requests), 0) FROM daily_requests WHERE teacher = 'gemini'"
        (count,) = db.execute(query).fetchone()
    return count


def test_missing_secrets_on_modal_say_which_command_fixes_them(runs, monkeypatch, tmp_path):
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    samples = [s.model_dump(mode="json") for s in runs.m_poses.kept]
    with pytest.raises(ConfigurationError, match=r"modal secret create gemini-api-key GEMINI_API_KEY="):
        modal_app.label_shard.local(samples, LabelConfig(labeler="gemini").model_dump(mode="json"), "data")
    for name in ("KAGGLE_API_TOKEN", "KAGGLE_USERNAME", "KAGGLE_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(tmp_path))
    with pytest.raises(ConfigurationError, match=r"modal secret create kaggle-secret"):
        modal_app.download_images.local(SourceConfig(source="kaggle").model_dump(mode="json"), "data")


@pytest.mark.e2e
def test_training_and_packaging_on_the_volume(runs, tmp_path, place_tiny_model):
    place_tiny_model(runs.volume / "models" / "tiny-qwen3-vl")
    config = local_train_config("/data/models/tiny-qwen3-vl").model_copy(
        update={"max_steps": 2, "save_steps": 1, "eval_steps": 1}
    )
    trained = modal_steps.train(runs.remote, runs.m_split, config, runs.client)
    run_dir = runs.volume / trained.run_dir.relative_to("/data")
    assert trained.checkpoint.name == find_best_checkpoint(run_dir).name  # by eval_loss
    assert trained.loss_plot == runs.client / "runs" / run_dir.name / "loss.png" and trained.loss_plot.is_file()

    adapter_dir = tmp_path / "lora-adapter"
    assert modal_steps.place_adapter(runs.remote, trained, adapter_dir) == (adapter_dir, None)
    best = run_dir / trained.checkpoint.name
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        assert (adapter_dir / name).read_bytes() == (best / name).read_bytes()
    assert (adapter_dir / "loss.png").is_file()

    over_limit = dataclasses.replace(runs.remote, settings=ModalConfig(max_download_bytes=1))
    big = tmp_path / "big" / "lora-adapter"
    assert modal_steps.place_adapter(over_limit, trained, big) == (
        big,
        f"modal volume get --force qwen-finetune-data data/adapters/{run_dir.name}/lora-adapter {big.parent}",
    )
    assert not (big / "adapter_model.safetensors").exists()  # the weights stay on the volume
    record = json.loads((big / "modal-adapter.json").read_text())
    assert record["path"] == f"data/adapters/{run_dir.name}/lora-adapter"
    assert record["command"].startswith("modal volume get --force qwen-finetune-data ")


def test_training_progress_is_read_from_the_volume_while_waiting(tmp_path):
    from remote.calls import TrainingCalls, watch

    log = tmp_path / "data" / "runs" / "k" / "logging.jsonl"
    log.parent.mkdir(parents=True)
    lines = [
        json.dumps({"loss": 1.5, "global_step/max_steps": "5/10"}),
        "{torn",  # a line being written when the volume was committed
        json.dumps({"eval_loss": 1.2, "global_step/max_steps": "10/10"}),
    ]

    class Call:  # modal.FunctionCall for a call that finishes on the fourth poll; steps are committed meanwhile
        object_id, polls = "fc-progress", 0

        def get(self, timeout=None):
            self.polls += 1
            if self.polls < 4:
                if self.polls > 1:
                    log.write_text("\n".join(lines[: 2 * self.polls - 3]) + "\n")
                raise TimeoutError
            return {"done": True}

    steps = []

    def report(record: dict) -> None:
        steps.append(record["step"])
        raise RuntimeError("the Prefect API is down")  # a progress report that fails never stops the call

    remote = Remote(lambda name: None, RehearsalVolume(tmp_path), "data", ModalConfig(poll_seconds=0.01))
    calls = TrainingCalls(remote, "data/runs/k", tmp_path / "local" / "modal_call.json")
    result = watch(Call(), calls, "data/runs/k/logging.jsonl", report, 0.01)
    assert result == {"done": True} and steps == [5, 10]  # each step once, the torn line skipped


CHECKPOINTS_IN_A_CALL = """
import os, sys, time
from pathlib import Path
from remote import container
from remote.rehearsal.volume import mounted_volume
container.install(volume=mounted_volume(), call_id="fc-test")
run = Path(os.environ["MOTIONCOACH_REHEARSAL_MOUNT"]) / "data" / "runs" / "k"
log = Path(sys.argv[1]) / "trainer.log"
signal = Path(sys.argv[1])

def checkpoint(step, complete):
    path = run / f"checkpoint-{step}"
    path.mkdir(parents=True, exist_ok=True)
    (path / "adapter_model.safetensors").write_text("{}")
    if complete:
        (path / "optimizer.pt").write_text("state")
        (path / "trainer_state.json").write_text("{}")

container.reload()
with container.committing_checkpoints(run, log):
    checkpoint(25, complete=True)
    while not (signal / "go").exists():
        time.sleep(0.05)
    checkpoint(50, complete=False)  # still being written: a retry must not resume from it
    (signal / "50-partial").touch()
    while not (signal / "finish").exists():
        time.sleep(0.05)
    checkpoint(50, complete=True)
    time.sleep(1.0)
"""


def test_checkpoints_are_committed_as_they_complete_and_nothing_else_is_seen(tmp_path):
    """In a rehearsed call (its own mount of the volume), a complete checkpoint reaches the volume by the
    commit watcher; a checkpoint still being written does not, until it completes."""
    from remote.rehearsal.volume import MOUNT_ENV, ROOT_ENV
    from remote.rehearsal.volume import _committing as committing

    root, signal = tmp_path / "volume", tmp_path / "signal"
    (root / "data").mkdir(parents=True)
    signal.mkdir()
    env = os.environ | {
        ROOT_ENV: str(root), MOUNT_ENV: str(tmp_path / "mount"),
        "MOTIONCOACH_VOLUME_ROOT": str(tmp_path / "mount"), "MOTIONCOACH_CHECKPOINT_POLL_S": "0.05",
    }  # fmt: skip
    call = subprocess.Popen([sys.executable, "-c", CHECKPOINTS_IN_A_CALL, str(signal)], cwd=ROOT, env=env)
    committed = root / "data" / "runs" / "k"
    try:
        _wait_for(lambda: (committed / "checkpoint-25" / "trainer_state.json").exists(), timeout=60)
        (signal / "go").touch()
        _wait_for(lambda: (signal / "50-partial").exists(), timeout=60)
        (signal / "finish").touch()

        def first_seen_complete() -> bool | None:
            """Once checkpoint-50 is on the volume (read between commits): whether it came complete."""
            with committing(root):
                if (committed / "checkpoint-50").exists():
                    return (committed / "checkpoint-50" / "trainer_state.json").exists()
            return None

        deadline = time.monotonic() + 60
        while (seen := first_seen_complete()) is None:
            assert time.monotonic() < deadline, "checkpoint-50 never reached the volume"
            time.sleep(0.01)
        assert seen  # a checkpoint still being written is never what a commit is made for
    finally:
        call.wait(timeout=60)
    assert call.returncode == 0
    # The heartbeat the watcher commits with each checkpoint says the call is alive.
    assert json.loads((committed / "modal_call.json").read_text())["heartbeat"] > 0


def _wait_for(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_shards_keep_identical_images_together():
    records = [
        ImageRecord(path=Path(f"/x/{activity}/{n}.jpg"), activity=activity, sha256=sha)
        for n, (activity, sha) in enumerate([("a", "1"), ("b", "1"), ("a", "2"), ("a", "3"), ("c", "3"), ("a", "4")])
    ]
    shards = shard_records(records, 3)
    assert sorted(len(s) for s in shards) == [1, 2, 3]
    where = {r.sha256: i for i, shard in enumerate(shards) for r in shard}
    assert all(r in shards[where[r.sha256]] for r in records)  # every copy of a content in one shard
    assert len(shard_records(records, 100)) == 4  # never an empty shard


# ---- The app module and its functions' specs ----


def test_app_module_imports_without_gpu_libraries_or_credentials(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODAL_")} | {
        "HOME": str(tmp_path),
        "MOTIONCOACH_POSE_MAX_CONTAINERS": "3",
    }
    code = "\n".join(
        [
            "import inspect, json, sys",
            "import remote.app as m",
            "options = m.SPECS['filter_pose_shard'].options",
            f"heavy = sorted(set(sys.modules) & set({sorted(HEAVY)!r}))",
            "print(json.dumps({'heavy': heavy, 'max_containers': options['max_containers']}))",
        ]
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1]) == {"heavy": [], "max_containers": 3}


def _options(name: str) -> dict:
    """The options the app passes to app.function for a function (what info() leaves out)."""
    return modal_app.SPECS[name].options


# What each function needs, as the paid run requires it: a GPU only where a model runs, a secret only where
# its keys are read, the volume everywhere but the token check and the version check.
GPU_FUNCTIONS = {
    "filter_pose_shard": "L4", "train": "H200", "train_smoke": "L40S", "evaluate_adapter": "H200",
    "benchmark_models": "H200",
}  # fmt: skip
SECRETS_NEEDED = {
    "download_images": {"kaggle-secret"},
    "label_shard": {"gemini-api-key"},
    "relabel": {"gemini-api-key"},
    "benchmark_teacher": {"gemini-api-key"},
    **{name: {"huggingface-secret"} for name in
       ("download_base_model", "hub_account", "upload_adapter", "upload_merged", "upload_dataset")},
}  # fmt: skip
WITHOUT_VOLUME = {"hub_account", "app_version"}


@pytest.mark.parametrize("name", sorted(modal_app.SPECS))
def test_each_function_pays_only_for_what_it_needs(name):
    info = getattr(modal_app, name).info()
    assert [gpu for gpu, _ in info.gpus] == ([GPU_FUNCTIONS[name]] if name in GPU_FUNCTIONS else [])
    assert {s.split("'")[1] for s in info.secrets} == SECRETS_NEEDED.get(name, set())
    volumes = {} if name in WITHOUT_VOLUME else {"/data": "qwen-finetune-data"}
    assert {path: mount.name for path, mount in info.volumes.items()} == volumes
    # No function can bill more than a few hours, retries included; H200 functions retry at most once.
    assert info.timeout * (1 + (info.max_retries or 0)) <= 12 * 3600
    if GPU_FUNCTIONS.get(name) == "H200":
        assert (info.max_retries or 0) <= 1 and info.timeout * (1 + (info.max_retries or 0)) <= 7 * 3600


def test_training_and_evaluation_time_limits_fit_their_work():
    """10 epochs measure 65-100 minutes on 8 x H200 (docs/modal-training-estimate.md): the limit leaves room
    for a slow start, not a day of GPUs; the vLLM evaluation takes minutes, and keeps its answers for a retry;
    a hang is stopped by the watchdog long before the limit."""
    assert "65-100 minutes" in (ROOT / "README.md").read_text()
    train, evaluate = modal_app.train.info(), modal_app.evaluate_adapter.info()
    assert 1.5 * 100 * 60 <= train.timeout <= 4 * 3600 and train.max_retries == 1
    assert evaluate.timeout <= 3600 and evaluate.max_retries <= 1
    assert TrainConfig().stall_timeout_s < train.timeout / 4


def test_scale_out_options():
    pose, train = _options("filter_pose_shard"), _options("train")
    assert _options("train_smoke")["gpu"] == "L40S:2"  # two processes: the DDP launch, proven cheaply
    assert pose["max_containers"] == 8 and pose["gpu"] == "L4"
    assert train["gpu"] == "H200:8" and train["cpu"] == 32.0
    # Modal restarts a preempted run itself; one retry covers infrastructure errors, and the rerun
    # resumes from its checkpoint (run_sft finds it). swift's own failures are returned, not retried.
    retries = modal_app.SPECS["train"].retries
    assert retries.max_retries == 1 and retries.initial_delay.total_seconds() == 30
    assert repr(modal_app.volume) == "modal.Volume.from_name('qwen-finetune-data')"
    # A GPU container goes within a minute of its last input: no idle H200s billed after a call.
    for name in GPU_FUNCTIONS:
        assert _options(name)["scaledown_window"] <= 60, name


def test_images_install_exactly_the_lock():
    """Every image installs a requirement file that pins the lock's closure of its packages."""
    from remote import image_requirements

    for image in image_requirements.IMAGES:
        committed = Path(images.requirements_file(image)).read_text()
        assert committed == image_requirements.requirements_text(image), (
            f"remote/requirements/{image}.txt disagrees with uv.lock: run `uv run python -m remote.image_requirements`"
        )
    train = image_requirements.pinned_versions("train")
    # What ms-swift pulls in is pinned too, not only the top-level packages.
    assert {"trl", "modelscope", "ms-swift", "torch", "nvidia-nccl-cu13", "deepspeed"} <= set(train)
    lock = image_requirements.locked_packages()
    assert all(lock[name]["version"] == version for name, version in train.items())


def test_the_serving_image_pins_everything_and_agrees_with_the_lock_where_motioncoach_reads():
    """vLLM pins its own torch, so serve.txt is compiled apart; every line is still an exact pin, vLLM is the
    version the serving code targets, and what motioncoach itself calls matches what the tests ran against."""
    import re

    from motioncoach.serving.vllm import VLLM_VERSION
    from remote import image_requirements

    text = Path(images.requirements_file("serve")).read_text()
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    assert lines and all(re.fullmatch(r"[A-Za-z0-9_.\[\],-]+==\S+", line) for line in lines), lines
    served = dict(line.split("==") for line in lines)
    assert served["vllm"] == VLLM_VERSION and "torch" in served
    lock = image_requirements.locked_packages()
    for name in ("transformers", "peft", "ultralytics", "qwen-vl-utils", "pydantic-settings", "huggingface-hub"):
        assert served[name] == lock[name]["version"], f"serve.txt pins {name}=={served[name]}: recompile serve.in"


def test_an_image_that_disagrees_with_the_lock_is_caught(tmp_path):
    from remote import image_requirements

    lock = (ROOT / "uv.lock").read_text()
    changed = tmp_path / "uv.lock"
    changed.write_text(lock.replace('name = "trl"\nversion = "0.29.1"', 'name = "trl"\nversion = "0.29.2"'))
    assert "trl==0.29.2" in image_requirements.requirements_text("train", changed)
    assert image_requirements.requirements_text("train", changed) != Path(images.requirements_file("train")).read_text()


def test_images_ship_the_prompt_templates_and_the_pose_weights_where_they_are_looked_for():
    # What add_local_python_source ships: the packages' files, less what the image's ignore patterns match
    # (matched by Modal's own FilePatternMatcher), at /root/<package>/...
    ignored = modal.FilePatternMatcher(*images.SOURCE_IGNORE)
    files = {
        f"/root/{path.relative_to(ROOT).as_posix()}"
        for package in images.SHIPPED_PACKAGES
        for path in (ROOT / package).rglob("*")
        if path.is_file() and not ignored(path.relative_to(ROOT / package))
    }
    assert {"/root/motioncoach/prompts/coach_system.txt", "/root/motioncoach/prompts/teacher_user.txt"} <= files
    assert {"/root/remote/app.py", "/root/remote/container.py", "/root/remote/contract.py"} <= files
    assert not any(f.startswith(("/root/tasks/", "/root/flows/", "/root/cli/")) for f in files)
    assert not any("__pycache__" in f for f in files)
    # resolve_weights() finds a downloaded asset under ~/.cache/motioncoach/weights; HOME is /root on Modal.
    looked_up = Path("/root") / CACHE_HOME.relative_to(Path.home()) / "weights" / MODAL_POSE_WEIGHTS
    assert images.POSE_WEIGHTS_PATH == str(looked_up)


def test_smoke_preset_is_the_recipe_on_a_small_model_under_two_processes():
    from motioncoach.config import SMOKE_BASE_MODEL, smoke_train_config

    smoke, production = smoke_train_config(), TrainConfig()
    assert (smoke.base_model, smoke.nproc_per_node, smoke.num_train_epochs) == (SMOKE_BASE_MODEL, 2, 1)
    same = ("lora_rank", "lora_alpha", "lora_dropout", "learning_rate", "per_device_train_batch_size", "torch_dtype")
    assert all(getattr(smoke, name) == getattr(production, name) for name in same)
    # The full run's launch: swift's launcher starts torchrun, one process per GPU of the function.
    assert swift_launcher(smoke)[1:] == ["-m", "swift.cli.main", "sft"]
    assert swift_env(smoke, Path("/data"))["NPROC_PER_NODE"] == "2"
    assert modal_app.train_smoke.info().gpus == [("L40S", smoke.nproc_per_node)]


def test_modal_profile_defaults_are_the_real_run():
    assert (default_source(Profile.modal), default_labeler(Profile.modal)) == ("kaggle", "gemini")
    assert (default_source(Profile.local), default_labeler(Profile.local)) == ("samples", "rules")
    assert pose_filter_config(Profile.modal).weights == "yolo26x-pose.pt"
    assert pose_filter_config(Profile.local) == PoseFilterConfig()


# ---- The production training command ----


def test_eight_gpu_command_starts_one_process_per_gpu_of_the_function(tmp_path):
    """The recipe's flags are held by tests/test_training.py; here, that the modal profile sends that one
    TrainConfig, with the volume's base model, to a function with as many GPUs as processes."""
    base = tmp_path / "models" / "Qwen" / "Qwen3-VL-32B-Instruct"
    base.mkdir(parents=True)
    config = TrainConfig().model_copy(update={"base_model": str(base)})
    argv = swift_sft_args(config, dataset=tmp_path / "t.jsonl", val_dataset=tmp_path / "v.jsonl", output_dir=tmp_path)
    assert argv[argv.index("--model") + 1] == str(base) and "--max_steps" not in argv
    assert config.effective_batch_size == 2 * 4 * 8 == 64
    assert swift_env(config, tmp_path)["NPROC_PER_NODE"] == "8"  # swift's launcher starts torchrun with 8
    assert swift_launcher(config)[1:] == ["-m", "swift.cli.main", "sft"]
    assert modal_app.train.info().gpus == [("H200", config.nproc_per_node)]  # one process per GPU


# ---- Credentials ----


@pytest.fixture
def no_modal_credentials(tmp_path, monkeypatch):
    for name in list(os.environ):
        if name.startswith("MODAL_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path))
    return tmp_path


def test_missing_credentials_say_what_to_run(no_modal_credentials, monkeypatch):
    import socket

    connections = []
    real_connect = socket.socket.connect
    monkeypatch.setattr(socket.socket, "connect", lambda self, address: connections.append(address) or real_connect(
        self, address))  # fmt: skip
    with pytest.raises(ConfigurationError) as raised:
        connect(no_modal_credentials / "data")  # what every modal-profile task does first
    assert str(raised.value) == MISSING_CREDENTIALS
    assert MISSING_CREDENTIALS == (
        "Modal credentials are missing: run `modal token new`, or set MODAL_TOKEN_ID and MODAL_TOKEN_SECRET."
    )
    assert connections == []  # decided from the environment and the config file: no network, no retries


def test_credentials_are_found_where_modal_looks(no_modal_credentials, monkeypatch):
    monkeypatch.setenv("MODAL_TOKEN_ID", "ak-1")
    with pytest.raises(ConfigurationError):
        check_modal_credentials()  # an id without its secret
    monkeypatch.setenv("MODAL_TOKEN_SECRET", "as-1")
    check_modal_credentials()
    monkeypatch.delenv("MODAL_TOKEN_ID")
    monkeypatch.delenv("MODAL_TOKEN_SECRET")

    config = no_modal_credentials / ".modal.toml"
    config.write_text('[default]\ntoken_id = "ak-2"\ntoken_secret = "as-2"\n')
    check_modal_credentials()  # ~/.modal.toml, default profile
    config.write_text('[work]\ntoken_id = "ak-3"\ntoken_secret = "as-3"\nactive = true\n[home]\ntoken_id = "ak-4"\n')
    check_modal_credentials()  # the active profile
    monkeypatch.setenv("MODAL_PROFILE", "home")
    with pytest.raises(ConfigurationError, match="modal token new"):
        check_modal_credentials()  # the chosen profile lacks its secret
    monkeypatch.delenv("MODAL_PROFILE")
    moved = no_modal_credentials / "elsewhere.toml"
    config.rename(moved)
    with pytest.raises(ConfigurationError):
        check_modal_credentials()
    monkeypatch.setenv("MODAL_CONFIG_PATH", str(moved))
    check_modal_credentials()


def test_modals_own_auth_error_becomes_the_same_message(no_modal_credentials):
    if modal.config.config.get("token_id") or modal.config.config.get("token_secret"):
        pytest.skip("this machine has Modal credentials")
    with pytest.raises(ConfigurationError, match="run `modal token new`"), modal_errors():
        modal.Function.from_name("motioncoach", "train").hydrate()


def test_remote_read_of_a_missing_file_is_file_not_found(tmp_path):
    remote = Remote(lambda name: None, RehearsalVolume(tmp_path), "data")
    with pytest.raises(FileNotFoundError, match="not on the Modal volume"):
        remote.read("data/nothing.json")


def test_a_training_call_stops_before_training_when_another_owns_the_run_dir_or_its_retry_made_no_progress(
    tmp_path, monkeypatch
):
    """The body's own guards, run locally: the claim in the claims Dict decides who trains a run dir, and a
    retry after a whole time limit without a new checkpoint (Modal retries a timeout) stops at once."""
    from remote import container
    from remote.contract import CALL_RECORD, run_claim
    from remote.rehearsal.dicts import RehearsalDict
    from tests.release_data import build_release_data

    volume = tmp_path / "volume"
    data = build_release_data(volume)  # volume/data: the data dir named "data"
    monkeypatch.setenv("MOTIONCOACH_VOLUME_ROOT", str(volume))
    claims = RehearsalDict(tmp_path, "claims")
    run_dir = "data/runs/guarded"
    config = local_train_config("/data/models/none").model_dump(mode="json")
    expected = {"train": data.splits.train.sha256, "val": data.splits.val.sha256}
    claims.put(run_claim(run_dir), {"call_id": "fc-first", "at": time.time()})
    try:
        container.install(claims=claims, call_id="fc-second")
        assert modal_app.train.local(config, "data", expected, run_dir) == {
            "claimed_by": "fc-first",
            "run_dir": run_dir,
        }
        assert not (volume / run_dir / CALL_RECORD).exists()  # nothing written: it never trained

        checkpoint = volume / run_dir / "checkpoint-2"
        checkpoint.mkdir(parents=True)
        for name in ("adapter_model.safetensors", "optimizer.pt", "trainer_state.json", "adapter_config.json"):
            (checkpoint / name).write_text("{}")
        started = time.time() - modal_app.TRAIN_TIMEOUT  # the last attempt ran the whole limit
        record = {
            "call_id": "fc-first",
            "state": "running",
            "attempts": [{"started": started, "checkpoint": "checkpoint-2"}],
        }
        (volume / run_dir / CALL_RECORD).write_text(json.dumps(record))
        container.install(claims=claims, call_id="fc-first")
        result = modal_app.train.local(config, "data", expected, run_dir)
        assert result["error"].startswith(
            "The training call ran its whole 3.0 h limit without completing a checkpoint (still at checkpoint-2)"
        )
    finally:
        container.install()
