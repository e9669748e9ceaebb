"""Settings, read from the environment once, on first use (never at import time).

The table and the events lane have no default: a function whose environment lacks
`TABLE_NAME` or `QUEUE_URL` fails where it first needs one, with MissingSettingError naming
the variable (docs/design.md §9), rather than deep inside botocore with an empty name.
`TEST_QUEUE_URL` and `SLOW_QUEUE_URL` default to `QUEUE_URL` (one queue for every lane).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache

TRUE_WORDS = ("1", "true", "yes", "on")


class MissingSettingError(RuntimeError):
    """An environment variable the service cannot do without is not set (or is empty)."""

    def __init__(self, name: str) -> None:
        super().__init__(
            f"the environment variable {name} is not set: infra/template.yaml sets it for every function, "
            "make dev and the tests set it locally"
        )
        self.name = name


def _required(name: str, value: str | None) -> str:
    if not value:
        raise MissingSettingError(name)
    return value


@dataclass(frozen=True)
class Settings:
    """The function's environment variables, read once a process (`get_settings`)."""

    table: str | None  # TABLE_NAME as read; table_name refuses it missing
    queue: str | None  # QUEUE_URL as read: the events lane (and every lane when the others are not set)
    test_queue: str | None  # TEST_QUEUE_URL: the tests lane
    slow_queue: str | None  # SLOW_QUEUE_URL: the slow lane
    dead_letter_queue: str | None  # DEAD_LETTER_QUEUE_URL: the sweep takes event jobs back from it
    allow_private_targets: bool
    key_cache_seconds: float
    routing_cache_seconds: float
    delivery_connect_timeout: float
    delivery_timeout: float
    delivery_ca_bundle: str | None
    delivery_loopback_only: bool
    sweep_after_minutes: float
    fast_lane_timeout: float
    retry_delay_scale: float

    @property
    def table_name(self) -> str:
        return _required("TABLE_NAME", self.table)

    @property
    def queue_url(self) -> str:
        return _required("QUEUE_URL", self.queue)

    @property
    def test_queue_url(self) -> str:
        return self.test_queue or self.queue_url

    @property
    def slow_queue_url(self) -> str:
        return self.slow_queue or self.queue_url


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in TRUE_WORDS


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    delivery_timeout = float(os.environ.get("DELIVERY_TIMEOUT", "15"))
    return Settings(
        table=os.environ.get("TABLE_NAME") or None,
        queue=os.environ.get("QUEUE_URL") or None,
        test_queue=os.environ.get("TEST_QUEUE_URL") or None,
        slow_queue=os.environ.get("SLOW_QUEUE_URL") or None,
        dead_letter_queue=os.environ.get("DEAD_LETTER_QUEUE_URL") or None,
        allow_private_targets=_flag("ALLOW_PRIVATE_TARGETS"),
        key_cache_seconds=min(float(os.environ.get("KEY_CACHE_SECONDS", "60")), 60.0),
        # How long a process keeps the organisation, key and config items that route events
        # (storage.routing); 0 reads them for every event.
        routing_cache_seconds=min(max(float(os.environ.get("ROUTING_CACHE_SECONDS", "5")), 0.0), 60.0),
        delivery_connect_timeout=float(os.environ.get("DELIVERY_CONNECT_TIMEOUT", "5")),
        delivery_timeout=delivery_timeout,
        # A CA bundle to trust for receivers (local tests with their own CA); default: certifi's.
        delivery_ca_bundle=os.environ.get("DELIVERY_CA_BUNDLE") or None,
        # Test stacks: deliver to 127.0.0.0/8, ::1 and localhost only, with no DNS lookup.
        delivery_loopback_only=_flag("DELIVERY_LOOPBACK_ONLY"),
        # How long a task or event may be overdue before the sweep queues it again, then ends it.
        sweep_after_minutes=max(float(os.environ.get("SWEEP_AFTER_MINUTES", "60")), 1.0),
        # How long the fast lanes wait for a receiver before moving its job to the slow lane
        # (docs/isolation.md); never longer than the delivery timeout.
        fast_lane_timeout=min(float(os.environ.get("FAST_LANE_TIMEOUT", "2")), delivery_timeout),
        # Local test stacks only (the template never sets it): the retry schedule's waits
        # multiplied by this, in (0, 1], so that a test sees an event's 5 attempts in seconds.
        retry_delay_scale=min(max(float(os.environ.get("RETRY_DELAY_SCALE", "1")), 1e-6), 1.0),
    )


def reset_settings() -> None:
    """Forget the settings read so far (tests and the local stack change the environment)."""
    get_settings.cache_clear()
