"""The release: the gate, the lineage record, the model and dataset cards, and Hub uploads.

Uploads go through the real huggingface_hub HfApi to tests/fakes/hub.py, a fake Hub speaking the
HTTP API on 127.0.0.1 (create repo, preupload, commit: the regular, non-LFS upload path).
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import pytest

from motioncoach.errors import ConfigurationError
from motioncoach.evaluation import (
    EVAL_FILE,
    EvalReport,
    GateConfig,
    Prompt,
    decide,
    evaluate_items,
    load_items,
    local_eval_config,
    rules_generator,
    write_eval_files,
)
from motioncoach.evaluation.gallery import GALLERY_DIR, draw_gallery
from motioncoach.hashing import file_sha256
from motioncoach.publish import (
    CARD_FILE,
    LINEAGE_FILE,
    HubConfig,
    HubError,
    HubSettings,
    HubStatus,
    Lineage,
    build_lineage,
    check_hub_settings,
    plan_adapter_upload,
    stage_dataset,
    upload_adapter_folder,
    upload_folder,
    whoami,
    write_model_card,
)
from motioncoach.training.checkpoints import copy_adapter
from tests.fakes.hub import FakeHub
from tests.release_data import build_release_data, stand_in_training

BAD_TOKEN = "hf_definitely_wrong_token_42"
FAST = HubConfig(retry_delays_s=(0.0, 0.0))


GATE = GateConfig(min_rows=1)  # four photos make two validation rows: the gate's other rules still apply


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    """A data dir, a stand-in training record, and an evaluation whose 'adapter' answers like the teacher."""
    root = tmp_path_factory.mktemp("release")
    data = build_release_data(root)
    trained = stand_in_training(data.data_dir)
    items, _ = load_items(data.splits.val.path, data.data_dir)
    teacher = {item.key: item.teacher.to_json() for item in items}

    def garbage(prompts: list[Prompt]) -> list[str]:
        return ['{"status": "success"}' if i % 2 else "I think the form is fine." for i, _ in enumerate(prompts)]

    def like_the_teacher(prompts: list[Prompt]) -> list[str]:
        return [teacher[p.key] for p in prompts]

    report = evaluate_items(
        items,
        {"base": garbage, "adapter": like_the_teacher, "rules": rules_generator(items)},
        local_eval_config(trained.config),
        base_model=trained.config.base_model,
        adapter=str(trained.checkpoint),
    )
    return data, trained, report


def _release_dir(release, tmp_path: Path, hub: HubStatus | None = None) -> tuple[Path, Lineage]:
    """An adapter dir as the release step leaves it: adapter, eval.json, gallery, lineage.json, README.md."""
    data, trained, report = release
    adapter_dir = tmp_path / "lora-adapter"
    copy_adapter(trained.checkpoint, adapter_dir)
    write_eval_files(report, adapter_dir)
    draw_gallery(report, adapter_dir / GALLERY_DIR, 2)
    decision = decide(report, GATE)
    lineage = build_lineage(
        data_dir=data.data_dir,
        splits=data.splits,
        trained=trained,
        report=report,
        decision=decision,
        adapter_dir=adapter_dir,
        hub=hub or HubStatus(status="pending", repo_id="tester/motioncoach-lora"),
    )
    lineage.write(adapter_dir)
    write_model_card(adapter_dir, lineage, HubConfig())
    return adapter_dir, lineage


def _tree(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): file_sha256(p) for p in sorted(folder.rglob("*")) if p.is_file()}


def _adapter_like(report: EvalReport, model: str) -> EvalReport:
    """The report with the adapter's row replaced by another model's metrics."""
    row = report.metrics(model).model_copy(update={"model": "adapter"})
    return report.model_copy(update={"models": [row if m.model == "adapter" else m for m in report.models]})


def test_gate_passes_only_when_the_adapter_beats_the_base(release):
    _, _, report = release
    decision = decide(report, GATE)
    assert decision.passed and decision.enabled
    assert [c["metric"] for c in decision.comparisons] == ["schema_valid_rate", "agreement"]
    assert "beats the base model" in decision.reason

    # An adapter no better than its base: a tie is not a win.
    tie = decide(_adapter_like(report, "base"), GATE)
    assert not tie.passed and "does not beat the base model" in tie.reason
    assert "schema_valid_rate 0.000 vs base 0.000 (difference +0.000" in tie.reason
    # Roles swapped: the base answers like the teacher, the adapter does not.
    swapped = [
        m.model_copy(update={"model": {"base": "adapter", "adapter": "base"}.get(m.model, m.model)})
        for m in report.models
    ]
    worse = decide(report.model_copy(update={"models": swapped}), GATE)
    assert not worse.passed and "schema_valid_rate 0.000 vs base 1.000" in worse.reason
    # A margin must be exceeded; a disabled gate lets anything through and says what it would have said.
    assert not decide(report, GateConfig(min_margin=1.0, min_rows=1)).passed
    disabled = decide(report.model_copy(update={"models": swapped}), GateConfig(enabled=False))
    assert disabled.passed and not disabled.enabled and "gate disabled" in disabled.reason
    with pytest.raises(ValueError, match="gate metrics"):
        GateConfig(metrics=("score_mae",))


def test_the_gate_needs_enough_rows_reports_intervals_and_passes_a_tie_at_the_ceiling(release, tmp_path):
    _, _, report = release
    rows = len(report.rows)
    few = decide(report, GateConfig())  # the default asks for 20 rows
    assert not few.passed and f"only {rows} validation rows were evaluated, fewer than the 20" in few.reason
    (schema, agreement) = decide(report, GATE).comparisons
    low, high = agreement["interval"]
    assert agreement["difference"] == 1.0 and low <= 1.0 <= high and "95% interval" in decide(report, GATE).reason
    perfect = report.metrics("adapter").model_copy(update={"model": "base"})
    both_perfect = report.model_copy(update={"models": [perfect if m.model == "base" else m for m in report.models]})
    assert decide(both_perfect, GATE).passed  # 1.000 against 1.000: nothing left to win
    write_eval_files(report, tmp_path, decide(report, GATE))
    gate = json.loads((tmp_path / "eval.json").read_text())["gate"]
    assert gate["passed"] and gate["rows"] == rows and gate["comparisons"][1]["interval"] == [low, high]


def test_evaluation_scores_every_model_against_the_teacher(release):
    _, _, report = release
    assert [m.model for m in report.models] == ["base", "adapter", "rules"]
    base, adapter, rules = (report.metrics(n) for n in ("base", "adapter", "rules"))
    rows = len(report.rows)
    assert rows == 3 and base.rows == adapter.rows == rules.rows == rows
    # Answers alternate between prose and a JSON object that is not a label.
    assert base.json_valid_rate == round(1 / rows, 4) and base.schema_valid_rate == 0.0
    assert base.score_mae is None and base.agreement == 0.0
    assert adapter.model_dump(exclude={"model"}) == rules.model_dump(exclude={"model"}) == {
        "rows": rows, "json_valid_rate": 1.0, "schema_valid_rate": 1.0, "grounded_rate": 1.0, "score_mae": 0.0,
        "focus_joint_agreement": 1.0, "side_agreement": 1.0, "agreement": 1.0, "severity_agreement": 1.0,
    }  # fmt: skip
    first = report.rows[0].scores["base"]
    assert not first.json_valid and first.problem.startswith("not valid JSON")


def test_eval_json_and_the_card_carry_the_real_numbers(release, tmp_path):
    adapter_dir, lineage = _release_dir(release, tmp_path)
    saved = json.loads((adapter_dir / EVAL_FILE).read_text())
    assert [m["model"] for m in saved["models"]] == ["base", "adapter", "rules"]
    assert EvalReport.model_validate({**saved, "rows": []}).metrics("adapter").schema_valid_rate == 1.0

    card = (adapter_dir / CARD_FILE).read_text()
    front, body = card.split("---\n", 2)[1:]
    assert "base_model: Qwen/Qwen3-VL-32B-Instruct" in front and "library_name: peft" in front
    assert "license: apache-2.0" in front and "- lora" in front and "pipeline_tag: image-text-to-text" in front
    # json, schema, grounded, score error, focus joint, side, agreement, severity: as worked out for this release
    for perfect in ("adapter", "rules"):
        assert f"| {perfect} | 1.000 | 1.000 | 1.000 | 0.000 | 1.000 | 1.000 | 1.000 | 1.000 |" in body
    assert "| base | 0.333 | 0.000 | 0.000 | n/a |" in body
    # Training configuration, dataset size and sources with their terms, teacher and prompt version.
    assert "| lora_rank | 256 |" in body and "eval_loss 0.812" in body
    assert f"{lineage.dataset.rows} photos" in body and "1 for training and 3 for validation" in body
    assert "Public domain (NASA photo of Eileen Collins)" in body and "U.S. Navy" in body
    (rules,) = lineage.labelers
    assert rules.abstained == 2  # the portraits (and their mirror images) show too little body to coach
    assert "| rules | rules-v3 | 4 (2 abstaining) | 0 | 0 | 0 |" in body
    assert f"Prompt version `{lineage.prompt_version}`" in body
    assert "4 of 5 (80.0%)" in body and "no person × 1" in body
    # The usage snippet loads the adapter onto the base with PEFT, from the repo it is uploaded to.
    assert 'PeftModel.from_pretrained(model, "tester/motioncoach-lora")' in body
    assert 'base_id = "Qwen/Qwen3-VL-32B-Instruct"' in body
    # How to serve it, from the adapter's own tensor names: merged, or with vLLM's tower LoRA, and what plain
    # enable_lora loses.
    assert (
        "The adapter holds LoRA on 2 modules of the language model, 1 of the vision tower and 2 of the "
        "vision-language mergers (1 merger, 1 deepstack; counted from its tensor names)." in body
    )
    assert "motioncoach merge --adapter tester/motioncoach-lora --out motioncoach-merged" in body
    assert "--enable-tower-connector-lora --mm-processor-cache-gb 0` (vLLM 0.33.0" in body
    assert "the 3 modules on the vision tower and mergers are dropped" in body
    assert "![validation photo 1](gallery/01-" in body and (adapter_dir / "gallery").is_dir()
    # No directory of this machine leaks into the card: data-dir paths are shown relative.
    assert str(release[0].data_dir) not in body and "<data-dir>/runs/stand-in/checkpoint-4" in body

    record = json.loads((adapter_dir / LINEAGE_FILE).read_text())
    assert Lineage.model_validate(record) == lineage
    assert record["pose_filter"]["kept"] == 4 and record["sources"][0]["kind"] == "samples"


def test_a_local_base_model_is_not_claimed_as_the_hub_base(release, tmp_path):
    data, trained, report = release
    model_dir = data.data_dir / "models" / "tiny-qwen3-vl"
    model_dir.mkdir(parents=True, exist_ok=True)
    local = trained.model_copy(update={"config": trained.config.model_copy(update={"base_model": str(model_dir)})})
    lineage = build_lineage(
        data_dir=data.data_dir, splits=data.splits, trained=local, report=report,
        decision=decide(report, GATE), adapter_dir=tmp_path,
        hub=HubStatus(status="skipped", reason="HF_ADAPTER_REPO_ID is not set"),
    )  # fmt: skip
    card = write_model_card(tmp_path, lineage, HubConfig()).read_text()
    assert "base_model:" not in card.split("---\n", 2)[1]
    assert "trained on a local base model (`<data-dir>/models/tiny-qwen3-vl`)" in card
    assert 'base_id = "<the base model directory>"' in card
    assert "Hugging Face Hub: skipped: HF_ADAPTER_REPO_ID is not set" in card


def test_upload_lands_the_files_on_the_hub_privately_after_a_transient_error(release, tmp_path, caplog):
    adapter_dir, _ = _release_dir(release, tmp_path)
    with FakeHub() as hub:
        settings = HubSettings(token=hub.token, adapter_repo_id="tester/motioncoach-lora", endpoint=hub.url)
        hub.fail_next("create", 503)
        with caplog.at_level(logging.WARNING, logger="motioncoach"):
            status = upload_folder(adapter_dir, "tester/motioncoach-lora", settings, FAST)
        repo = hub.repo("tester/motioncoach-lora")
        assert status.status == "uploaded" and status.commit == repo.commits[-1]["oid"]
        assert repo.private and hub.calls["create"] == 2 and not hub.errors
        assert "HTTP 503" in caplog.text and "retry 1 of 2" in caplog.text
        local = {str(p.relative_to(adapter_dir)): p.read_bytes() for p in adapter_dir.rglob("*") if p.is_file()}
        assert repo.files == local and sorted(local) == status.files
        assert {"adapter_config.json", "adapter_model.safetensors", "README.md", "eval.json", "lineage.json"} <= set(
            repo.files
        )
        assert repo.files["README.md"].startswith(b"---\n")
        # The weights took the Git LFS route, as on the real Hub; the card went inline.
        weights = local["adapter_model.safetensors"]
        assert hub.lfs_objects[hashlib.sha256(weights).hexdigest()] == weights
        assert hashlib.sha256(local["README.md"]).hexdigest() not in hub.lfs_objects
        assert whoami(settings, FAST) == "tester"


def test_without_a_repo_id_the_upload_is_skipped_and_says_so(release, monkeypatch):
    for name in ("HF_ADAPTER_REPO_ID", "HF_DATASET_REPO_ID", "HF_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    settings = HubSettings()
    check_hub_settings(settings)  # nothing asked for, nothing to check
    status = plan_adapter_upload(settings, decide(release[2], GATE), Path("/tmp/adapter"))
    assert status.status == "skipped"
    assert status.reason.startswith("HF_ADAPTER_REPO_ID is not set: the adapter stays in its folder (adapter).")

    monkeypatch.setenv("HF_ADAPTER_REPO_ID", "tester/motioncoach-lora")
    monkeypatch.setenv("HF_TOKEN", "hf_anything")
    gated = plan_adapter_upload(HubSettings(), decide(_adapter_like(release[2], "base"), GATE), Path("/a"))
    assert gated.status == "skipped" and gated.reason.startswith("release gate: the adapter does not beat")


def test_missing_or_malformed_settings_fail_early_naming_the_variable(monkeypatch):
    with pytest.raises(ConfigurationError, match="HF_ADAPTER_REPO_ID is set but HF_TOKEN is not"):
        check_hub_settings(HubSettings(adapter_repo_id="tester/motioncoach-lora"))
    with pytest.raises(ConfigurationError, match="not of the form"):
        check_hub_settings(HubSettings(adapter_repo_id="no-slash", token="hf_x"))
    with pytest.raises(ConfigurationError, match="--push-dataset needs a dataset repo"):
        check_hub_settings(HubSettings(token="hf_x"), push_dataset=True)
    monkeypatch.setenv("HF_ADAPTER_REPO_ID", "tester/motioncoach-lora")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9/")
    settings = HubSettings()
    assert settings.dataset_repo == "tester/motioncoach-lora-dataset" and settings.endpoint == "http://127.0.0.1:9"


def test_a_bad_token_fails_clearly_and_leaves_the_adapter_as_it_was(release, tmp_path):
    adapter_dir, _ = _release_dir(release, tmp_path)
    before = _tree(adapter_dir)
    with FakeHub() as hub:
        settings = HubSettings(token=BAD_TOKEN, adapter_repo_id="tester/motioncoach-lora", endpoint=hub.url)
        with pytest.raises(HubError) as failure:
            upload_folder(adapter_dir, "tester/motioncoach-lora", settings, FAST)
        assert hub.rejected_tokens >= 1 and hub.calls["create"] == 1  # a 401 is not retried
        with pytest.raises(HubError, match="HF_TOKEN was rejected"):
            whoami(settings, FAST)
    message = str(failure.value)
    assert "HTTP 401" in message and "HF_TOKEN was rejected" in message and "settings/tokens" in message
    assert BAD_TOKEN not in message
    assert _tree(adapter_dir) == before


def test_the_token_never_reaches_a_file_a_log_or_an_error(release, tmp_path, caplog):
    with FakeHub() as hub:
        settings = HubSettings(token=hub.token, adapter_repo_id="tester/motioncoach-lora", endpoint=hub.url)
        adapter_dir, _ = _release_dir(release, tmp_path)
        hub.fail_next("create", 502, 503, 504)
        with caplog.at_level(logging.DEBUG), pytest.raises(HubError) as failure:
            upload_folder(adapter_dir, "tester/motioncoach-lora", settings, FAST)
        assert "failed 3 times, last with HTTP 504" in str(failure.value)
        upload_folder(adapter_dir, "tester/motioncoach-lora", settings, FAST)
        uploaded = hub.repo("tester/motioncoach-lora").files
    secret = hub.token.encode()
    written = [p for p in [*adapter_dir.rglob("*"), *release[0].data_dir.rglob("*")] if p.is_file()]
    assert written and not [p for p in written if secret in p.read_bytes()]
    assert not [name for name, content in uploaded.items() if secret in content]
    assert hub.token not in caplog.text and hub.token not in str(failure.value)


def test_push_dataset_uploads_splits_images_and_a_dataset_card(release, tmp_path):
    data, _, _ = release
    _, lineage = _release_dir(release, tmp_path)
    folder = stage_dataset(data.data_dir, data.splits, lineage, tmp_path / "dataset")
    with FakeHub() as hub:
        settings = HubSettings(token=hub.token, adapter_repo_id="tester/motioncoach-lora", endpoint=hub.url)
        status = upload_folder(folder, settings.dataset_repo, settings, FAST, repo_type="dataset")
        repo = hub.repo("tester/motioncoach-lora-dataset", kind="dataset")
    assert status.status == "uploaded" and repo.kind == "dataset" and repo.private
    rows = [json.loads(line) for line in repo.files["train.jsonl"].decode().splitlines()]
    rows += [json.loads(line) for line in repo.files["val.jsonl"].decode().splitlines()]
    assert len(rows) == 4 and all(row["images"][0] in repo.files for row in rows)
    card = repo.files["README.md"].decode()
    assert "license: other" in card and "task_categories:" in card and "path: train.jsonl" in card
    assert "kept 4 of 5 photos (80.0%)" in card and "rules (rules-v3): 4 labeled (" in card
    assert "Cost** of the teacher labels: $0.0000" in card
    assert "NASA" in repo.files["LICENSE.md"].decode()


def test_a_folder_without_the_adapter_weights_is_never_uploaded(release, tmp_path):
    adapter_dir, _ = _release_dir(release, tmp_path)
    (adapter_dir / "adapter_model.safetensors").unlink()
    with FakeHub() as hub:
        settings = HubSettings(token=hub.token, adapter_repo_id="tester/motioncoach-lora", endpoint=hub.url)
        with pytest.raises(HubError, match="lacks adapter_model.safetensors: nothing was uploaded"):
            upload_adapter_folder(adapter_dir, "tester/motioncoach-lora", settings, FAST)
        assert not hub.calls


def test_the_card_on_the_modal_profile_names_kaggle_the_hub_base_model_and_the_cost(release, tmp_path):
    """On Modal the images, the base model and the label store are on the volume: the card still tells."""
    from motioncoach.publish.sources import summarize_sources
    from motioncoach.teachers.store import LabelKey, LabelStore
    from motioncoach.training.base_model import hub_model_id

    data, trained, report = release
    kaggle = "/data/data/raw/kaggle/niharika41298__yoga-poses-dataset/DATASET/TRAIN/tree/a.jpg"
    [source] = summarize_sources([Path(kaggle)], data.data_dir)  # the client names volume paths only
    assert (source.kind, source.name) == ("kaggle", "niharika41298/yoga-poses-dataset")
    assert source.url == "https://www.kaggle.com/datasets/niharika41298/yoga-poses-dataset"
    assert hub_model_id("/data/models/Qwen/Qwen3-VL-32B-Instruct") == "Qwen/Qwen3-VL-32B-Instruct"
    assert hub_model_id("Qwen/Qwen3-VL-32B-Instruct") == "Qwen/Qwen3-VL-32B-Instruct"
    assert hub_model_id("/data/models/tiny-qwen3-vl") is None

    # The store fetched from the volume, holding what Gemini cost; the local data dir has none.
    store_copy = tmp_path / "labels-on-volume.sqlite"
    store = LabelStore(store_copy)
    for sample in data.samples:
        key = LabelKey.of(sample, "gemini", "gemini-3-flash-preview", {"thinking": "low"})
        store.put(key, reason="stand-in", input_tokens=1200, output_tokens=300, cost_usd=0.0015)
    store.close()
    on_modal = trained.model_copy(
        update={"config": trained.config.model_copy(update={"base_model": "/data/models/Qwen/Qwen3-VL-32B-Instruct"})}
    )
    lineage = build_lineage(
        data_dir=data.data_dir,
        splits=data.splits,
        trained=on_modal,
        report=report,
        decision=decide(report, GATE),
        adapter_dir=tmp_path / "lora-adapter",
        hub=HubStatus(status="pending", repo_id="tester/motioncoach-lora"),
        label_store=store_copy,
    )
    [cost] = lineage.cost
    assert cost.model_id == "gemini-3-flash-preview" and cost.labels == len(data.samples)
    assert cost.cost_usd == pytest.approx(0.0015 * len(data.samples))
    card = write_model_card(tmp_path, lineage, HubConfig()).read_text()
    assert "base_model: Qwen/Qwen3-VL-32B-Instruct" in card.split("---\n", 2)[1]
