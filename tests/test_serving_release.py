"""A release that describes itself: the pose model in its lineage, the pixels and context in its card's
`vllm serve` command, and one home for each name the publishing and serving packages share."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _definitions(name: str, folders: tuple[str, ...]) -> list[str]:
    """Where `name` is defined (assigned at module level, or a class or function of that name)."""
    found = []
    for folder in folders:
        for path in sorted((ROOT / folder).rglob("*.py")):
            for node in ast.parse(path.read_text()).body:
                targets = [t.id for t in getattr(node, "targets", []) if isinstance(t, ast.Name)]
                if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                    targets.append(node.target.id)
                if getattr(node, "name", None) == name or name in targets:
                    found.append(str(path.relative_to(ROOT)))
    return found


def test_serving_needs_nothing_from_publishing_and_each_shared_name_is_defined_once():
    serving = ROOT / "motioncoach" / "serving"
    imports = []
    for path in sorted(serving.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):  # function-level imports count too
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("motioncoach.publish"):
                imports.append(f"{path.name}: {node.module}")
    assert imports == []
    code = (
        "import sys, pkgutil, importlib, motioncoach.serving as s\n"
        "for m in pkgutil.iter_modules(s.__path__): importlib.import_module(f'motioncoach.serving.{m.name}')\n"
        "print(sorted(n for n in sys.modules if n.startswith('motioncoach.publish')))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert loaded.stdout.strip() == "[]"
    domain = ("motioncoach", "cli")
    assert _definitions("MODAL_ADAPTER_FILE", domain) == ["motioncoach/modal_release.py"]
    assert _definitions("HubSettings", domain) == ["motioncoach/hub.py"]
    assert _definitions("hub_reachable", domain) == ["motioncoach/hub.py"]

    import motioncoach.hub
    import motioncoach.publish

    assert motioncoach.publish.HubSettings is motioncoach.hub.HubSettings
    assert motioncoach.publish.hub_reachable is motioncoach.hub.hub_reachable


def _lineage(tmp_path: Path):
    """The lineage of a release built from the sample photos' data dir (a yolo11n cache) and a stand-in run."""
    from motioncoach.evaluation import GateConfig, decide, evaluate_items, load_items, local_eval_config
    from motioncoach.publish import HubStatus, build_lineage
    from motioncoach.training.checkpoints import copy_adapter
    from tests.release_data import build_release_data, stand_in_training

    data = build_release_data(tmp_path)
    trained = stand_in_training(data.data_dir)
    items, _ = load_items(data.splits.val.path, data.data_dir)
    teacher = {item.key: item.teacher.to_json() for item in items}
    answers = {"base": lambda ps: ["no label"] * len(ps), "adapter": lambda ps: [teacher[p.key] for p in ps]}
    report = evaluate_items(items, answers, local_eval_config(trained.config), base_model="b", adapter="a")
    adapter_dir = tmp_path / "lora-adapter"
    copy_adapter(trained.checkpoint, adapter_dir)
    lineage = build_lineage(
        data_dir=data.data_dir, splits=data.splits, trained=trained, report=report,
        decision=decide(report, GateConfig(min_rows=1)), adapter_dir=adapter_dir, hub=HubStatus(status="pending"),
    )  # fmt: skip
    return data, lineage, adapter_dir


def test_the_lineage_names_the_pose_model_and_serving_follows_it_and_says_when_told_otherwise(tmp_path):
    from motioncoach.pose.weights import SHIPPED_SHA256, shipped_weights
    from motioncoach.serving.release import serving_settings

    _, lineage, adapter_dir = _lineage(tmp_path)
    assert lineage.pose.model_dump() == {"weights": "yolo11n-pose.pt", "sha256": SHIPPED_SHA256}
    lineage.write(adapter_dir)

    own = serving_settings([adapter_dir])
    assert (own.max_pixels, own.pose_weights, own.notes) == (1003520, str(shipped_weights()), [])

    other = tmp_path / "other-pose.pt"
    other.write_bytes(shipped_weights().read_bytes() + b"\0")  # a file of its own: another sha256
    forced = serving_settings([adapter_dir], max_pixels=4096, pose_weights=str(other))
    assert (forced.max_pixels, forced.pose_weights) == (4096, str(other))
    assert forced.notes == [
        "--max-pixels 4096: the release was trained on photos of at most 1003520 pixels",
        f"--pose-weights {other}: the release's dataset was filtered with yolo11n-pose.pt "
        f"(sha256 {SHIPPED_SHA256[:12]}...), so poses are detected otherwise than in training",
    ]

    bare = tmp_path / "bare"
    bare.mkdir()
    assert serving_settings([bare]).notes == [
        f"{bare} records no training pixels: photos are shown at the recipe's 1003520",
        f"{bare} records no pose model: poses are detected with yolo11n-pose.pt",
    ]


def test_a_release_recorded_with_pose_weights_missing_here_names_the_flag_that_helps(tmp_path):
    import json

    from motioncoach.errors import ConfigurationError
    from motioncoach.serving.release import serving_settings

    folder = tmp_path / "release"
    folder.mkdir()
    (folder / "lineage.json").write_text(json.dumps({"pose": {"weights": "/nowhere/yolo26x-pose.pt", "sha256": "0"}}))
    try:
        serving_settings([folder])
    except ConfigurationError as exc:
        assert str(exc).startswith("the release's dataset was filtered with /nowhere/yolo26x-pose.pt, which is not")
        assert str(exc).endswith("or --pose-weights yolo11n-pose.pt to detect poses otherwise than in training")
    else:
        raise AssertionError("a missing pose model must stop the command")


def test_the_card_serves_the_release_with_its_context_and_training_pixels(tmp_path):
    from motioncoach.publish import HubConfig
    from motioncoach.publish.card import model_card

    _, lineage, _ = _lineage(tmp_path)
    text = str(model_card(lineage, HubConfig()))
    flags = (
        "--max-model-len 8192 --limit-mm-per-prompt '{\"image\": 1}' "
        '--mm-processor-kwargs \'{"size": {"longest_edge": 1003520, "shortest_edge": 4096}}\''
    )
    assert f"`vllm serve motioncoach-merged {flags}`" in text
    assert f"`vllm serve Qwen/Qwen3-VL-32B-Instruct {flags} --enable-lora" in text


def test_the_processor_size_is_the_one_swift_resized_training_images_to():
    from qwen_vl_utils import vision_process

    from motioncoach.serving.photo import MIN_TOKENS, PIXELS_PER_TOKEN_SIDE, processor_size

    assert MIN_TOKENS == vision_process.IMAGE_MIN_TOKEN_NUM
    assert PIXELS_PER_TOKEN_SIDE == 2 * 16  # Qwen3-VL: 16-pixel patches merged 2 x 2
    assert processor_size(1003520) == {"longest_edge": 1003520, "shortest_edge": 4096}  # 980 tokens exactly
    assert processor_size(1_000_000) == {"longest_edge": 976 * 1024, "shortest_edge": 4096}  # whole tokens


def test_the_evaluation_and_the_served_prompt_read_a_row_alike(tmp_path):
    from motioncoach.dataset import read_jsonl
    from motioncoach.evaluation.items import load_items
    from motioncoach.serving.prompt import row_prompt
    from tests.release_data import build_release_data

    data = build_release_data(tmp_path)
    items, skipped = load_items(data.splits.val.path, data.data_dir)
    rows = read_jsonl(data.splits.val.path)
    assert not skipped and len(items) == len(rows) > 0
    for item, row in zip(items, rows, strict=True):
        assert item.prompt(4096) == row_prompt(row, data.data_dir, 4096)
    broken = {**rows[0], "messages": [m for m in rows[0]["messages"] if m["role"] != "assistant"]}
    from motioncoach.evaluation.items import rows_to_items

    assert rows_to_items([broken], data.data_dir) == (
        [],
        ["row 1: the row has no assistant turn (the teacher's label)"],
    )
