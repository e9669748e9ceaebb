"""Operator actions that the API does not offer: organisations and keys."""

from __future__ import annotations

import datetime as dt
from typing import Any

from webhook_service.auth import generate_token, hash_token
from webhook_service.domain.ids import new_id
from webhook_service.ports import OrganisationRepository
from webhook_service.timefmt import utcnow
from webhook_service.views import key_resource, organisation_resource


def create_organisation(
    organisations: OrganisationRepository, name: str, now: dt.datetime | None = None
) -> dict[str, Any]:
    name = name.strip()
    if not 1 <= len(name) <= 200:
        raise ValueError("an organisation name has 1 to 200 characters")
    return organisation_resource(organisations.create(new_id(), name, now or utcnow()))


def create_key(
    organisations: OrganisationRepository, organisation: str, token: str | None = None
) -> tuple[dict[str, Any], str]:
    """A new key for an organisation, and its token (shown once; only its hash is kept)."""
    token = token or generate_token()
    return key_resource(organisations.create_key(organisation, new_id(), hash_token(token), utcnow())), token


def deactivate_key(organisations: OrganisationRepository, organisation: str, key_id: str) -> dict[str, Any] | None:
    key = organisations.deactivate_key(organisation, key_id)
    return key_resource(key) if key else None


def find_key_by_token(organisations: OrganisationRepository, token: str) -> dict[str, Any] | None:
    principal = organisations.find_principal(hash_token(token))
    if principal is None:
        return None
    key = organisations.get_key(principal.organisation, principal.key_id)
    return key_resource(key) if key else None
