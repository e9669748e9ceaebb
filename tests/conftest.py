"""Whole-run checks: every log line the service writes during the tests is scanned for
secrets and tokens at the end of the session, and the run fails if one is found."""

from __future__ import annotations

import logging

import pytest

from tests import logscan
from webhook_service.logs import logger


def pytest_configure(config: pytest.Config) -> None:
    logscan.watch_logger(logging.getLogger(logger.name), logger.registered_formatter)  # lines as written


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
