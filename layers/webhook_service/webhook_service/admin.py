"""Operator actions that the API does not offer: organisations and keys."""

from __future__ import annotations

import datetime as dt
from typing import Any

from webhook_service.auth import generate_token, hash_token
from webhook_service.domain import new_id
from webhook_service.service import KEY_FIELDS, ORGANISATION_FIELDS, pick_fields
from webhook_service.storage import Store
from webhook_service.timefmt import utcnow


def create_organisation(store: Store, name: str, now: dt.datetime | None = None) -> dict[str, Any]:
    name = name.strip()
    if not 1 <= len(name) <= 200:
        raise ValueError("an organisation name has 1 to 200 characters")
    return pick_fields(store.create_organisation(new_id(), name, now or utcnow()), ORGANISATION_FIELDS)


def create_key(store: Store, organisation: str, token: str | None = None) -> tuple[dict[str, Any], str]:
    """A new key for an organisation, and its token (shown once; only its hash is kept)."""
    token = token or generate_token()
    item = store.create_key(organisation, new_id(), hash_token(token), utcnow())
    return pick_fields(item, KEY_FIELDS), token


def deactivate_key(store: Store, organisation: str, key_id: str) -> dict[str, Any] | None:
    item = store.deactivate_key(organisation, key_id)
    return pick_fields(item, KEY_FIELDS) if item else None


def find_key_by_token(store: Store, token: str) -> dict[str, Any] | None:
    principal = store.find_principal(hash_token(token))
    if principal is None:
        return None
    item = store.get_key(principal.organisation, principal.key_id)
    return pick_fields(item, KEY_FIELDS) if item else None
