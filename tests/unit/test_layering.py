"""The layering make lint holds (pyproject.toml, [tool.importlinter]) reaches the Lambda
handlers too: each handler imports only the layer's entry points, never the storage, the
queue, the sender or the domain directly, so a handler stays a few lines that turn an event
into a call."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HANDLERS = sorted((ROOT / "functions").glob("*/app.py"))
ENTRY_POINTS = (
    "webhook_service.api",
    "webhook_service.consumer",
    "webhook_service.schedule",
    "webhook_service.errors",
    "webhook_service.service.configs",
    "webhook_service.service.tasks",
    "webhook_service.service.events",
    "webhook_service.service.tenants",
    "webhook_service.service.recovery",
)


def layer_imports(path: Path) -> set[str]:
    """The layer's modules a file imports (`from webhook_service.x import y` gives x.y when y
    is a module of the package, else x)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("webhook_service"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("webhook_service"):
            for alias in node.names:
                module = f"{node.module}.{alias.name}"
                package_dir = ROOT / "layers" / "webhook_service" / Path(*module.split("."))
                found.add(module if package_dir.with_suffix(".py").exists() else node.module)
    return found


def test_every_function_folder_has_a_handler() -> None:
    assert len(HANDLERS) >= 20


@pytest.mark.parametrize("handler", HANDLERS, ids=lambda p: p.parent.name)
def test_a_handler_imports_only_the_layers_entry_points(handler: Path) -> None:
    outside = {module for module in layer_imports(handler) if module not in ENTRY_POINTS}

    assert not outside, f"{handler.relative_to(ROOT)} imports {sorted(outside)}"


def test_the_check_sees_an_import_of_the_storage(tmp_path: Path) -> None:
    handler = tmp_path / "app.py"
    handler.write_text("from webhook_service.storage import store\nfrom webhook_service.domain.ids import new_id\n")

    assert layer_imports(handler) == {"webhook_service.storage.store", "webhook_service.domain.ids"}
