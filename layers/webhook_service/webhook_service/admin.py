"""Operator actions that the API does not offer: organisations and keys."""

from __future__ import annotations

import datetime as dt
from typing import Any

from webhook_service.auth import generate_token, hash_token
from webhook_service.domain import new_id
from webhook_service.storage import Store
from webhook_service.timefmt import utcnow


def create_organisation(store: Store, name: str, now: dt.datetime | None = None) -> dict[str, Any]:
    name = name.strip()
    if not 1 <= len(name) <= 200:
        raise ValueError("an organisation name has 1 to 200 characters")
    return store.create_organisation(new_id(), name, now or utcnow()).to_resource()


def create_key(store: Store, organisation: str, token: str | None = None) -> tuple[dict[str, Any], str]:
    """A new key for an organisation, and its token (shown once; only its hash is kept)."""
    token = token or generate_token()
    return store.create_key(organisation, new_id(), hash_token(token), utcnow()).to_resource(), token


def deactivate_key(store: Store, organisation: str, key_id: str) -> dict[str, Any] | None:
    key = store.deactivate_key(organisation, key_id)
    return key.to_resource() if key else None


def find_key_by_token(store: Store, token: str) -> dict[str, Any] | None:
    principal = store.find_principal(hash_token(token))
    if principal is None:
        return None
    key = store.get_key(principal.organisation, principal.key_id)
    return key.to_resource() if key else None
