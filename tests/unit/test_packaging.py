"""The layer as an installable package: its pyproject.toml agrees with the layer's
requirements.txt, its command is the operator command line, and the built layer leaves the
packaging file out."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

from devstack.artifact import Artifact, check_layer
from webhook_service import PRODUCT, cli

LAYER = Path(__file__).resolve().parents[2] / "layers" / "webhook_service"


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~;\[ ]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_the_package_depends_on_what_the_layer_ships() -> None:
    project = tomllib.loads((LAYER / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    pinned = [
        line
        for line in (LAYER / "requirements.txt").read_text(encoding="utf-8").splitlines()
        if line.split("#")[0].strip()
    ]
    assert sorted(_name(r) for r in project["dependencies"]) == sorted(_name(r) for r in pinned)


def test_the_installed_command_is_the_operator_command_line() -> None:
    project = tomllib.loads((LAYER / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["scripts"] == {PRODUCT: "webhook_service.cli:run"}
    assert cli.run.__module__ == "webhook_service.cli"


def test_python_m_and_the_command_print_the_same_usage(tmp_path: Path) -> None:
    """From a folder outside the repository and without PYTHONPATH: the editable install."""
    env = {"PATH": str(Path(sys.executable).parent)}
    as_module = subprocess.run(
        [sys.executable, "-m", "webhook_service", "--help"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    command = Path(sys.executable).parent / PRODUCT
    installed = subprocess.run(
        [str(command), "--help"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=True
    ).stdout
    assert as_module.startswith("usage: python -m webhook_service ")
    assert installed.startswith(f"usage: {PRODUCT} ")
    # The usage lines wrap at the program's name; what follows them is the same.
    assert as_module.split("\n\n", 1)[1] == installed.split("\n\n", 1)[1]


def _artifact(opt: Path) -> Artifact:
    return Artifact(root=opt.parent, template_path=opt / "t.yaml", functions={}, handlers={}, opt=opt)


def test_the_artifact_check_refuses_a_layer_with_its_pyproject(tmp_path: Path) -> None:
    (tmp_path / "python" / "webhook_service").mkdir(parents=True)
    assert check_layer(_artifact(tmp_path)) == []
    (tmp_path / "python" / "pyproject.toml").write_text("[project]\n")
    assert check_layer(_artifact(tmp_path)) == ["the layer ships python/pyproject.toml: build with make build"]


def test_the_layer_ships_no_development_server() -> None:
    """The layer runs in Lambda: a receiver for development (`make listen`, an HTTP server)
    belongs to the local stack's tools, not to every function's package."""
    serving = [
        path.relative_to(LAYER).as_posix()
        for path in sorted((LAYER / "webhook_service").rglob("*.py"))
        if re.search(r"^\s*(from|import) (http\.server|socketserver)\b", path.read_text(encoding="utf-8"), re.M)
    ]

    assert serving == []
