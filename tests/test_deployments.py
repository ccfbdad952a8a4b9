"""prefect.yaml against a real Prefect server: deploy, run through a process worker, retry what failed.

One module-scoped server (SQLite, 127.0.0.1) and one worker serve every test here; flows run in
the worker's subprocesses exactly as they do for users.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from motioncoach.dataset import read_jsonl
from motioncoach.hashing import file_sha256
from motioncoach.teachers.store import STORE_FILE, LabelStore
from remote.rehearsal import REHEARSAL_ENV, TRAIN_STEPS_ENV
from tests.fakes import GeminiFake

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

REPO = Path(__file__).resolve().parent.parent
KEY = "fake-gemini-deploy-secret-0123456789"
PREFECT = [sys.executable, "-m", "prefect"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def teacher():
    with GeminiFake(api_key=KEY, retry_after=0.01) as fake:
        yield fake


@pytest.fixture(scope="module")
def server(tmp_path_factory, teacher):
    """A Prefect server, the work pool, `prefect deploy --all`, and a process worker."""
    home = tmp_path_factory.mktemp("prefect-home")
    volume = tmp_path_factory.mktemp("volume")  # the modal deployments run rehearsed, on this stand-in volume
    port = _free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")},
        "PREFECT_HOME": str(home),
        "PREFECT_API_URL": api,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_UI_ENABLED": "false",
        "PREFECT_WORKER_QUERY_SECONDS": "1",
        "GOOGLE_GEMINI_BASE_URL": teacher.base_url,
        "GEMINI_API_KEY": KEY,
        REHEARSAL_ENV: str(volume),
        TRAIN_STEPS_ENV: "500",  # minutes of CPU: a rehearsed training call runs until it is cancelled
    }
    log = open(home / "server.log", "w")
    server = subprocess.Popen(
        [*PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)], env=env, stdout=log, stderr=log
    )
    worker = None
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                if httpx.get(f"{api}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline and server.poll() is None, (home / "server.log").read_text()[-3000:]
            time.sleep(1)

        def run(*args: str) -> subprocess.CompletedProcess:
            return subprocess.run([*PREFECT, "--no-prompt", *args], env=env, cwd=REPO, capture_output=True, text=True)

        created = run("work-pool", "create", "motioncoach-local", "--type", "process")
        assert created.returncode == 0, created.stdout + created.stderr
        deployed = run("deploy", "--all")
        worker_log = open(home / "worker.log", "w")
        worker = subprocess.Popen(
            [*PREFECT, "worker", "start", "--pool", "motioncoach-local"], env=env, cwd=REPO, stdout=worker_log,
            stderr=worker_log,
        )  # fmt: skip
        yield {"api": api, "env": env, "deployed": deployed, "run": run, "home": home, "volume": volume}
    finally:
        for process in (worker, server):
            if process is not None:
                process.terminate()
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()


def _wait(api: str, flow_run_id: str, timeout: float = 400) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = httpx.get(f"{api}/flow_runs/{flow_run_id}", timeout=10).json()["state"]
        if state["type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
            return state["type"]
        time.sleep(2)
    raise AssertionError(f"flow run {flow_run_id} did not finish in {timeout} s")


def _start(server, deployment: str, *params: str) -> str:
    args = ["deployment", "run", deployment]
    for param in params:
        args += ["--param", param]
    started = server["run"](*args)
    assert started.returncode == 0, started.stdout + started.stderr
    return re.search(r"UUID: ([0-9a-f-]{36})", started.stdout).group(1)


def _task_states(api: str, flow_run_id: str) -> dict[str, str]:
    runs = httpx.post(f"{api}/task_runs/filter", json={"flow_runs": {"id": {"any_": [flow_run_id]}}}, timeout=10).json()
    # A retried flow run keeps its first attempt's task runs too: the newest of each name wins.
    return {r["name"].rsplit("-", 1)[0]: r["state"]["name"] for r in sorted(runs, key=lambda r: r["created"])}


def test_prefect_yaml_deploys_every_deployment_with_the_nightly_schedule(server):
    assert server["deployed"].returncode == 0, server["deployed"].stdout[-3000:] + server["deployed"].stderr[-3000:]
    deployments = httpx.post(f"{server['api']}/deployments/filter", json={}, timeout=10).json()
    flows = {f["id"]: f["name"] for f in httpx.post(f"{server['api']}/flows/filter", json={}, timeout=10).json()}
    names = {f"{flows[d['flow_id']]}/{d['name']}": d for d in deployments}
    assert set(names) >= {
        "motioncoach-pipeline/local", "build-dataset/local", "finetune/local",
        "motioncoach-pipeline/modal", "build-dataset/modal", "finetune/modal", "relabel/nightly",
    }  # fmt: skip
    nightly = names["relabel/nightly"]
    assert [s["schedule"]["cron"] for s in nightly["schedules"]] == ["0 3 * * *"]
    # One run per data dir: a second run waits in line for the first (ENQUEUE), it is not cancelled.
    for name in ("motioncoach-pipeline/local", "build-dataset/local", "finetune/local", "relabel/nightly",
                 "build-dataset/modal", "finetune/modal"):  # fmt: skip
        limit = names[name]["global_concurrency_limit"]
        assert limit is not None and limit["limit"] == 1, name
        assert names[name]["concurrency_options"]["collision_strategy"] == "ENQUEUE", name
    assert names["build-dataset/modal"]["parameters"]["profile"] == "modal"
    # A data dir built on Modal is relabeled on the volume, where its images are.
    assert names["relabel/nightly-modal"]["parameters"]["profile"] == "modal"
    assert names["relabel/nightly"]["parameters"]["profile"] == "local"
    assert all(d["description"] for d in names.values())
    # Runs wherever the worker starts: the working directory is recorded at deploy time, never $PWD.
    (pull,) = names["build-dataset/local"]["pull_steps"]
    directory = pull["prefect.deployments.steps.set_working_directory"]["directory"]
    assert directory == str(REPO) and "$" not in directory
    # One control per setting, each described and bounded in the UI form.
    schema = names["motioncoach-pipeline/local"]["parameter_openapi_schema"]
    fields = schema["properties"]
    assert all(fields[name].get("description") for name in fields)
    assert fields["max_samples"]["minimum"] == 1 and fields["max_download_mb"]["minimum"] == 0
    labeling = schema["definitions"]["LabelingSettings"]["properties"]
    release = schema["definitions"]["ReleaseSettings"]["properties"]
    assert "labeler" not in labeling and "push_dataset" not in release
    assert "enabled" not in schema["definitions"]["GateRules"]["properties"]
    relabel = names["relabel/nightly"]["parameter_openapi_schema"]
    assert not {"daily_budget", "batch", "labeler"} & set(relabel["definitions"]["TeacherSettings"]["properties"])


def test_a_deployment_run_completes_through_the_process_worker(server, tmp_path):
    data = tmp_path / "data"
    flow_run = _start(server, "build-dataset/local", "source=samples", f"data_dir={data}")
    assert _wait(server["api"], flow_run) == "COMPLETED"
    assert (data / "splits" / "val.jsonl").is_file() and (data / "pose_dataset.jsonl").is_file()


def test_a_failed_labeling_run_is_retried_with_only_what_failed(server, tmp_path, teacher):
    data = tmp_path / "data"
    teacher.faults = lambda call: "unavailable"
    teacher.reset_counters()
    labeling = '{"max_attempts": 1, "backoff_initial_s": 0.01}'
    flow_run = _start(server, "build-dataset/local", f"data_dir={data}", "labeler=gemini", f"labeling={labeling}")
    assert _wait(server["api"], flow_run) == "FAILED"
    first = _task_states(server["api"], flow_run)
    assert first["label-poses"] == "Failed" and first["filter-poses"] == "Completed"

    teacher.faults = None
    teacher.reset_counters()
    retried = server["run"]("flow-run", "retry", flow_run)
    assert retried.returncode == 0, retried.stdout + retried.stderr
    assert _wait(server["api"], flow_run) == "COMPLETED"
    again = _task_states(server["api"], flow_run)
    assert again["filter-poses"] == "Cached"
    assert again["label-poses"] == "Completed"
    kept = [file_sha256(data / row["images"][0]) for row in read_jsonl(data / "pose_dataset.jsonl")]
    store = LabelStore(data / STORE_FILE)
    try:
        labels = {sha: store.labels_of(sha) for sha in kept}
    finally:
        store.close()
    assert len(kept) == 3 and all(len(rows) == 1 for rows in labels.values())
    assert teacher.requests == 3  # each kept photo labeled exactly once


def test_cancelling_a_modal_deployment_run_cancels_its_training_call_and_containers(
    server, tmp_path, place_tiny_model, monkeypatch
):
    """`prefect flow-run cancel` on a running finetune/modal run (rehearsed): the worker stops the flow run's
    process, and the 8xH200 call it was waiting on is cancelled with its containers, not left running."""
    from remote.client import connect
    from remote.rehearsal import SECRETS_DIR
    from remote.rehearsal.calls import RehearsalCall, calls_made
    from tests.fakes.hub import FakeHub
    from tests.release_data import build_release_data

    with FakeHub() as hub:  # huggingface-secret's token, which the modal profile's preflight checks
        secret = server["volume"] / SECRETS_DIR / "huggingface-secret.json"
        secret.parent.mkdir(parents=True, exist_ok=True)
        secret.write_text(json.dumps({"HF_TOKEN": hub.token, "HF_ENDPOINT": hub.url}))
        volume = server["volume"]
        data = build_release_data(tmp_path / "client")
        monkeypatch.setenv(REHEARSAL_ENV, str(volume))
        remote = connect(data.data_dir)
        remote.upload_dir(data.data_dir, remote.name)  # what the dataset steps leave on the volume
        place_tiny_model(volume / "models" / "tiny-qwen3-vl")
        flow_run = _start(
            server, "finetune/modal", f"data_dir={data.data_dir}", f"adapter_dir={tmp_path / 'adapter'}", "gate=false"
        )
        deadline = time.monotonic() + 400
        while not any(
            p.stat().st_size for p in volume.glob(".rehearsal/calls/*/attempts/*/mount/*/runs/*/logging.jsonl")
        ):
            state = httpx.get(f"{server['api']}/flow_runs/{flow_run}", timeout=10).json()["state"]["type"]
            assert state in ("SCHEDULED", "PENDING", "RUNNING") and time.monotonic() < deadline, (
                state, (server["home"] / "worker.log").read_text()[-3000:]
            )  # fmt: skip
            time.sleep(1)
        cancelled = server["run"]("flow-run", "cancel", flow_run)
        assert cancelled.returncode == 0, cancelled.stdout + cancelled.stderr
        assert _wait(server["api"], flow_run, timeout=180) == "CANCELLED"
        (record_path,) = data.data_dir.glob("runs/*/modal_call.json")
        record = json.loads(record_path.read_text())
        assert record["state"] == "cancelled"
        assert [call for function, call in calls_made(volume) if function == "train"] == [record["call_id"]]
        call = RehearsalCall.from_id(volume, record["call_id"])
        assert call.cancel_request() == {"terminate_containers": True}
        deadline = time.monotonic() + 60
        while call._alive():
            assert time.monotonic() < deadline, "the cancelled call is still running"
            time.sleep(0.5)


def test_the_served_deployments_register_beside_the_pools_and_run_from_one_process(server, tmp_path):
    """`python -m deployments.serve`: the same flows as `*/served` and `relabel/nightly-served` (never the
    pool's names), one run at a time, the nightly schedule; a run triggered by name completes in it."""
    log = open(tmp_path / "serve.log", "w")
    served = subprocess.Popen([sys.executable, "-m", "deployments.serve"], env=server["env"], cwd=REPO, stdout=log,
                              stderr=log)  # fmt: skip
    try:
        deadline = time.monotonic() + 180
        while True:
            deployments = httpx.post(f"{server['api']}/deployments/filter", json={}, timeout=10).json()
            flows = {
                f["id"]: f["name"] for f in httpx.post(f"{server['api']}/flows/filter", json={}, timeout=10).json()
            }
            names = {f"{flows[d['flow_id']]}/{d['name']}": d for d in deployments}
            if "relabel/nightly-served" in names:
                break
            assert time.monotonic() < deadline and served.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
            time.sleep(1)
        expected = {"motioncoach-pipeline/served", "build-dataset/served", "finetune/served", "relabel/nightly-served"}
        assert expected <= set(names) and "build-dataset/local" in names  # beside the pool's, not instead
        assert [s["schedule"]["cron"] for s in names["relabel/nightly-served"]["schedules"]] == ["0 3 * * *"]
        for name in expected:
            assert names[name]["global_concurrency_limit"]["limit"] == 1, name
            assert names[name]["concurrency_options"]["collision_strategy"] == "ENQUEUE", name
        data = tmp_path / "data"
        flow_run = _start(server, "build-dataset/served", "source=samples", f"data_dir={data}")
        assert _wait(server["api"], flow_run) == "COMPLETED", (tmp_path / "serve.log").read_text()[-3000:]
        assert (data / "splits" / "val.jsonl").is_file()
    finally:
        served.terminate()
        try:
            served.wait(timeout=30)
        except subprocess.TimeoutExpired:
            served.kill()


def test_a_deployment_run_with_an_audit_suspends_and_resumes_with_the_verdicts_sent_through_the_api(server, tmp_path):
    """build-dataset/local with audit=4: the run suspends (its worker process exits), is resumed with four
    verdicts through Prefect's API, runs again with its finished tasks Cached, and keeps the rejected out."""
    from motioncoach.audit import AuditBook, candidates_in, pending
    from tests.photos import single_person_photos

    photos = single_person_photos(tmp_path / "photos", 6, activities=("squat", "yoga"))
    data = tmp_path / "data"
    flow_run = _start(server, "build-dataset/local", f"source={photos}", f"data_dir={data}", "audit=4")
    deadline = time.monotonic() + 300
    while True:
        run = httpx.get(f"{server['api']}/flow_runs/{flow_run}", timeout=10).json()
        keyset = (run["state"].get("state_details") or {}).get("run_input_keyset")
        if run["state"]["name"] == "Suspended" and keyset:
            schema = httpx.get(f"{server['api']}/flow_runs/{flow_run}/input/{keyset['schema']}", timeout=10)
            if schema.status_code == 200:
                break
        assert run["state"]["type"] not in ("COMPLETED", "FAILED", "CRASHED"), run["state"]
        assert time.monotonic() < deadline, run["state"]
        time.sleep(1)
    todo = pending(candidates_in(data), 4, AuditBook.read(data))
    run_input = {c.short_id: {"verdict": "approve"} for c in todo[1:]}
    run_input[todo[0].short_id] = {"verdict": "reject", "reason": "a different activity", "then": "drop"}
    resumed = httpx.post(f"{server['api']}/flow_runs/{flow_run}/resume", json={"run_input": run_input}, timeout=10)
    assert resumed.is_success and resumed.json()["status"] == "ACCEPT", resumed.text
    assert _wait(server["api"], flow_run) == "COMPLETED"
    states = _task_states(server["api"], flow_run)
    assert states["filter-poses"] == states["label-poses"] == "Cached"  # the rerun after the resume
    rows = {row["images"][0].split("/")[-1].split(".")[0] for row in read_jsonl(data / "pose_dataset.jsonl")}
    assert todo[0].sha256 not in rows and len(rows) == 5
    assert [v.verdict for v in AuditBook.read(data).verdicts].count("reject") == 1
