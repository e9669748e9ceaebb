"""Settings, read from the environment once, on first use (never at import time)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache

TRUE_WORDS = ("1", "true", "yes", "on")


@dataclass(frozen=True)
class Settings:
    table_name: str
    queue_url: str  # the events lane (and every lane when the others are not set)
    test_queue_url: str  # the tests lane
    slow_queue_url: str  # the slow lane
    allow_private_targets: bool
    key_cache_seconds: float
    delivery_connect_timeout: float
    delivery_timeout: float
    delivery_ca_bundle: str | None
    delivery_loopback_only: bool
    sweep_after_minutes: float
    fast_lane_timeout: float
    retry_delay_scale: float


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in TRUE_WORDS


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    queue_url = os.environ.get("QUEUE_URL", "")
    delivery_timeout = float(os.environ.get("DELIVERY_TIMEOUT", "15"))
    return Settings(
        table_name=os.environ.get("TABLE_NAME", ""),
        queue_url=queue_url,
        test_queue_url=os.environ.get("TEST_QUEUE_URL") or queue_url,
        slow_queue_url=os.environ.get("SLOW_QUEUE_URL") or queue_url,
        allow_private_targets=_flag("ALLOW_PRIVATE_TARGETS"),
        key_cache_seconds=min(float(os.environ.get("KEY_CACHE_SECONDS", "60")), 60.0),
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
