"""The data the sample events under events/ speak of: an organisation, its key (with a
well-known token that is not a secret), a `valid` config that is the organisation's
default, a test task of it whose job was lost two hours ago (so the sweep's sample has
something to do), a pending event, and a delivered one with its attempt (for the samples of
the attempts list and of resend). `make sam-local` puts them in the local stack, so
that `sam local invoke <Function> -e events/<function>.json` answers about real items;
the tests invoke every function with its sample event on the same data."""

from __future__ import annotations

import datetime as dt
from typing import Any

ORGANISATION = "5a3b1e00-0000-4000-8000-000000000001"
KEY = "5a3b1e00-0000-4000-8000-000000000002"
CONFIG = "5a3b1e00-0000-4000-8000-000000000003"
TASK = "5a3b1e00-0000-4000-8000-000000000004"
EVENT = "5a3b1e00-0000-4000-8000-000000000005"
DELIVERED_EVENT = "5a3b1e00-0000-4000-8000-000000000006"
ATTEMPT = "5a3b1e00-0000-4000-8000-000000000007"
TOKEN = "sample-token-for-sam-local"  # noqa: S105 - a sample's token, in events/*.json for all to read
CONFIG_URL = "http://127.0.0.1:8000/"  # `make listen CONFIG=<CONFIG>` receives there
TASK_AGE = dt.timedelta(hours=2)


def seed(store: Any, now: dt.datetime) -> bool:
    """Put the sample items in the table, unless the sample organisation is there already;
    True when they were put."""
    from dataclasses import replace

    from webhook_service.auth import hash_token
    from webhook_service.domain.configs import (
        TASK_TYPE_TEST,
        ConfigState,
        Task,
        TaskState,
        WebhookConfig,
        generate_secret,
    )
    from webhook_service.domain.events import Attempt, Event, EventState

    if store.organisations.get(ORGANISATION) is not None:
        return False
    store.organisations.create(ORGANISATION, "Sample (events/)", now)
    store.organisations.create_key(ORGANISATION, KEY, hash_token(TOKEN), now)
    config = WebhookConfig(
        id=CONFIG,
        organisation=ORGANISATION,
        url=CONFIG_URL,
        secret=generate_secret(),
        state=ConfigState.VALID,
        version=1,
        date_created=now - TASK_AGE,
    )
    task = Task(
        id=TASK,
        organisation=ORGANISATION,
        key=KEY,
        type=TASK_TYPE_TEST,
        target=CONFIG,
        target_version=1,
        state=TaskState.PENDING,
        date_created=now - TASK_AGE,
    )
    store.configs.create(config, task)
    store.organisations.set_default(ORGANISATION, CONFIG)
    store.events.create(
        Event(
            id=EVENT,
            organisation=ORGANISATION,
            type="session",
            action="completed",
            data={"id": "b6c1c0de-0000-4000-8000-00000000000a", "state": "completed"},
            state=EventState.PENDING,
            date_created=now,
        )
    )
    delivered = Event(
        id=DELIVERED_EVENT,
        organisation=ORGANISATION,
        type="session",
        action="started",
        data={"id": "b6c1c0de-0000-4000-8000-00000000000b", "state": "started"},
        state=EventState.PENDING,
        date_created=now - TASK_AGE,
        attempts=1,
        webhook_config=CONFIG,
    )
    store.events.create(delivered)
    attempt = Attempt(
        id=ATTEMPT,
        organisation=ORGANISATION,
        event=DELIVERED_EVENT,
        webhook_config=CONFIG,
        url=CONFIG_URL + DELIVERED_EVENT,
        status_code=200,
        error=None,
        duration_ms=42,
        response_excerpt="ok",
        date_created=now - TASK_AGE,
        expires_at=delivered.expires_at,
    )
    store.events.save(replace(delivered, state=EventState.DELIVERED, date_delivered=now - TASK_AGE), attempt)
    return True
