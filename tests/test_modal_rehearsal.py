"""The rehearsal is as strict as Modal: each call sees the volume as of its start or its last reload, its
writes reach others only when it commits (the last commit of a file wins), it sees only the secrets its
function mounts, and two clients cannot write one data dir on the volume at once."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from motioncoach.lock import DataDirBusy
from remote.client import connect
from remote.lease import volume_lease
from remote.rehearsal import REHEARSAL_ENV
from remote.rehearsal.calls import RehearsalFunction, calls_made
from remote.rehearsal.volume import MountedVolume, RehearsalVolume

ROOT = Path(__file__).resolve().parents[1]


def test_a_calls_writes_reach_other_calls_and_the_client_only_when_it_commits(tmp_path):
    root = tmp_path / "volume"
    (root / "data").mkdir(parents=True)
    (root / "data" / "shared.txt").write_text("before")
    first, second = MountedVolume.take(root, tmp_path / "a"), MountedVolume.take(root, tmp_path / "b")
    client = RehearsalVolume(root)

    (first.mount / "data" / "new.txt").write_text("from the first call")
    (first.mount / "data" / "shared.txt").write_text("changed by the first call")
    assert not (second.mount / "data" / "new.txt").exists()  # not committed: not seen
    with pytest.raises(FileNotFoundError):
        b"".join(client.read_file("data/new.txt"))
    assert b"".join(client.read_file("data/shared.txt")) == b"before"

    first.commit()
    assert b"".join(client.read_file("data/new.txt")) == b"from the first call"
    assert not (second.mount / "data" / "new.txt").exists()  # the second call's view is as of its start
    second.reload()
    assert (second.mount / "data" / "new.txt").read_text() == "from the first call"

    # Both write the same file: the last commit wins, as on Modal.
    (first.mount / "data" / "shared.txt").write_text("first")
    (second.mount / "data" / "shared.txt").write_text("second")
    second.commit()
    first.commit()
    assert b"".join(client.read_file("data/shared.txt")) == b"first"
    (first.mount / "data" / "new.txt").unlink()  # a deletion is committed too
    first.commit()
    assert not (root / "data" / "new.txt").exists()


def test_commits_while_the_app_writes_and_prunes_lose_nothing_and_resurrect_nothing(tmp_path):
    """A trainer writes and prunes checkpoints while the container's writes are committed in the background:
    once it stops, one more commit leaves the volume exactly as the mount, with no file of a pruned checkpoint
    left behind."""
    root = tmp_path / "volume"
    (root / "data").mkdir(parents=True)
    mounted = MountedVolume.take(root, tmp_path / "mount")
    runs = mounted.mount / "data" / "runs"
    stop = threading.Event()

    def trainer() -> None:
        step = 0
        while not stop.is_set():
            step += 1
            checkpoint = runs / f"checkpoint-{step}"
            checkpoint.mkdir(parents=True)
            for name in ("adapter_model.safetensors", "optimizer.pt", "args.json", "trainer_state.json"):
                (checkpoint / name).write_text(f"{name} at {step}")
            if step > 2:
                shutil.rmtree(runs / f"checkpoint-{step - 2}")

    writer = threading.Thread(target=trainer)
    writer.start()
    try:
        for _ in range(60):  # Modal's background commits: an explicit one would fail on the files being written
            mounted.background_commit()
    finally:
        stop.set()
        writer.join()
    mounted.commit()

    def contents(base: Path) -> dict[str, str]:
        return {p.relative_to(base).as_posix(): p.read_text() for p in base.rglob("*") if p.is_file()}

    assert contents(root / "data") == contents(mounted.mount / "data")
    assert len({p.parent for p in (root / "data" / "runs").rglob("*.pt")}) == 2  # the two kept checkpoints


def test_volume_paths_in_json_read_as_on_modal_and_open_in_the_next_call(tmp_path):
    """A call writes its own mount's paths; the volume holds /data/... (as on Modal); the next call reads
    its own mount's paths, which open there."""
    root = tmp_path / "volume"
    (root / "data" / "raw").mkdir(parents=True)
    (root / "data" / "raw" / "photo.jpg").write_bytes(b"jpeg")
    writer = MountedVolume.take(root, tmp_path / "a")
    photo = writer.mount / "data" / "raw" / "photo.jpg"
    (writer.mount / "data" / "cache.json").write_text(json.dumps({"source_path": str(photo)}))
    writer.commit()
    assert json.loads((root / "data" / "cache.json").read_text()) == {"source_path": "/data/data/raw/photo.jpg"}
    reader = MountedVolume.take(root, tmp_path / "b")
    path = Path(json.loads((reader.mount / "data" / "cache.json").read_text())["source_path"])
    assert path == reader.mount / "data" / "raw" / "photo.jpg" and path.read_bytes() == b"jpeg"


def test_a_call_sees_only_the_secrets_its_function_mounts_and_its_images_variables(tmp_path, monkeypatch):
    monkeypatch.setenv("GEMINI_API_KEY", "rehearsal-gemini-key")
    monkeypatch.setenv("HF_TOKEN", "hf_rehearsal_token_0123456789")
    monkeypatch.setenv("SOME_LOCAL_SETTING", "not for the container")
    root = tmp_path / "volume"
    assert RehearsalFunction(root, "app_version").remote()  # no secret: the checkout's version
    labeled = RehearsalFunction(root, "label_shard").remote([], {"labeler": "rules"}, "data")
    assert labeled["report"]["outcomes"] == []
    seen = {
        function: json.loads(
            next((root / ".rehearsal" / "calls" / call).glob("attempts/*/environment.json")).read_text()
        )
        for function, call in calls_made(root)
    }
    assert "GEMINI_API_KEY" in seen["label_shard"] and "HF_TOKEN" not in seen["label_shard"]
    assert not {"GEMINI_API_KEY", "HF_TOKEN", "SOME_LOCAL_SETTING"} & set(seen["app_version"])
    assert "SOME_LOCAL_SETTING" not in seen["label_shard"]
    assert "MOTIONCOACH_APP_VERSION" in seen["app_version"]  # the image's own variables are there
    # Names only are recorded: no value reaches the rehearsal's files.
    files = [p for p in (root / ".rehearsal").rglob("*") if p.is_file()]
    assert not [p for p in files if b"rehearsal-gemini-key" in p.read_bytes()]


HOLDER = """
import sys, time
from pathlib import Path
from remote.client import connect
from remote.lease import volume_lease
with volume_lease(connect(Path(sys.argv[1])), "motioncoach-pipeline run 'brave-fox'"):
    print("held", flush=True)
    time.sleep(120)
"""


def test_a_second_client_on_the_same_volume_data_dir_is_refused_with_the_holders_name(tmp_path, monkeypatch):
    """Two machines whose data dirs are both named `data` write /data/data on the volume: the second waits."""
    volume = tmp_path / "volume"
    monkeypatch.setenv(REHEARSAL_ENV, str(volume))
    env = os.environ | {REHEARSAL_ENV: str(volume)}
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path / "one" / "data")], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(DataDirBusy) as busy:
            with volume_lease(connect(tmp_path / "two" / "data"), "build-dataset run 'calm-owl'"):
                pass
        message = str(busy.value)
        assert message.startswith("/data/data on the Modal volume 'qwen-finetune-data' is in use by ")
        assert "motioncoach-pipeline run 'brave-fox'" in message and f"pid {holder.pid}" in message
        assert "Nothing was changed." in message
        with volume_lease(connect(tmp_path / "two" / "other"), "build-dataset run 'calm-owl'"):
            pass  # another name is another data dir on the volume
    finally:
        holder.kill()
        holder.wait()


def test_a_lease_left_by_a_client_that_died_expires(tmp_path, monkeypatch):
    import time

    from motioncoach.lock import DataDirBusy
    from remote.contract import lease_claim
    from remote.lease import LEASE_TTL_SECONDS

    monkeypatch.setenv(REHEARSAL_ENV, str(tmp_path / "volume"))
    remote = connect(tmp_path / "data")
    claim = lease_claim("qwen-finetune-data", "data")
    old = {"owner": "someone@elsewhere", "host": "elsewhere", "pid": 1, "run": "an old run", "token": "x",
           "heartbeat": time.time() - LEASE_TTL_SECONDS - 1}  # fmt: skip
    remote.claims.put(claim, old)
    with volume_lease(remote, "relabel run 'quick-cat'"):
        assert remote.claims.get(claim)["run"] == "relabel run 'quick-cat'"
    assert remote.claims.get(claim) is None  # released at the end
    # Two clients taking over the same expired lease at once: only the first to claim its takeover gets it.
    from remote.lease import _take

    remote.claims.put(claim, old | {"token": "y"})
    _take(remote.claims, claim, {"run": "first", "token": "t1", "heartbeat": time.time()}, "/data/data")
    remote.claims.put(claim, old | {"token": "y"})  # the second read the expired lease before the first took it
    with pytest.raises(DataDirBusy, match="was just taken over by another client"):
        _take(remote.claims, claim, {"run": "second", "token": "t2", "heartbeat": time.time()}, "/data/data")


def test_the_modal_hub_preflight_names_a_repo_the_secret_disagrees_on_and_an_unused_local_token(
    tmp_path, monkeypatch, prefect_server
):
    """On the modal profile uploads run on Modal with huggingface-secret's token: a repo id that the secret
    names otherwise stops the run at its preflight naming both, and a local HF_TOKEN is said to be unused."""
    import logging

    from prefect import flow

    from motioncoach.config import Profile
    from motioncoach.errors import ConfigurationError
    from motioncoach.publish import ReleaseConfig
    from remote.rehearsal import SECRETS_DIR
    from tasks.hub import hub_preflight
    from tests.fakes.hub import FakeHub

    volume = tmp_path / "volume"
    monkeypatch.setenv(REHEARSAL_ENV, str(volume))
    local_token = "hf_local_token_never_sent_0123456789"
    warnings: list[str] = []

    class Kept(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            warnings.append(record.getMessage())

    @flow(name="hub-preflight-on-modal")
    def preflight() -> None:
        hub_preflight(ReleaseConfig(), Profile.modal, tmp_path / "data")

    handler = Kept(level=logging.WARNING)
    logging.getLogger("prefect").addHandler(handler)
    try:
        with FakeHub(token="hf_token_in_the_modal_secret_0123", user="workspace-bot") as hub:
            (volume / SECRETS_DIR).mkdir(parents=True)
            secret = volume / SECRETS_DIR / "huggingface-secret.json"
            named = {"HF_TOKEN": hub.token, "HF_ENDPOINT": hub.url, "HF_ADAPTER_REPO_ID": "workspace-bot/from-secret"}
            secret.write_text(json.dumps(named))
            for name, value in {"HF_TOKEN": local_token, "HF_ENDPOINT": hub.url,
                                "HF_ADAPTER_REPO_ID": "workspace-bot/coach"}.items():  # fmt: skip
                monkeypatch.setenv(name, value)
            with pytest.raises(ConfigurationError) as refused:
                preflight()
            assert str(refused.value).startswith(
                "HF_ADAPTER_REPO_ID is 'workspace-bot/from-secret' in the Modal secret huggingface-secret but "
                "'workspace-bot/coach' here."
            )
            secret.write_text(json.dumps({"HF_TOKEN": hub.token, "HF_ENDPOINT": hub.url}))
            preflight()  # the secret names no repo: this machine's is used, with the secret's token
    finally:
        logging.getLogger("prefect").removeHandler(handler)
    assert any(
        "HF_TOKEN on this machine is not used on the modal profile" in w and "workspace-bot" in w for w in warnings
    ), warnings
    calls = [p for p in (volume / ".rehearsal" / "calls").rglob("*") if p.is_file()]
    assert not [p for p in calls if local_token.encode() in p.read_bytes()]  # the local token never went there


def test_a_reload_and_the_reload_after_a_commit_fail_while_a_file_of_the_mount_is_open(tmp_path):
    """As Modal's: "there are open files preventing the operation". A commit still publishes this call's
    writes, and only them: what another call committed waits for a reload."""
    root = tmp_path / "volume"
    (root / "data").mkdir(parents=True)
    first, second = MountedVolume.take(root, tmp_path / "a"), MountedVolume.take(root, tmp_path / "b")
    for mounted in (first, second):
        (mounted.mount / "data").mkdir()
    (second.mount / "data" / "theirs.txt").write_text("another call's")
    second.commit()
    log = open(first.mount / "data" / "swift.log", "w")  # noqa: SIM115 - held open, as a trainer holds its log
    try:
        log.write("step 1\n")
        log.flush()
        (first.mount / "data" / "checkpoint.txt").write_text("step 1")
        with pytest.raises(RuntimeError, match=r"^there are open files preventing the operation: data/swift.log"):
            first.commit()
        assert (root / "data" / "checkpoint.txt").read_text() == "step 1"  # published before the reload failed
        with pytest.raises(RuntimeError, match="there are open files preventing the operation"):
            first.reload()
    finally:
        log.close()
    assert not (first.mount / "data" / "theirs.txt").exists()  # a commit brings in nothing of others'
    first.reload()
    assert (first.mount / "data" / "theirs.txt").read_text() == "another call's"


def test_claims_put_first_win_across_processes(tmp_path):
    """The claims Dict's put(skip_if_exists=True), as the client and every call see it: one winner."""
    from remote.rehearsal.dicts import RehearsalDict

    racers = [
        subprocess.Popen(
            [sys.executable, "-c", "import sys; from pathlib import Path; from remote.rehearsal.dicts import "
             "RehearsalDict; print(RehearsalDict(Path(sys.argv[1]), 'claims').put('run', sys.argv[2], "
             "skip_if_exists=True))", str(tmp_path), f"call-{n}"],
            cwd=ROOT, stdout=subprocess.PIPE, text=True,
        )
        for n in range(6)
    ]  # fmt: skip
    won = [racer.communicate()[0].strip() == "True" for racer in racers]
    assert won.count(True) == 1
    claims = RehearsalDict(tmp_path, "claims")
    assert claims.get("run") == f"call-{won.index(True)}"
    assert claims.pop("run") == f"call-{won.index(True)}" and claims.get("run") is None


def test_a_call_id_is_looked_up_when_used_and_rehearsed_bodies_import_only_what_the_image_ships(tmp_path):
    from modal.exception import NotFoundError

    from remote.rehearsal.attempt import SHIPPED, ImageOnly
    from remote.rehearsal.calls import RehearsalCall

    call = RehearsalCall.from_id(tmp_path, "fc-never-made")  # lazy, as modal.FunctionCall.from_id
    with pytest.raises(NotFoundError, match="fc-never-made"):
        call.get(timeout=0)
    finder = ImageOnly(SHIPPED)
    for unshipped in ("tasks", "flows.pipeline", "cli.main", "deployments.serve"):
        with pytest.raises(ModuleNotFoundError, match="the Modal images ship only motioncoach, remote"):
            finder.find_spec(unshipped, None)
    assert finder.find_spec("motioncoach.labels", None) is None and finder.find_spec("remote.app", None) is None
    assert finder.find_spec("numpy", None) is None  # installed packages are the image's business
