"""The layers, checked over every module of each package, lazy imports inside functions included:
`flows -> tasks -> (motioncoach | remote)`, the domain free of Prefect and Modal, remote free of Prefect,
and the Modal app never importing the rehearsal that stands in for Modal."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
APP_MODULES = ("remote/app.py", "remote/container.py", "remote/contract.py", "remote/images.py")

# package -> the top-level modules none of its files may import
FORBIDDEN = {
    "motioncoach": {"prefect", "modal", "remote", "tasks", "flows", "cli"},
    "remote": {"prefect", "tasks", "flows", "cli"},
    "tasks": {"flows", "cli"},
    "flows": {"cli"},
}


def imported(path: Path) -> set[str]:
    """Every module a file imports, anywhere in it, as dotted names."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_module_of_a_package_imports_a_layer_above_it(package):
    files = sorted((ROOT / package).rglob("*.py"))
    assert len(files) > 3
    broken = {
        f"{path.relative_to(ROOT)}: {name}"
        for path in files
        for name in imported(path)
        if name.split(".")[0] in FORBIDDEN[package]
    }
    assert not broken, sorted(broken)


def test_the_modal_app_never_imports_the_rehearsal():
    """The rehearsal is chosen from outside the app: it installs its stand-ins into remote.container."""
    broken = [f"{m}: {name}" for m in APP_MODULES for name in imported(ROOT / m) if name.startswith("remote.rehearsal")]
    assert not broken


def test_the_check_sees_an_import_inside_a_function(tmp_path):
    module = tmp_path / "store.py"
    module.write_text("def f():\n    from prefect import flow\n    import modal.exception\n")
    assert {"prefect", "prefect.flow", "modal.exception"} <= imported(module)
