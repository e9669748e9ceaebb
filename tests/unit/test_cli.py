"""The operator command line's way in: with no stack named it uses `make dev`'s local stack
(read from .devstack/dev.json), says so in its help, and every failure is one line on
standard error, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from devstack.aws import free_port
from webhook_service import cli

ORGANISATION = "1b0c0f6e-4b9a-4c7e-8f3d-2a1e5d6c7b8a"


@pytest.fixture
def no_stack_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No table, queue or endpoint in the environment; a data folder of the test's own."""
    for name in ("TABLE_NAME", "QUEUE_URL", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DEVSTACK_DATA", str(tmp_path))
    monkeypatch.setattr(cli, "log_to_stderr", lambda: None)  # it would keep capsys's stream
    return tmp_path


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = cli.main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_help_says_it_reads_make_devs_local_stack_when_no_stack_is_named(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        cli.main(["--help"])

    text = " ".join(capsys.readouterr().out.split())
    assert "Without --stack, --table or $TABLE_NAME, it uses `make dev`'s local stack" in text
    assert ".devstack/dev.json" in text


def test_cli_no_stack_and_no_local_stack_says_what_to_name_in_one_line(
    no_stack_named: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "create-organisation", "--name", "Acme")

    assert (code, out) == (1, "")
    assert err.count("\n") == 1
    assert "--stack NAME" in err
    assert "make dev" in err


def test_cli_local_stack_that_does_not_answer_says_so_in_one_line(
    no_stack_named: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens there: make dev has stopped
    saved = {"aws_endpoint": endpoint, "table": "t", "queue_url": f"{endpoint}/123456789012/q"}
    (no_stack_named / "dev.json").write_text(json.dumps(saved))

    code, out, err = run(capsys, "publish-event", "--organisation", ORGANISATION, "--type", "a", "--action", "b")

    assert (code, out) == (1, "")
    assert err.count("\n") == 1
    assert f"does not answer at {endpoint}: is make dev running?" in err


def test_cli_stack_that_does_not_exist_says_so_in_one_line(
    backing: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(cli, "log_to_stderr", lambda: None)

    code, out, err = run(capsys, "--stack", "ricloud-webhooks-nope", "create-organisation", "--name", "Acme")

    assert (code, out) == (1, "")
    assert err.count("\n") == 1
    assert "stack ricloud-webhooks-nope: Stack with id ricloud-webhooks-nope does not exist" in err


def test_cli_listen_names_where_it_went(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "listen", "--create")

    assert code == 2
    assert "make listen (python -m devstack.listen)" in err
