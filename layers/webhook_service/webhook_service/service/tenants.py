"""The calling key, a key's own config, the organisation and its default config."""

from __future__ import annotations

from typing import Any

from webhook_service.domain.configs import ConfigState
from webhook_service.domain.ids import is_uuid
from webhook_service.domain.queries import ListQuery
from webhook_service.domain.tenants import KeyState, Organisation, Principal
from webhook_service.errors import ConflictError, InvalidParameterError, InvalidStateError, NotFoundError
from webhook_service.logs import logger
from webhook_service.service.context import Services
from webhook_service.validation import check_fields
from webhook_service.views import config_resource, key_resource, list_resource, organisation_resource

EMBEDDED_CONFIGS = 10  # the configs an organisation resource shows


def get_key(svc: Services, caller: Principal) -> dict[str, Any]:
    key = svc.store.organisations.get_key(caller.organisation, caller.key_id)
    if key is None:
        raise NotFoundError("key")
    return key_resource(key)


def update_key(svc: Services, caller: Principal, key_id: str, body: dict[str, Any]) -> dict[str, Any]:
    check_fields(body, allowed=("webhook_config",), required=("webhook_config",))
    key = svc.store.organisations.get_key(caller.organisation, key_id) if is_uuid(key_id) else None
    if key is None:
        raise NotFoundError("key")
    if key.state != KeyState.ACTIVE:
        raise InvalidStateError("A deactivated key cannot be changed.", params={"state": str(key.state)})
    config_id = _usable_config(svc, caller, body["webhook_config"], "webhook_config")
    try:
        updated = svc.store.organisations.set_key_config(caller.organisation, key_id, config_id)
    except ConflictError:
        raise _reference_changed("webhook_config") from None
    logger.info("key config set", extra={"target_key_id": key_id, "config_id": config_id})
    return key_resource(updated or key)


def get_organisation(svc: Services, caller: Principal) -> dict[str, Any]:
    organisation = svc.store.organisations.get(caller.organisation)
    if organisation is None:
        raise NotFoundError("organisation")
    return _organisation_view(svc, organisation)


def update_organisation(svc: Services, caller: Principal, body: dict[str, Any]) -> dict[str, Any]:
    check_fields(body, allowed=("webhook_config_default",), required=("webhook_config_default",))
    config_id = _usable_config(svc, caller, body["webhook_config_default"], "webhook_config_default")
    try:
        organisation = svc.store.organisations.set_default(caller.organisation, config_id)
    except ConflictError:
        raise _reference_changed("webhook_config_default") from None
    if organisation is None:
        raise NotFoundError("organisation")
    logger.info("organisation default set", extra={"config_id": config_id})
    return _organisation_view(svc, organisation)


def _usable_config(svc: Services, caller: Principal, value: Any, field_name: str) -> str | None:
    """A config id a key or the organisation may point at: in the caller's organisation and
    not deactivated. None clears the reference."""
    if value is None:
        return None
    if not isinstance(value, str) or not is_uuid(value):
        raise InvalidParameterError(
            f"{field_name} must be a config id or null.", params={field_name: "must be an id or null"}
        )
    config = svc.store.configs.get(caller.organisation, value)
    if config is None:
        raise InvalidParameterError(
            f"{field_name} names no webhook_config.", params={field_name: "no such webhook_config"}
        )
    if config.state == ConfigState.DEACTIVATED:
        raise InvalidStateError(
            "A deactivated config cannot receive events; set its state to new first.",
            params={field_name: ConfigState.DEACTIVATED.value},
        )
    return value


def _reference_changed(field_name: str) -> InvalidStateError:
    return InvalidStateError(
        "The config was deactivated meanwhile.", params={field_name: ConfigState.DEACTIVATED.value}
    )


def _organisation_view(svc: Services, organisation: Organisation) -> dict[str, Any]:
    """The organisation with its first configs and its state: `active` when one of its
    configs is valid, else `unconfigured`."""
    configs = svc.store.lists.configs(organisation.id, ListQuery(limit=EMBEDDED_CONFIGS))
    has_valid = svc.store.lists.configs(organisation.id, ListQuery(filters={"state": ConfigState.VALID}, limit=1))
    resource = organisation_resource(organisation)
    now = svc.clock()
    resource["webhook_configs"] = list_resource(
        configs, "/configs/webhook", [config_resource(c, now=now) for c in configs.items]
    )
    resource["state"] = "active" if has_valid.items else "unconfigured"
    return resource
