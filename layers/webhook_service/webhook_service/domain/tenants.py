"""Organisations, their API keys, and who is calling."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum


class KeyState(StrEnum):
    """An API key's state: a deactivated key signs nothing in and cannot be changed."""

    ACTIVE = "active"
    DEACTIVATED = "deactivated"


@dataclass(frozen=True)
class Key:
    """An API key of an organisation. Only its token's hash is kept (never shown); its
    `webhook_config` routes the events published with it (None: the organisation's default)."""

    id: str
    organisation: str
    token_hash: str
    state: KeyState
    date_created: dt.datetime
    webhook_config: str | None = None


@dataclass(frozen=True)
class Organisation:
    """An organisation: its name, the config its events go to when their key names none
    (`webhook_config_default`), and how many of its test tasks are open (internal, counted
    by the store for the fair-use cap)."""

    id: str
    name: str
    date_created: dt.datetime
    webhook_config_default: str | None = None
    open_tests: int = 0


@dataclass(frozen=True)
class Principal:
    """Who is calling: a key and its organisation."""

    key_id: str
    organisation: str
    state: KeyState

    @property
    def active(self) -> bool:
        return self.state == KeyState.ACTIVE
