"""Operator actions that the API does not offer: organisations and keys, and each
organisation's rates and quotas."""

from __future__ import annotations

import datetime as dt
from typing import Any

from webhook_service.auth import generate_token, hash_token
from webhook_service.domain.ids import new_id
from webhook_service.domain.limits import RATE_API, RATE_RESENDS, RATE_TESTS, Rate
from webhook_service.ports import OrganisationRepository, Repositories
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


# -- fair use (docs/design.md §18) ----------------------------------------------------------

# How each rate is named where the operator reads it (the names of the 429's `params`).
LIMIT_NAMES = {RATE_API: "requests", RATE_TESTS: "tests", RATE_RESENDS: "resends"}


def limits_of(store: Repositories, organisation: str) -> dict[str, Any] | None:
    """An organisation's rates and quota of configs as they stand; None when there is no
    such organisation."""
    if store.organisations.get(organisation) is None:
        return None
    shown: dict[str, Any] = {"organisation": organisation}
    for name, label in LIMIT_NAMES.items():
        rate = store.limits.rate(organisation, name)
        shown[label] = {"per_second": rate.per_second, "burst": rate.burst}
    shown["configs"] = store.configs.quota(organisation)
    return shown


def set_limits(
    store: Repositories,
    organisation: str,
    rates: dict[str, tuple[int | None, int | None]],
    max_configs: int | None = None,
    default: bool = False,
) -> dict[str, Any] | None:
    """Give an organisation its own rates (by name: per second and burst, either None to keep
    the one it has) and cap on configs, or (`default`) the defaults back; None when there is
    no such organisation."""
    if store.organisations.get(organisation) is None:
        return None
    if default:
        for name in LIMIT_NAMES:
            store.limits.set_rate(organisation, name, None)
        store.configs.set_quota(organisation, None)
    for name, (per_second, burst) in rates.items():
        if per_second is None and burst is None:
            continue
        now = store.limits.rate(organisation, name)
        store.limits.set_rate(organisation, name, Rate(per_second or now.per_second, burst or now.burst))
    if max_configs is not None:
        store.configs.set_quota(organisation, max_configs)
    return limits_of(store, organisation)
