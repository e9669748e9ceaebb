"""Whole-run checks, at the end of the session: every log line the service writes during the
tests is scanned for secrets and tokens, and every AWS call a function makes is checked
against that function's policy in infra/template.yaml; the run fails on a finding."""

from __future__ import annotations

import logging
import signal

import pytest

from devstack import iam
from tests import iamcheck, logscan
from webhook_service.logs import logger


def pytest_configure(config: pytest.Config) -> None:
    # A run started in the background (`make test &`, nohup) has SIGINT ignored, and every
    # process it starts would inherit that: the tests that stop `make dev` or `listen` with
    # Ctrl-C would wait for nothing. A handled signal is reset to its default at exec.
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    logscan.watch_logger(logging.getLogger(logger.name), logger.registered_formatter)  # lines as written
    iam.install(iamcheck.RECORDER)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    lines = logscan.SCAN.all_lines()
    hits = logscan.SCAN.hits()
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_sep("-", f"log scan: {len(lines)} log lines scanned, {len(hits)} with a secret or token")
        for name, line in hits[:20]:
            reporter.write_line(f"  {name}: {logscan.redact(line)}")
    if hits:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    calls = iamcheck.all_calls()
    ungranted = iamcheck.problems()
    if reporter is not None:
        reporter.write_sep(
            "-",
            f"IAM check: {len(calls)} distinct function-action-resource calls, {len(ungranted)} not granted",
        )
        for problem in ungranted:
            reporter.write_line(f"  {problem}")
    if ungranted:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
