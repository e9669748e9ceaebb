"""Settings, read from the environment once, on first use (never at import time)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache

TRUE_WORDS = ("1", "true", "yes", "on")


@dataclass(frozen=True)
class Settings:
    table_name: str
    queue_url: str
    allow_private_targets: bool
    key_cache_seconds: float


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in TRUE_WORDS


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings(
        table_name=os.environ.get("TABLE_NAME", ""),
        queue_url=os.environ.get("QUEUE_URL", ""),
        allow_private_targets=_flag("ALLOW_PRIVATE_TARGETS"),
        key_cache_seconds=min(float(os.environ.get("KEY_CACHE_SECONDS", "60")), 60.0),
    )


def reset_settings() -> None:
    """Forget the settings read so far (tests and the local stack change the environment)."""
    get_settings.cache_clear()
