"""The one place transactions are made: a unit of work collects the writes that must happen
together, from any repository, and `commit()` sends them at once.

A unit of one write is sent as that write alone (PutItem, UpdateItem, DeleteItem): the
same guarantee at half a transaction's cost (a transaction costs twice the write units).
A write can name the error its refused condition means (`refused`), so that a caller gets
that error (OpenTestsLimitError, say) rather than a bare ConflictError."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from webhook_service.errors import ConflictError
from webhook_service.storage.codec import Item, marshal
from webhook_service.storage.table import Table

_SINGLE = {"Put": "put_item", "Update": "update_item", "Delete": "delete_item"}


@dataclass(frozen=True)
class Write:
    """One action of a transaction (`{"Put": {...}}`, `{"Update": ...}`, `{"Delete": ...}`
    or `{"ConditionCheck": ...}`, attribute values marshalled), and the error its refused
    condition means, if any."""

    action: dict[str, Any]
    refused: Callable[[], Exception] | None = None


def put(
    item: Item, condition: str | None = None, names: dict[str, str] | None = None, values: Item | None = None
) -> dict[str, Any]:
    """A Put action."""
    body: dict[str, Any] = {"Item": marshal(item)}
    _conditioned(body, condition, names, values)
    return {"Put": body}


def update(
    key: Item,
    expression: str,
    condition: str | None = None,
    names: dict[str, str] | None = None,
    values: Item | None = None,
) -> dict[str, Any]:
    """An Update action."""
    body: dict[str, Any] = {"Key": marshal(key), "UpdateExpression": expression}
    _conditioned(body, condition, names, values)
    return {"Update": body}


def check(key: Item, condition: str, names: dict[str, str] | None = None, values: Item | None = None) -> dict[str, Any]:
    """A ConditionCheck action (only within a transaction of other writes)."""
    body: dict[str, Any] = {"Key": marshal(key)}
    _conditioned(body, condition, names, values)
    return {"ConditionCheck": body}


def _conditioned(
    body: dict[str, Any], condition: str | None, names: dict[str, str] | None, values: Item | None
) -> None:
    if condition:
        body["ConditionExpression"] = condition
    if names:
        body["ExpressionAttributeNames"] = names
    if values:
        body["ExpressionAttributeValues"] = marshal(values)


class UnitOfWork:
    """Writes that happen together or not at all."""

    def __init__(self, table: Table) -> None:
        self.table = table
        self.writes: list[Write] = []

    def add(self, action: dict[str, Any], refused: Callable[[], Exception] | None = None) -> UnitOfWork:
        self.writes.append(Write(action, refused))
        return self

    def extend(self, actions: list[dict[str, Any]]) -> UnitOfWork:
        for action in actions:
            self.add(action)
        return self

    def commit(self) -> None:
        """Send the writes: one alone, several as one transaction. A refused condition raises
        the `refused` error of the first refused write that names one, else ConflictError
        (its `reasons` in the order the writes were added)."""
        if not self.writes:
            return
        try:
            if len(self.writes) == 1 and next(iter(self.writes[0].action)) in _SINGLE:
                ((kind, body),) = self.writes[0].action.items()
                self.table.write(_SINGLE[kind], dict(body))
            else:
                actions = [
                    {kind: {**body, "TableName": self.table.name}}
                    for w in self.writes
                    for kind, body in w.action.items()
                ]
                self.table.write("transact_write_items", {"TransactItems": actions})
        except ConflictError as exc:
            reasons = exc.reasons or (["ConditionalCheckFailed"] if len(self.writes) == 1 else [])
            for write, reason in zip(self.writes, reasons, strict=False):
                if reason is not None and write.refused is not None:
                    raise write.refused() from exc
            raise ConflictError(str(exc), reasons) from exc
