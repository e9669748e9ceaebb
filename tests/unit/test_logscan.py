"""The log scan that ends every test run finds what it looks for, and only that."""

from __future__ import annotations

import pytest

from tests.logscan import Scan
from webhook_service.auth import generate_token
from webhook_service.domain.configs import generate_secret


@pytest.mark.parametrize(
    "line",
    [
        f'{{"message":"config created","secret":"{generate_secret()}"}}',
        f"token={generate_token()}",
        '{"headers":{"Authorization":"Token abc"}}',
        "authorization: token x",
        "Token 0123456789abcdef0123",
    ],
)
def test_scan_line_with_a_secret_is_a_hit(line: str) -> None:
    assert Scan(lines=[line]).hits()


def test_scan_ordinary_log_line_is_not_a_hit() -> None:
    line = (
        '{"level":"INFO","message":"test delivered","task_id":"0b7e6a52-4e9c-4b0e-9d59-2f1f6c1d2a10",'
        '"error":"webhook-timeout","status_code":200,"message_id":"m0"}'
    )

    assert Scan(lines=[line]).hits() == []
