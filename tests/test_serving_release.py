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
