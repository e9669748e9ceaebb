"""The service's structured logger (Powertools): JSON lines, never a secret or token."""

from __future__ import annotations

from aws_lambda_powertools import Logger

logger = Logger(service="webhooks")
