"""The pre-commit configuration runs what `make lint` runs: one hook per command of the lint
target, with the same tool and arguments, from the project's virtualenvs."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
# The Makefile's variables that the lint target uses, as a hook (run from the root) spells them.
_VARIABLES = {"$(VENV)": ".venv", "$(TOOLS)": ".venv-tools", "$(SAM)": ".venv-tools/bin/sam", "$(CURDIR)": "$PWD"}


def lint_commands() -> list[list[str]]:
    """Each command of the Makefile's lint target, as words, without leading assignments."""
    recipe = re.search(r"^lint:.*\n((?:\t.*\n)+)", (ROOT / "Makefile").read_text(encoding="utf-8"), re.MULTILINE)
    assert recipe, "the Makefile has no lint target"
    commands = []
    for line in recipe.group(1).splitlines():
        for name, value in _VARIABLES.items():
            line = line.replace(name, value)
        words = shlex.split(line.strip().replace("$$", "$"))
        while words and re.match(r"^[A-Z_]+=", words[0]):
            words = words[1:]
        commands.append(words)
    return commands


def hook_commands() -> dict[str, list[str]]:
    """Each hook's command as words, whatever runs it (`env VAR=...`, `bash -c '...'`)."""
    config = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text(encoding="utf-8"))
    hooks = [hook for repo in config["repos"] for hook in repo["hooks"]]
    assert all(repo["repo"] == "local" for repo in config["repos"]), "hooks from the network do not work offline"
    commands = {}
    for hook in hooks:
        assert hook["language"] == "system", hook["id"]
        assert hook["pass_filenames"] is False, hook["id"]
        words = shlex.split(hook["entry"])
        if words[:2] == ["bash", "-c"]:
            words = shlex.split(words[2])
        while words and (words[0] == "env" or re.match(r"^[A-Z_]+=", words[0])):
            words = words[1:]
        commands[hook["id"]] = words
    return commands


def test_every_lint_command_is_a_hook_and_every_hook_a_lint_command() -> None:
    lint = lint_commands()
    hooks = hook_commands()
    assert len(lint) >= 8
    assert sorted(lint) == sorted(hooks.values())


def test_the_makefile_reading_sees_the_assignments_and_variables() -> None:
    commands = lint_commands()
    assert [".venv/bin/ruff", "check", "."] in commands
    assert [".venv-tools/bin/sam", "validate", "--lint", "--template-file", "infra/template.yaml"] in commands
