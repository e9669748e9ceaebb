"""The service's structured logger (Powertools): JSON lines, never a secret or token."""

from __future__ import annotations

from aws_lambda_powertools import Logger

logger = Logger(service="webhooks")


def log_to_stderr() -> None:
    """Send the log lines to standard error, for programs whose standard output is their
    answer (the operator command line) or a banner (the local stack)."""
    import logging
    import sys

    for handler in logger.handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(sys.stderr)
