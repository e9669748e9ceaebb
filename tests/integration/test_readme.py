"""The README's command blocks, run as a newcomer runs them: in the order written, against a
`make dev` of their own. `make dev` and `make listen` get a terminal each (a process group
of their own, stopped with Ctrl-C at the end); every other line runs in one shell, so that
what one line sets (`eval "$(make -s env)"`, `ID2=...`) is there for the next. Each line
must succeed; an answer that is an error must be the one its comment names (`# 401
unauthorized`), and no other answer may be one. Then what "Try it" promises is checked: the
listener saw the tests and the published event verified, and "More of the API" left the
listener's config as it was (still valid, still the default).

The API table is checked against the template both ways: every route it names is served,
and every route of the API is in it (a row per route; rows of other kinds are ignored)."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import pytest
import requests

from devstack.aws import free_port
from devstack.template import load_template, routes
from tests.support.stack import ROOT, STARTUP_SECONDS

pytestmark = pytest.mark.integration

README = ROOT / "README.md"
# Commands that hold a terminal, and what they print once ready.
TERMINALS: dict[str, str | re.Pattern[str]] = {
    "make dev": "devstack ready at ",
    "make listen": re.compile(r"^config \S+ is valid$"),
}
NOT_RUN = {"make test"}  # the suite this test is part of
COMMAND_SECONDS = 60
DELIVERY_SECONDS = 30
MARK = "__readme_command_done__"
_COMMENT = re.compile(r"\s+#\s(?P<comment>.*)$")
_EXPECTED_ERROR = re.compile(r"^(?P<status>[45]\d\d) (?P<code>[a-z][a-z-]*)\b")
_ROUTE_CELL = re.compile(r"`(?P<method>GET|POST|PUT|PATCH|DELETE) (?P<path>/[^`]*)`")


@dataclass(frozen=True)
class Command:
    line: str  # as written, its comment included
    block: int

    @property
    def code(self) -> str:
        """The command without its trailing comment."""
        return _COMMENT.sub("", self.line).strip()

    @property
    def expected_error(self) -> str | None:
        """The error code the comment says the answer is (`# 400 invalid-body`), if any."""
        found = _COMMENT.search(self.line)
        match = _EXPECTED_ERROR.match(found.group("comment")) if found else None
        return match.group("code") if match else None


def sh_blocks(text: str) -> list[list[Command]]:
    """The ```sh blocks in order, as commands (a line ending in a backslash goes on)."""
    blocks: list[list[Command]] = []
    for number, body in enumerate(re.findall(r"^```sh\n(.*?)^```$", text, flags=re.MULTILINE | re.DOTALL)):
        commands: list[Command] = []
        parts: list[str] = []
        for line in body.splitlines():
            parts.append(line.removesuffix("\\").strip())
            if line.endswith("\\"):
                continue
            joined = " ".join(part for part in parts if part)
            if joined and not joined.startswith("#"):
                commands.append(Command(joined, number))
            parts = []
        blocks.append(commands)
    return blocks


def test_readme_blocks_are_read_as_commands_with_their_expected_errors() -> None:
    text = "```sh\nmake dev   # starts\ncurl -s $API/x \\\n  -H 'a: b'   # 401 unauthorized\n# a note\n```\n"

    ((dev, curl),) = sh_blocks(text)

    assert (dev.code, dev.expected_error) == ("make dev", None)
    assert (curl.code, curl.expected_error) == ("curl -s $API/x -H 'a: b'", "unauthorized")


def api_routes_in_readme(text: str) -> set[tuple[str, str]]:
    """The `METHOD /path` of every row of the README's API table."""
    assert "\n## The API\n" in text, "the README has no section '## The API'"
    section = text.split("\n## The API\n", 1)[1].split("\n## ", 1)[0]
    found: set[tuple[str, str]] = set()
    for row in section.splitlines():
        if row.startswith("| `"):
            first_cell = row.split("|")[1]
            found.update((m.group("method"), m.group("path")) for m in _ROUTE_CELL.finditer(first_cell))
    return found


def test_readme_api_table_names_every_route_of_the_api_and_no_other() -> None:
    served = {
        (route.method, route.path)
        for route in routes(load_template())
        if route.path != "$default" and not route.path.startswith("/console")
    }

    named = api_routes_in_readme(README.read_text(encoding="utf-8"))

    assert sorted(named - served) == [], "the README's API table names routes the template does not serve"
    assert sorted(served - named) == [], "routes of the template missing from the README's API table"


# -- running the blocks ------------------------------------------------------------------


@dataclass
class Terminal:
    """A command in a terminal of its own (its own process group), its output in a file."""

    command: Command
    process: subprocess.Popen[bytes]
    output: Path

    def text(self) -> str:
        return self.output.read_text(errors="replace")

    def wait_for(self, ready: str | re.Pattern[str], seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not any(self._ready(line, ready) for line in self.text().splitlines()):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"`{self.command.code}` did not get ready; it printed:\n{self.text()[-3000:]}")
            time.sleep(0.1)

    @staticmethod
    def _ready(line: str, ready: str | re.Pattern[str]) -> bool:
        return bool(ready.search(line)) if isinstance(ready, re.Pattern) else line.startswith(ready)

    def ctrl_c(self) -> int:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)
        return self.process.wait(timeout=COMMAND_SECONDS)


class Shell:
    """One bash that runs the README's other lines one at a time, as a terminal would."""

    def __init__(self, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            ["bash", "--noprofile", "--norc"],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self._lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line)

    def run(self, command: str) -> tuple[int, str]:
        """Run one command line; (its exit status, what it printed)."""
        stdin: IO[str] | None = self.process.stdin
        assert stdin is not None
        stdin.write(f"{command}\nprintf '\\n{MARK} %s\\n' \"$?\"\n")
        stdin.flush()
        printed: list[str] = []
        deadline = time.monotonic() + COMMAND_SECONDS
        while time.monotonic() < deadline:
            try:
                line = self._lines.get(timeout=0.5)
            except queue.Empty:
                continue
            if line.startswith(MARK):
                return int(line.split()[1]), "".join(printed).rstrip("\n")
            printed.append(line)
        raise AssertionError(f"`{command}` did not end within {COMMAND_SECONDS} s; it printed:\n{''.join(printed)}")

    def close(self) -> None:
        self.process.kill()
        self.process.wait(timeout=COMMAND_SECONDS)


@dataclass
class Session:
    env: dict[str, str]
    folder: Path
    opened: list[Terminal] = field(default_factory=list)  # every one, stopped at the end whatever happens
    ran: list[tuple[Command, str]] = field(default_factory=list)

    def terminal(self, code: str) -> Terminal:
        """The terminal last opened for `code`."""
        return [t for t in self.opened if t.command.code == code][-1]

    def open_terminal(self, command: Command) -> None:
        output = self.folder / f"terminal-{len(self.opened) + 1}.txt"
        with output.open("wb") as sink:
            process = subprocess.Popen(
                ["bash", "-c", command.code],
                cwd=ROOT,
                env=self.env,
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a terminal's foreground job: Ctrl-C reaches all of it
            )
        terminal = Terminal(command, process, output)
        self.opened.append(terminal)
        terminal.wait_for(TERMINALS[command.code], STARTUP_SECONDS)

    def saved(self, name: str) -> dict[str, Any]:
        found: dict[str, Any] = json.loads((self.folder / "data" / name).read_text())
        return found


@pytest.fixture
def session(tmp_path: Path) -> Iterator[Session]:
    """A newcomer's terminals: nothing of the tests' own environment that a terminal would
    not have; `make dev`'s port and folder are the test's own (the lines read both back)."""
    dropped = ("AWS_", "RICLOUD_", "MAKE", "MFLAGS", "DEVSTACK_", "TABLE_NAME", "QUEUE_URL", "PORT", "LISTEN_PORT")
    env = {k: v for k, v in os.environ.items() if not k.startswith(dropped) and k not in ("DEV_TOKEN", "VERBOSE")}
    env.update(
        {
            "PORT": str(free_port()),
            "DEVSTACK_DATA": str(tmp_path / "data"),
            "DELIVERY_LOOPBACK_ONLY": "1",  # the README's receivers are all on 127.0.0.1
        }
    )
    running = Session(env, tmp_path)
    yield running
    for terminal in reversed(running.opened):
        if terminal.process.poll() is None:
            os.killpg(terminal.process.pid, signal.SIGKILL)
            terminal.process.wait(timeout=COMMAND_SECONDS)


def check_answer(command: Command, status: int, printed: str) -> None:
    assert status == 0, f"`{command.line}` exited {status}:\n{printed}"
    errors = []
    for line in printed.splitlines():
        try:
            answer = json.loads(line)
        except ValueError:
            continue
        if isinstance(answer, dict) and isinstance(answer.get("error"), str):
            errors.append(answer["error"])
    expected = [command.expected_error] if command.expected_error else []
    assert errors == expected, f"`{command.line}` answered {printed!r}"
    if command.code.startswith("curl "):
        assert printed.endswith("}"), f"`{command.line}` printed no JSON object: {printed!r}"


def test_readme_commands_run_in_order_as_written_and_keep_what_try_it_promises(session: Session) -> None:
    shell = Shell(session.env)
    try:
        for block in sh_blocks(README.read_text(encoding="utf-8")):
            for command in block:
                if command.code in NOT_RUN:
                    continue
                if command.code in TERMINALS:
                    session.open_terminal(command)
                    continue
                status, printed = shell.run(command.line)
                check_answer(command, status, printed)
                session.ran.append((command, printed))
    finally:
        shell.close()

    listener = session.terminal("make listen")
    deadline = time.monotonic() + DELIVERY_SECONDS
    while "  session.completed  " not in listener.text():
        assert time.monotonic() < deadline, f"the published event never reached the listener:\n{listener.text()}"
        time.sleep(0.2)
    dev, listening = session.saved("dev.json"), session.saved("listen.json")
    headers = {"Authorization": f"Token {dev['token']}"}
    config = requests.get(f"{dev['url']}/configs/webhook/{listening['config']}", headers=headers, timeout=30).json()
    organisation = requests.get(f"{dev['url']}/organisation", headers=headers, timeout=30).json()
    key = requests.get(f"{dev['url']}/key", headers=headers, timeout=30).json()

    assert config["state"] == "valid"  # "More of the API" left the listener's config alone
    assert organisation["webhook_config_default"] == config["id"]
    assert key["webhook_config"] is None
    assert listener.ctrl_c() in (0, -signal.SIGINT)
    said = listener.text()
    assert "NOT verified" not in said
    assert len(re.findall(r"  webhook_config\.test  \S+  verified  ", said)) >= 2  # its own test, and the README's
    assert len(re.findall(r"  session\.completed  \S+  verified  ", said)) >= 1
    stack = session.terminal("make dev")
    assert stack.ctrl_c() in (0, -signal.SIGINT)  # make re-raises the Ctrl-C once the stack has stopped
    assert "Traceback" not in stack.text()
    assert re.search(r"^saved \d+ items to ", stack.text(), flags=re.MULTILINE)
