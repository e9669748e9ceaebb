"""`eval "$(make -s env)"` (devstack.env): the README's shell variables from what `make dev`
and `make listen` saved, read by a real shell."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from devstack import env

SAVED = {
    "url": "http://127.0.0.1:3007",
    "token": "rwk_a-b_c",
    "organisation": "0d7c4a8e-1b2f-4c3d-9e8f-a1b2c3d4e5f6",
    "key": "6f1c1e9e-8f6b-4f7e-9a51-0c4c1b0f2d11",
}
CONFIG = "5a3b1e00-0000-4000-8000-000000000003"


def in_bash(line: str, *names: str) -> list[str]:
    script = line + "\n" + "\n".join(f'printf "%s\\n" "${name}"' for name in names)
    return subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True, timeout=30).stdout.split(
        "\n"
    )[: len(names)]


def test_env_gives_the_shell_the_stacks_url_token_ids_and_the_listeners_config(tmp_path: Path) -> None:
    (tmp_path / "dev.json").write_text(json.dumps({**SAVED, "aws_endpoint": "http://127.0.0.1:1"}))
    (tmp_path / "listen.json").write_text(json.dumps({"config": CONFIG, "url": SAVED["url"]}))

    line, notes = env.exports(tmp_path)

    assert line is not None
    assert notes == []
    assert in_bash(line, "API", "T", "ORG", "KEY", "ID") == [
        SAVED["url"],
        SAVED["token"],
        SAVED["organisation"],
        SAVED["key"],
        CONFIG,
    ]


def test_env_without_a_listener_of_this_stack_gives_no_id_and_says_why(tmp_path: Path) -> None:
    (tmp_path / "dev.json").write_text(json.dumps(SAVED))
    (tmp_path / "listen.json").write_text(json.dumps({"config": CONFIG, "url": "http://127.0.0.1:9999"}))

    line, notes = env.exports(tmp_path)

    assert line is not None
    assert " ID=" not in line
    assert notes == ["no ID yet: make listen (in another terminal) makes the config it names"]


def test_env_without_make_dev_prints_nothing_for_the_shell_and_says_to_start_it(tmp_path: Path) -> None:
    line, notes = env.exports(tmp_path)

    assert line is None
    assert notes == [f"no {tmp_path / 'dev.json'}: start make dev first (in another terminal)"]
