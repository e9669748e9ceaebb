"""Organisations and their keys: the organisation's item, its keys, the tokens that find
them, the config each routes to, and the organisation's count of open tests."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from typing import Any

from webhook_service.domain.configs import MAX_OPEN_TESTS, ConfigState
from webhook_service.domain.tenants import Key, KeyState, Organisation, Principal
from webhook_service.errors import OpenTestsLimitError
from webhook_service.storage import unit as writes
from webhook_service.storage.codec import Item
from webhook_service.storage.items import (
    config_counts_item,
    key_from_item,
    key_item,
    organisation_from_item,
    organisation_item,
)
from webhook_service.storage.keys import TOKEN_SK, item_key, org_pk, organisation_key, sort_key, token_key, token_pk
from webhook_service.storage.table import Table
from webhook_service.storage.unit import UnitOfWork


def open_tests_change(organisation: str, change: int, below: int) -> dict[str, Any]:
    """The action that counts a test task into (+1, refused unless the count is below
    `below`) or out of (-1) its organisation's open tests."""
    if change < 0:
        return writes.update(organisation_key(organisation), "ADD open_tests :change", values={":change": change})
    return writes.update(
        organisation_key(organisation),
        "ADD open_tests :change",
        condition="attribute_exists(PK) AND (attribute_not_exists(open_tests) OR open_tests < :cap)",
        values={":change": change, ":cap": below},
    )


class Organisations:
    """Open test tasks are counted on the organisation's item (`open_tests`): every write
    that creates a counted task adds one in the same transaction (`count_open_test`),
    refused at the cap, and every write that ends one takes one away (`uncount_open_test`).
    A task ends once (its end is conditional on it being open), so the count stays exact."""

    def __init__(self, table: Table, open_tests_cap: int = MAX_OPEN_TESTS) -> None:
        self.table = table
        self.open_tests_cap = open_tests_cap

    def create(self, organisation: str, name: str, now: dt.datetime) -> Organisation:
        """A new organisation, with its config counts kept from the start."""
        created = Organisation(id=organisation, name=name, date_created=now)
        UnitOfWork(self.table).extend(
            [
                writes.put(organisation_item(created), "attribute_not_exists(PK)"),
                writes.put(config_counts_item(organisation, {}), "attribute_not_exists(PK)"),
            ]
        ).commit()
        return created

    def get(self, organisation: str) -> Organisation | None:
        item = self.table.get(organisation_key(organisation))
        return organisation_from_item(item) if item else None

    def open_tests(self, organisation: str) -> int:
        """How many test tasks of the organisation are pending or processing."""
        found = self.get(organisation)
        return found.open_tests if found else 0

    def count_open_test(self, unit: UnitOfWork, organisation: str, below: int | None = None) -> None:
        """Count a new test task into its organisation's open tests in `unit`, which then
        fails with OpenTestsLimitError unless there were fewer than `below` (the cap)."""
        cap = self.open_tests_cap if below is None else below
        unit.add(open_tests_change(organisation, +1, cap), refused=lambda: OpenTestsLimitError(organisation))

    def uncount_open_test(self, unit: UnitOfWork, organisation: str) -> None:
        unit.add(open_tests_change(organisation, -1, 0))

    # -- keys ----------------------------------------------------------------------------

    def create_key(self, organisation: str, key_id: str, token_hash: str, now: dt.datetime) -> Key:
        """The key and its token record in one transaction; fails if the organisation is unknown."""
        key = Key(id=key_id, organisation=organisation, token_hash=token_hash, state=KeyState.ACTIVE, date_created=now)
        token: Item = {
            "PK": token_pk(token_hash),
            "SK": TOKEN_SK,
            "key_id": key_id,
            "organisation": organisation,
            "state": KeyState.ACTIVE.value,
        }
        UnitOfWork(self.table).extend(
            [
                writes.check(organisation_key(organisation), "attribute_exists(PK)"),
                writes.put(key_item(key), "attribute_not_exists(PK)"),
                writes.put(token, "attribute_not_exists(PK)"),
            ]
        ).commit()
        return key

    def get_key(self, organisation: str, key_id: str) -> Key | None:
        item = self.table.get({"PK": org_pk(organisation), "SK": sort_key("key", key_id)})
        return key_from_item(item) if item else None

    def deactivate_key(self, organisation: str, key_id: str) -> Key | None:
        """Deactivate a key and its token record together; None when the organisation has no
        such key."""
        key = self.get_key(organisation, key_id)
        if key is None:
            return None
        names, values = {"#s": "state"}, {":d": KeyState.DEACTIVATED.value}
        UnitOfWork(self.table).extend(
            [
                writes.update(item_key(organisation, "key", key_id), "SET #s = :d", names=names, values=values),
                writes.update(token_key(key.token_hash), "SET #s = :d", names=names, values=values),
            ]
        ).commit()
        return replace(key, state=KeyState.DEACTIVATED)

    def find_principal(self, token_hash: str) -> Principal | None:
        item = self.table.get(token_key(token_hash))
        if item is None:
            return None
        return Principal(key_id=item["key_id"], organisation=item["organisation"], state=KeyState(item["state"]))

    # -- where events go -----------------------------------------------------------------

    def set_key_config(self, organisation: str, key_id: str, config_id: str | None) -> Key | None:
        """Point a key at a config (or clear it), and return the key as stored after. The
        config must exist, in the same organisation, and not be deactivated: checked in the
        same transaction."""
        item = self._set_config_reference(
            item_key(organisation, "key", key_id), "webhook_config", organisation, config_id
        )
        return key_from_item(item) if item else None

    def set_default(self, organisation: str, config_id: str | None) -> Organisation | None:
        """Point the organisation's default at a config (or clear it), as set_key_config does
        a key, and return the organisation as stored after."""
        item = self._set_config_reference(
            organisation_key(organisation), "webhook_config_default", organisation, config_id
        )
        return organisation_from_item(item) if item else None

    def _set_config_reference(self, key: Item, attribute: str, organisation: str, config_id: str | None) -> Item | None:
        unit = UnitOfWork(self.table).add(
            writes.update(
                key, "SET #a = :c", condition="attribute_exists(PK)", names={"#a": attribute}, values={":c": config_id}
            )
        )
        if config_id is not None:
            unit.add(
                writes.check(
                    item_key(organisation, "webhook_config", config_id),
                    "attribute_exists(PK) AND #s <> :d",
                    names={"#s": "state"},
                    values={":d": ConfigState.DEACTIVATED.value},
                )
            )
        unit.commit()
        return self.table.get(key)
