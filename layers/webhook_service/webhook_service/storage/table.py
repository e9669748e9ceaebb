"""The one table: its name, its client (made on first use), and the requests every
repository makes of it. Every write goes through here, so the table tells the routing
cache it owns about each partition written (`storage.routing`)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from webhook_service import clients
from webhook_service.errors import DependencyError
from webhook_service.storage.codec import Item, dynamodb_errors, marshal, unmarshal
from webhook_service.storage.routing import RoutingCache

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

BATCH_GET_TRIES = 5  # BatchGetItem calls for one read, counting the retries of unprocessed keys
BATCH_GET_BACKOFF = 0.05  # seconds before the first retry, doubled for each next: 0.75 s in all


def partitions_of(request: dict[str, Any]) -> list[str]:
    """The partition keys a write request names (as sent: `{"S": ...}`)."""
    found = []
    for field in ("Key", "Item"):
        pk = request.get(field, {}).get("PK", {})
        if isinstance(pk, dict) and isinstance(pk.get("S"), str):
            found.append(pk["S"])
    return found


class Table:
    """Reads and writes of one DynamoDB table, with the service's error translation
    (`codec.dynamodb_errors`). Give it a client, or it makes one on first use. `routing`
    is the routing cache the table's writes keep current."""

    def __init__(self, name: str, client: DynamoDBClient | None = None, routing: RoutingCache | None = None) -> None:
        self.name = name
        self._client = client
        self.routing = routing if routing is not None else RoutingCache(0)

    @property
    def client(self) -> DynamoDBClient:
        if self._client is None:
            self._client = cast("DynamoDBClient", clients.client("dynamodb"))
        return self._client

    # -- reads -----------------------------------------------------------------------------

    def get(self, key: Item) -> Item | None:
        """One item, strongly consistent; None when there is none."""
        with dynamodb_errors():
            response = self.client.get_item(TableName=self.name, Key=marshal(key), ConsistentRead=True)
        raw = response.get("Item")
        return unmarshal(raw) if raw else None

    def batch_get(self, keys: list[Item], consistent: bool = True) -> dict[tuple[str, str], Item]:
        """Items by (PK, SK), in BatchGetItem calls (one, unless DynamoDB leaves keys
        unprocessed under throttling: those are retried after a pause); at most 100 keys.
        Strongly consistent unless `consistent` is False (half the read units: list pages,
        which their eventually consistent index has already made as old as that)."""
        request: dict[str, Any] = {self.name: {"Keys": [marshal(k) for k in keys], "ConsistentRead": consistent}}
        found: dict[tuple[str, str], Item] = {}
        for attempt in range(BATCH_GET_TRIES):
            if attempt:
                time.sleep(BATCH_GET_BACKOFF * 2 ** (attempt - 1))
            with dynamodb_errors():
                response = self.client.batch_get_item(RequestItems=request)
            for raw in response.get("Responses", {}).get(self.name, []):
                item = unmarshal(raw)
                found[(item["PK"], item["SK"])] = item
            request = dict(response.get("UnprocessedKeys") or {})
            if not request:
                return found
        raise DependencyError("batch_get_item left keys unprocessed")

    def query(self, **kwargs: Any) -> dict[str, Any]:
        """One Query request (kwargs as the client takes them; the table's name unless named)."""
        with dynamodb_errors():
            return dict(self.client.query(**{"TableName": self.name, **kwargs}))

    # -- writes ----------------------------------------------------------------------------

    def put(self, item: Item, condition: str, names: dict[str, str] | None = None, values: Item | None = None) -> None:
        """A conditional PutItem (ConflictError when the condition fails)."""
        kwargs: dict[str, Any] = {"Item": marshal(item), "ConditionExpression": condition}
        if names:
            kwargs["ExpressionAttributeNames"] = names
        if values:
            kwargs["ExpressionAttributeValues"] = marshal(values)
        self.write("put_item", kwargs)

    def update(self, key: Item, expression: str, **kwargs: Any) -> dict[str, Any]:
        """An UpdateItem of `key` (kwargs: ConditionExpression, ExpressionAttributeNames,
        ExpressionAttributeValues as plain values, ReturnValues); ConflictError when its
        condition fails. Returns the new item when `ReturnValues="ALL_NEW"`, else {}."""
        request: dict[str, Any] = {"Key": marshal(key), "UpdateExpression": expression, **kwargs}
        if "ExpressionAttributeValues" in request:
            request["ExpressionAttributeValues"] = marshal(request["ExpressionAttributeValues"])
        response = self.write("update_item", request)
        attributes = response.get("Attributes")
        return unmarshal(attributes) if attributes else {}

    def write(self, operation: str, request: dict[str, Any]) -> dict[str, Any]:
        """Send one write request (`put_item`, `update_item`, `delete_item` or
        `transact_write_items`), then tell the routing cache what it wrote."""
        call: Callable[..., Any] = getattr(self.client, operation)
        if operation == "transact_write_items":
            written = [
                pk for action in request["TransactItems"] for part in action.values() for pk in partitions_of(part)
            ]
        else:
            request = {"TableName": self.name, **request}
            written = partitions_of(request)
        with dynamodb_errors():
            response = dict(call(**request))
        self.routing.written(written)
        return response
