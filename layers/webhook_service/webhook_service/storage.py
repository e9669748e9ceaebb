"""DynamoDB storage: the one place that knows the table's keys, indexes and item shapes.

One table holds everything. Every resource of an organisation lives in its partition
(`PK = ORG#<org>`), so a lookup with the caller's organisation cannot reach another
organisation's item. Lists read one of three sparse indexes, newest first, all sorted by
`CreatedSK = <date_created>#<id>` (a fixed-width string, so it sorts as time does):

| index     | partition (`<o>` is the organisation)                 | used for                |
|-----------|-------------------------------------------------------|-------------------------|
| ByType    | `<o>#webhook_config` (absent once deactivated), `<o>#task` | plain lists        |
| ByState   | `<o>#<type>#state=<state>`                            | `state=` filters        |
| ByRelated | `<o>#task#target=<config>`, `<o>#event#type=<type>`   | `target=`, `type=`      |
|           | `<o>#attempt#event=<event>`                           | an event's attempts     |

Tokens are found by hash: `PK = TOKEN#<sha256>` holds the key id, organisation and state.
`SK = COUNTS#webhook_config` in the organisation's partition holds its configs' counts by
state, kept by every config write, so that a config list's `total_count` costs one item.
A list page reads at most `limit + 1` items plus LIST_BOOKKEEPING_ITEMS (`list_items`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from webhook_service import clients, jsontext
from webhook_service.domain import MAX_OPEN_TESTS, Attempt, Event, Task, WebhookConfig
from webhook_service.errors import ConflictError, DependencyError, OpenTestsLimitError, ThrottledError
from webhook_service.timefmt import format_datetime
from webhook_service.validation import ListQuery

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

Item = dict[str, Any]

INDEX_BY_TYPE = "ByType"
INDEX_BY_STATE = "ByState"
INDEX_BY_RELATED = "ByRelated"
INDEX_BY_OPEN = "ByOpen"  # sparse: tasks and events that have not ended, by when they are due
OPEN_SHARDS = 4  # ByOpen partitions, so that no one partition takes every task's writes
# A list page reads at most its limit + 1 items plus this many more: the items named by
# `after_id` and `before_id`, and the organisation's config counts (one item).
LIST_BOOKKEEPING_ITEMS = 3
CONFIG_STATES = ("new", "valid", "invalid", "deactivated")
CONFIG_COUNTS_SK = "COUNTS#webhook_config"
OUTCOME_TRIES = 3  # reads of a config whose state moved while its test ran, before the outcome stands alone
BATCH_GET_TRIES = 5  # BatchGetItem calls for one read, counting the retries of unprocessed keys
BATCH_GET_BACKOFF = 0.05  # seconds before the first retry, doubled for each next: 0.75 s in all
_INDEX_ATTRIBUTE = {INDEX_BY_TYPE: "TypePK", INDEX_BY_STATE: "StatePK", INDEX_BY_RELATED: "RelatedPK"}
_SORT_KEY_PREFIX = {
    "webhook_config": "CONFIG#",
    "task": "TASK#",
    "event": "EVENT#",
    "key": "KEY#",
    "attempt": "ATTEMPT#",
}
_THROTTLING_CODES = {
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "ThrottlingError",
}
HISTORY_TTL = dt.timedelta(days=30)  # tasks, events and attempts expire; configs, keys, organisations do not


@dataclass(frozen=True)
class Principal:
    """Who is calling: a key and its organisation."""

    key_id: str
    organisation: str
    state: str


@dataclass(frozen=True)
class Page:
    """One page of a list. `total_count` is exact unless `total_count_capped`: then it is
    the number of matches this page read, a lower bound (see `Store.list_items`).
    `next_after_id` is the `after_id` of the next page when `has_more`."""

    items: list[Item]
    has_more: bool
    total_count: int
    total_count_capped: bool = False
    next_after_id: str | None = None


class UnknownCursorError(Exception):
    """`after_id` or `before_id` names nothing in this list."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


# -- marshalling -----------------------------------------------------------------------


def _to_attr(value: Any) -> dict[str, Any]:
    if value is None:
        return {"NULL": True}
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, int):
        return {"N": str(value)}
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, dict):
        return {"M": {k: _to_attr(v) for k, v in value.items()}}
    if isinstance(value, list):
        return {"L": [_to_attr(v) for v in value]}
    raise TypeError(f"cannot store {type(value).__name__}")


def _from_attr(attr: dict[str, Any]) -> Any:
    ((kind, value),) = attr.items()
    if kind == "S":
        return value
    if kind == "N":
        return int(value)
    if kind == "BOOL":
        return bool(value)
    if kind == "NULL":
        return None
    if kind == "M":
        return {k: _from_attr(v) for k, v in value.items()}
    if kind == "L":
        return [_from_attr(v) for v in value]
    raise TypeError(f"unexpected attribute type {kind}")


def marshal(item: Item) -> dict[str, Any]:
    return {k: _to_attr(v) for k, v in item.items()}


def unmarshal(item: dict[str, Any]) -> Item:
    return {k: _from_attr(v) for k, v in item.items()}


# -- keys and item shapes ----------------------------------------------------------------


def org_pk(organisation: str) -> str:
    return f"ORG#{organisation}"


def created_sk(date_created: str, resource_id: str) -> str:
    return f"{date_created}#{resource_id}"


def _parse_dt(value: str | None) -> dt.datetime | None:
    return dt.datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC) if value else None


def config_item(config: WebhookConfig) -> Item:
    created = format_datetime(config.date_created)
    prefix = f"{config.organisation}#webhook_config"
    item: Item = {
        "PK": org_pk(config.organisation),
        "SK": f"CONFIG#{config.id}",
        "StatePK": f"{prefix}#state={config.state}",
        "CreatedSK": created_sk(created, config.id),
        "resource": "webhook_config",
        "id": config.id,
        "organisation": config.organisation,
        "url": config.url,
        "secret": config.secret,
        "state": config.state,
        "version": config.version,
        "date_created": created,
    }
    if config.state != "deactivated":
        item["TypePK"] = prefix  # sparse: plain lists leave deactivated configs out
    if config.slow_until is not None:
        item["slow_until"] = config.slow_until
    if config.open_test is not None:
        item["open_test"] = config.open_test
    if config.previous_secret is not None and config.previous_secret_expires is not None:
        item["previous_secret"] = config.previous_secret
        item["previous_secret_expires"] = format_datetime(config.previous_secret_expires)
    return item


def config_from_item(item: Item) -> WebhookConfig:
    date_created = _parse_dt(item["date_created"])
    assert date_created is not None
    return WebhookConfig(
        id=item["id"],
        organisation=item["organisation"],
        url=item["url"],
        secret=item["secret"],
        state=item["state"],
        version=item["version"],
        date_created=date_created,
        slow_until=item.get("slow_until"),
        open_test=item.get("open_test"),
        previous_secret=item.get("previous_secret"),
        previous_secret_expires=_parse_dt(item.get("previous_secret_expires")),
    )


def config_counts_item(organisation: str, counts: dict[str, int]) -> Item:
    """The organisation's config counts by state (`state_<state>`), kept exact by every
    write that creates a config or changes its state (in the same transaction).
    `counted` marks counts kept since the organisation was created: an organisation made
    before counts were kept has none, and its config lists count with a Query instead."""
    item: Item = {"PK": org_pk(organisation), "SK": CONFIG_COUNTS_SK, "counted": True}
    item.update({f"state_{state}": int(counts.get(state, 0)) for state in CONFIG_STATES})
    return item


def open_keys(resource_id: str, due: dt.datetime) -> Item:
    """The ByOpen index keys of a task or event that has not ended. Every write that ends it
    replaces the whole item without them, so it leaves the index."""
    shard = int(resource_id[-1], 16) % OPEN_SHARDS  # ids are UUIDs: the last digit is random
    return {"OpenPK": f"open#{shard}", "DueSK": f"{format_datetime(due)}#{resource_id}"}


def task_item(task: Task) -> Item:
    created = format_datetime(task.date_created)
    prefix = f"{task.organisation}#task"
    item: Item = {
        "PK": org_pk(task.organisation),
        "SK": f"TASK#{task.id}",
        "TypePK": prefix,
        "StatePK": f"{prefix}#state={task.state}",
        "RelatedPK": f"{prefix}#target={task.target}",
        "CreatedSK": created_sk(created, task.id),
        "resource": "task",
        "id": task.id,
        "organisation": task.organisation,
        "key": task.key,
        "type": task.type,
        "target": task.target,
        "target_version": task.target_version,
        "state": task.state,
        "error": task.error,
        "result": task.result,
        "date_created": created,
        "expires_at": int((task.date_created + HISTORY_TTL).timestamp()),
    }
    # Left out until set, so that `if_not_exists` can set them once (see start_task).
    if task.date_started:
        item["date_started"] = format_datetime(task.date_started)
    if task.date_completed:
        item["date_completed"] = format_datetime(task.date_completed)
    if task.event_id:
        item["event_id"] = task.event_id
    if task.counted:
        item["counted"] = True
    if not task.ended:
        item.update(open_keys(task.id, task.date_created))
    return item


def task_from_item(item: Item) -> Task:
    date_created = _parse_dt(item["date_created"])
    assert date_created is not None
    return Task(
        id=item["id"],
        organisation=item["organisation"],
        key=item["key"],
        type=item["type"],
        target=item["target"],
        target_version=item["target_version"],
        state=item["state"],
        error=item.get("error"),
        result=item.get("result"),
        date_created=date_created,
        date_started=_parse_dt(item.get("date_started")),
        date_completed=_parse_dt(item.get("date_completed")),
        event_id=item.get("event_id"),
        counted=bool(item.get("counted", False)),
    )


def event_item(event: Event) -> Item:
    created = format_datetime(event.date_created)
    prefix = f"{event.organisation}#event"
    item: Item = {
        "PK": org_pk(event.organisation),
        "SK": f"EVENT#{event.id}",
        "TypePK": prefix,
        "StatePK": f"{prefix}#state={event.state}",
        "RelatedPK": f"{prefix}#type={event.type}",
        "CreatedSK": created_sk(created, event.id),
        "resource": "event",
        "id": event.id,
        "organisation": event.organisation,
        "type": event.type,
        "action": event.action,
        # The data's JSON text (a string), not a map: DynamoDB keeps a number's value, not its
        # spelling (2.0 comes back as 2, 1.50 as 1.5), and deliveries show the text given.
        "data": jsontext.dumps(event.data),
        "state": event.state,
        "attempts": event.attempts,
        "next_attempt_at": event.next_attempt_at,
        "webhook_config": event.webhook_config,
        "error": event.error,
        "key": event.key,
        "date_created": created,
        "date_delivered": format_datetime(event.date_delivered) if event.date_delivered else None,
        "resends": event.resends,
        "expires_at": event_expires_at(event),
    }
    if not event.ended:
        due = event.date_created
        if event.next_attempt_at is not None:
            due = dt.datetime.fromtimestamp(event.next_attempt_at, tz=dt.UTC)
        item.update(open_keys(event.id, due))
    return item


def event_from_item(item: Item) -> Event:
    date_created = _parse_dt(item["date_created"])
    assert date_created is not None
    return Event(
        id=item["id"],
        organisation=item["organisation"],
        type=item["type"],
        action=item["action"],
        data=jsontext.loads(item["data"]) if isinstance(item["data"], str) else item["data"],
        state=item["state"],
        date_created=date_created,
        key=item.get("key"),
        attempts=item.get("attempts", 0),
        next_attempt_at=item.get("next_attempt_at"),
        claimed_until=item.get("claimed_until"),
        webhook_config=item.get("webhook_config"),
        error=item.get("error"),
        date_delivered=_parse_dt(item.get("date_delivered")),
        resends=int(item.get("resends", 0)),
    )


def event_expires_at(event: Event) -> int:
    """The unix time an event's item expires (DynamoDB's TTL), and its attempts with it."""
    return int((event.date_created + HISTORY_TTL).timestamp())


def attempt_item(attempt: Attempt) -> Item:
    """An attempt: its own item in its organisation's partition (found by id, for cursors),
    listed through ByRelated under its event. It expires when its event does."""
    created = format_datetime(attempt.date_created)
    return {
        "PK": org_pk(attempt.organisation),
        "SK": f"ATTEMPT#{attempt.id}",
        "RelatedPK": f"{attempt.organisation}#attempt#event={attempt.event}",
        "CreatedSK": created_sk(created, attempt.id),
        "resource": "attempt",
        "id": attempt.id,
        "organisation": attempt.organisation,
        "event": attempt.event,
        "webhook_config": attempt.webhook_config,
        "url": attempt.url,
        "status_code": attempt.status_code,
        "error": attempt.error,
        "duration_ms": attempt.duration_ms,
        "response_excerpt": attempt.response_excerpt,
        "counted": attempt.counted,
        "date_created": created,
        "expires_at": attempt.expires_at,
    }


def attempt_from_item(item: Item) -> Attempt:
    date_created = _parse_dt(item["date_created"])
    assert date_created is not None
    return Attempt(
        id=item["id"],
        organisation=item["organisation"],
        event=item["event"],
        webhook_config=item["webhook_config"],
        url=item["url"],
        status_code=item.get("status_code"),
        error=item.get("error"),
        duration_ms=int(item.get("duration_ms", 0)),
        response_excerpt=item.get("response_excerpt") or "",
        date_created=date_created,
        expires_at=int(item["expires_at"]),
        counted=bool(item.get("counted", True)),
    )


def _attempt_put(attempt: Attempt) -> dict[str, Any]:
    """The transaction action that stores an attempt (once: its id is new)."""
    return {"Put": {"Item": marshal(attempt_item(attempt)), "ConditionExpression": "attribute_not_exists(PK)"}}


def _same_round(resends: int) -> str:
    """The condition that an event is in round `resends` (`:round`): items written before
    resends existed have no `resends` and are in round 0."""
    return "(resends = :round OR attribute_not_exists(resends))" if resends == 0 else "resends = :round"


# -- list ranges ---------------------------------------------------------------------------


def _counts_of(item: Item | None) -> dict[str, int] | None:
    """Config counts by state from their item; None unless kept since the organisation began."""
    if item is None or not item.get("counted"):
        return None
    return {state: int(item.get(f"state_{state}", 0)) for state in CONFIG_STATES}


def _config_total(counts: dict[str, int], filters: dict[str, str]) -> int:
    """How many configs a list without date bounds holds: those of its `state=`, or every
    config not deactivated."""
    if "state" in filters:
        return counts.get(filters["state"], 0)
    return sum(n for state, n in counts.items() if state != "deactivated")


def _id_of_key(key: Item) -> str:
    """The resource id of a table key (`SK` is `<KIND>#<id>`)."""
    return str(key["SK"]).split("#", 1)[1]


_ABOVE_ALL = "~"  # sorts after every character a sort key holds (digits, hex, '-', ':', '.', 'T', 'Z', '#')


def _strictly_below(sort_key: str) -> str:
    """The largest bound that keeps out `sort_key` and keeps every smaller sort key in.

    Sort keys all have one length (27-character datetime, '#', 36-character UUID), so a
    smaller one differs at some position with a smaller character.
    """
    return sort_key[:-1] + chr(ord(sort_key[-1]) - 1) + _ABOVE_ALL


def _date_range(bounds: dict[str, dt.datetime]) -> tuple[str | None, str | None]:
    low: str | None = None
    high: str | None = None
    if "gte" in bounds:
        low = format_datetime(bounds["gte"])
    if "gt" in bounds:
        candidate = format_datetime(bounds["gt"]) + "#" + _ABOVE_ALL
        low = max(low, candidate) if low else candidate
    if "lte" in bounds:
        high = format_datetime(bounds["lte"]) + "#" + _ABOVE_ALL
    if "lt" in bounds:
        candidate = format_datetime(bounds["lt"])
        high = min(high, candidate) if high else candidate
    return low, high


# -- the store -----------------------------------------------------------------------------


@contextlib.contextmanager
def _dynamodb_errors() -> Iterator[None]:
    """Turn boto errors into the service's: throttling, conflicts and dependency failures."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        reasons = [r.get("Code", "") for r in exc.response.get("CancellationReasons", []) or []]
        if code == "ConditionalCheckFailedException" or "ConditionalCheckFailed" in reasons:
            raise ConflictError(code, [r if r and r != "None" else None for r in reasons]) from exc
        if code in _THROTTLING_CODES or _THROTTLING_CODES.intersection(reasons):
            raise ThrottledError(code) from exc
        raise DependencyError(code) from exc
    except BotoCoreError as exc:
        raise DependencyError(type(exc).__name__) from exc


class Store:
    """Reads and writes the service's items. Give it a client, or it makes one on first use.

    Open test tasks are counted on the organisation's item (`open_tests`): every write that
    creates a counted task adds one, refused at `open_tests_cap`, and every write that ends
    one takes one away, each in the same transaction as the task's own write. A task ends
    once (its end is conditional on it being open), so the count stays exact."""

    def __init__(
        self, table_name: str, client: DynamoDBClient | None = None, open_tests_cap: int = MAX_OPEN_TESTS
    ) -> None:
        self.table_name = table_name
        self._client = client
        self.open_tests_cap = open_tests_cap

    @property
    def client(self) -> DynamoDBClient:
        if self._client is None:
            self._client = cast("DynamoDBClient", clients.client("dynamodb"))
        return self._client

    # -- generic ---------------------------------------------------------------------------

    def _get(self, pk: str, sk: str) -> Item | None:
        with _dynamodb_errors():
            response = self.client.get_item(
                TableName=self.table_name, Key=marshal({"PK": pk, "SK": sk}), ConsistentRead=True
            )
        raw = response.get("Item")
        return unmarshal(raw) if raw else None

    def _transact(self, actions: list[dict[str, Any]]) -> None:
        for action in actions:
            next(iter(action.values()))["TableName"] = self.table_name
        with _dynamodb_errors():
            self.client.transact_write_items(TransactItems=actions)  # type: ignore[arg-type]

    def _open_tests(self, organisation: str, change: int, below: int | None = None) -> dict[str, Any]:
        """The transaction action that counts a test task into (+1, refused unless the count
        is below `below`, by default the cap) or out of (-1) its organisation's open tests."""
        key = marshal({"PK": org_pk(organisation), "SK": "ORG"})
        if change < 0:
            return {
                "Update": {
                    "Key": key,
                    "UpdateExpression": "ADD open_tests :change",
                    "ExpressionAttributeValues": marshal({":change": change}),
                }
            }
        return {
            "Update": {
                "Key": key,
                "UpdateExpression": "ADD open_tests :change",
                "ConditionExpression": (
                    "attribute_exists(PK) AND (attribute_not_exists(open_tests) OR open_tests < :cap)"
                ),
                "ExpressionAttributeValues": marshal(
                    {":change": change, ":cap": self.open_tests_cap if below is None else below}
                ),
            }
        }

    def _transact_counting(self, actions: list[dict[str, Any]], task: Task, below: int | None) -> None:
        """Run a transaction that creates `task`, counting it in its organisation's open
        tests (when it is counted); OpenTestsLimitError unless the organisation had fewer
        than `below` (by default the cap)."""
        if not task.counted:
            self._transact(actions)
            return
        counted = len(actions)
        try:
            self._transact([*actions, self._open_tests(task.organisation, +1, below)])
        except ConflictError as exc:
            if len(exc.reasons) > counted and exc.reasons[counted] is not None:
                raise OpenTestsLimitError(task.organisation) from exc
            raise

    def open_tests(self, organisation: str) -> int:
        """How many test tasks of the organisation are pending or processing."""
        item = self.get_organisation(organisation)
        return int(item.get("open_tests", 0)) if item else 0

    def _put(self, item: Item, condition: str, names: dict[str, str] | None = None, values: Item | None = None) -> None:
        kwargs: dict[str, Any] = {"TableName": self.table_name, "Item": marshal(item), "ConditionExpression": condition}
        if names:
            kwargs["ExpressionAttributeNames"] = names
        if values:
            kwargs["ExpressionAttributeValues"] = marshal(values)
        with _dynamodb_errors():
            self.client.put_item(**kwargs)

    # -- organisations and keys ----------------------------------------------------------

    def create_organisation(self, organisation: str, name: str, now: dt.datetime) -> Item:
        item: Item = {
            "PK": org_pk(organisation),
            "SK": "ORG",
            "resource": "organisation",
            "id": organisation,
            "name": name,
            "webhook_config_default": None,
            "date_created": format_datetime(now),
        }
        counts = config_counts_item(organisation, {})
        self._transact(
            [
                {"Put": {"Item": marshal(item), "ConditionExpression": "attribute_not_exists(PK)"}},
                {"Put": {"Item": marshal(counts), "ConditionExpression": "attribute_not_exists(PK)"}},
            ]
        )
        return item

    def _config_count(self, organisation: str, before: str | None, after: str) -> list[dict[str, Any]]:
        """The transaction action (none when the state does not change) that moves one config
        from state `before` (None: a new config) to `after` in its organisation's counts."""
        if before == after:
            return []
        names = {"#a": f"state_{after}"}
        values: Item = {":one": 1}
        expression = "ADD #a :one"
        if before is not None:
            names["#b"] = f"state_{before}"
            values[":less"] = -1
            expression += ", #b :less"
        return [
            {
                "Update": {
                    "Key": marshal({"PK": org_pk(organisation), "SK": CONFIG_COUNTS_SK}),
                    "UpdateExpression": expression,
                    "ExpressionAttributeNames": names,
                    "ExpressionAttributeValues": marshal(values),
                }
            }
        ]

    def config_counts(self, organisation: str) -> dict[str, int] | None:
        """The organisation's configs by state, or None when it has no kept counts."""
        item = self._get(org_pk(organisation), CONFIG_COUNTS_SK)
        return _counts_of(item)

    def get_organisation(self, organisation: str) -> Item | None:
        return self._get(org_pk(organisation), "ORG")

    def create_key(self, organisation: str, key_id: str, token_hash: str, now: dt.datetime) -> Item:
        """The key and its token record in one transaction; fails if the organisation is unknown."""
        created = format_datetime(now)
        key: Item = {
            "PK": org_pk(organisation),
            "SK": f"KEY#{key_id}",
            "resource": "key",
            "id": key_id,
            "organisation": organisation,
            "webhook_config": None,
            "state": "active",
            "token_hash": token_hash,
            "date_created": created,
        }
        token: Item = {
            "PK": f"TOKEN#{token_hash}",
            "SK": "TOKEN",
            "key_id": key_id,
            "organisation": organisation,
            "state": "active",
        }
        self._transact(
            [
                {
                    "ConditionCheck": {
                        "Key": marshal({"PK": org_pk(organisation), "SK": "ORG"}),
                        "ConditionExpression": "attribute_exists(PK)",
                    }
                },
                {"Put": {"Item": marshal(key), "ConditionExpression": "attribute_not_exists(PK)"}},
                {"Put": {"Item": marshal(token), "ConditionExpression": "attribute_not_exists(PK)"}},
            ]
        )
        return key

    def get_key(self, organisation: str, key_id: str) -> Item | None:
        return self._get(org_pk(organisation), f"KEY#{key_id}")

    def deactivate_key(self, organisation: str, key_id: str) -> Item | None:
        key = self.get_key(organisation, key_id)
        if key is None:
            return None
        self._transact(
            [
                {
                    "Update": {
                        "Key": marshal({"PK": key["PK"], "SK": key["SK"]}),
                        "UpdateExpression": "SET #s = :d",
                        "ExpressionAttributeNames": {"#s": "state"},
                        "ExpressionAttributeValues": marshal({":d": "deactivated"}),
                    }
                },
                {
                    "Update": {
                        "Key": marshal({"PK": f"TOKEN#{key['token_hash']}", "SK": "TOKEN"}),
                        "UpdateExpression": "SET #s = :d",
                        "ExpressionAttributeNames": {"#s": "state"},
                        "ExpressionAttributeValues": marshal({":d": "deactivated"}),
                    }
                },
            ]
        )
        key["state"] = "deactivated"
        return key

    def find_principal(self, token_hash: str) -> Principal | None:
        item = self._get(f"TOKEN#{token_hash}", "TOKEN")
        if item is None:
            return None
        return Principal(key_id=item["key_id"], organisation=item["organisation"], state=item["state"])

    # -- configs and tasks ------------------------------------------------------------------

    def get_config(self, organisation: str, config_id: str) -> WebhookConfig | None:
        item = self._get(org_pk(organisation), f"CONFIG#{config_id}")
        return config_from_item(item) if item else None

    def _batch_get(self, keys: list[Item]) -> dict[tuple[str, str], Item]:
        """Items by (PK, SK), in strongly consistent BatchGetItem calls (one, unless DynamoDB
        leaves keys unprocessed under throttling: those are retried after a pause)."""
        request: dict[str, Any] = {self.table_name: {"Keys": [marshal(k) for k in keys], "ConsistentRead": True}}
        found: dict[tuple[str, str], Item] = {}
        for attempt in range(BATCH_GET_TRIES):
            if attempt:
                time.sleep(BATCH_GET_BACKOFF * 2 ** (attempt - 1))
            with _dynamodb_errors():
                response = self.client.batch_get_item(RequestItems=request)
            for raw in response.get("Responses", {}).get(self.table_name, []):
                item = unmarshal(raw)
                found[(item["PK"], item["SK"])] = item
            request = dict(response.get("UnprocessedKeys") or {})
            if not request:
                return found
        raise DependencyError("batch_get_item left keys unprocessed")

    def get_task_and_config(
        self, organisation: str, task_id: str, config_id: str
    ) -> tuple[Task | None, WebhookConfig | None]:
        """A task and a config in one strongly consistent round trip."""
        pk = org_pk(organisation)
        found = self._batch_get([{"PK": pk, "SK": f"TASK#{task_id}"}, {"PK": pk, "SK": f"CONFIG#{config_id}"}])
        task = found.get((pk, f"TASK#{task_id}"))
        config = found.get((pk, f"CONFIG#{config_id}"))
        return (task_from_item(task) if task else None), (config_from_item(config) if config else None)

    def get_routing(
        self, organisation: str, key_id: str | None, event_id: str | None = None
    ) -> tuple[Event | None, Item | None, Item | None]:
        """What routes an event, in one strongly consistent round trip: the event itself
        (when `event_id` is given), its key (when it has one) and its organisation."""
        pk = org_pk(organisation)
        keys = [{"PK": pk, "SK": "ORG"}]
        if key_id is not None:
            keys.append({"PK": pk, "SK": f"KEY#{key_id}"})
        if event_id is not None:
            keys.append({"PK": pk, "SK": f"EVENT#{event_id}"})
        found = self._batch_get(keys)
        event = found.get((pk, f"EVENT#{event_id}")) if event_id is not None else None
        key = found.get((pk, f"KEY#{key_id}")) if key_id is not None else None
        return (event_from_item(event) if event else None), key, found.get((pk, "ORG"))

    def get_task(self, organisation: str, task_id: str) -> Task | None:
        item = self._get(org_pk(organisation), f"TASK#{task_id}")
        return task_from_item(item) if item else None

    def create_config(self, config: WebhookConfig, task: Task, open_tests_below: int | None = None) -> None:
        """The config and its first test task, both or neither (OpenTestsLimitError when the
        organisation has as many open tests as it may, or `open_tests_below` when given)."""
        self._transact_counting(
            [
                {"Put": {"Item": marshal(config_item(config)), "ConditionExpression": "attribute_not_exists(PK)"}},
                {"Put": {"Item": marshal(task_item(task)), "ConditionExpression": "attribute_not_exists(PK)"}},
                *self._config_count(config.organisation, None, config.state),
            ],
            task,
            open_tests_below,
        )

    def replace_config(
        self, config: WebhookConfig, expected_version: int, task: Task | None, open_tests_below: int | None = None
    ) -> None:
        """Write an updated config (and its test task) if nobody changed it since it was read.

        Raises ConflictError when the stored version is no longer `expected_version`, or its
        secret was rotated meanwhile (a rotation keeps the version; the whole item is put). The
        stored config is read first, for its state: the write is conditional on that state
        too, so that the organisation's config counts move with it exactly.
        """
        stored = self._get(org_pk(config.organisation), f"CONFIG#{config.id}")
        if stored is None or stored.get("version") != expected_version:
            raise ConflictError("ConditionalCheckFailedException", [])
        actions: list[dict[str, Any]] = [
            {
                "Put": {
                    "Item": marshal(config_item(config)),
                    "ConditionExpression": "version = :v AND #s = :was AND secret = :secret",
                    "ExpressionAttributeNames": {"#s": "state"},
                    "ExpressionAttributeValues": marshal(
                        {":v": expected_version, ":was": stored["state"], ":secret": config.secret}
                    ),
                }
            },
            *self._config_count(config.organisation, stored["state"], config.state),
        ]
        if task is None:
            self._transact(actions)
            return
        actions.append({"Put": {"Item": marshal(task_item(task)), "ConditionExpression": "attribute_not_exists(PK)"}})
        self._transact_counting(actions, task, open_tests_below)

    def create_test_task(self, config: WebhookConfig, task: Task, open_tests_below: int | None = None) -> None:
        """Store a test task and make it the config's open test, if the config is still at
        the version it was made for, not deactivated, and its open test is still the one it
        was read with (`config.open_test`). ConflictError otherwise; OpenTestsLimitError when
        the organisation has as many open tests as it may."""
        condition = "version = :v AND #s <> :d AND "
        values: Item = {":v": config.version, ":d": "deactivated", ":task": task.id}
        if config.open_test is None:
            condition += "attribute_not_exists(open_test)"
        else:
            condition += "open_test = :seen"
            values[":seen"] = config.open_test
        self._transact_counting(
            [
                {
                    "Update": {
                        "Key": marshal({"PK": org_pk(config.organisation), "SK": f"CONFIG#{config.id}"}),
                        "UpdateExpression": "SET open_test = :task",
                        "ConditionExpression": condition,
                        "ExpressionAttributeNames": {"#s": "state"},
                        "ExpressionAttributeValues": marshal(values),
                    }
                },
                {"Put": {"Item": marshal(task_item(task)), "ConditionExpression": "attribute_not_exists(PK)"}},
            ],
            task,
            open_tests_below,
        )

    def _end_task(self, task: Task, condition: str, values: Item) -> None:
        """Write a task's end if `condition` holds of the stored task, counting it out of its
        organisation's open tests in the same transaction."""
        put = {
            "Put": {
                "Item": marshal(task_item(task)),
                "ConditionExpression": condition,
                "ExpressionAttributeNames": {"#s": "state"},
                "ExpressionAttributeValues": marshal(values),
            }
        }
        actions = [put, self._open_tests(task.organisation, -1)] if task.counted else [put]
        self._transact(actions)

    def finish_pending_task(self, task: Task) -> None:
        """Write a task's end while it is still pending (used when its job was never queued)."""
        self._end_task(task, "#s = :p", {":p": "pending"})

    # -- delivery ------------------------------------------------------------------------

    def get_event(self, organisation: str, event_id: str) -> Event | None:
        item = self._get(org_pk(organisation), f"EVENT#{event_id}")
        return event_from_item(item) if item else None

    def create_event(self, event: Event) -> Event:
        """Store a new event; if one with its id exists (a job run again), return that one."""
        try:
            self._put(event_item(event), "attribute_not_exists(PK)")
        except ConflictError:
            existing = self.get_event(event.organisation, event.id)
            if existing is None:
                raise
            return existing
        return event

    def start_task(self, task: Task, event_id: str, now: dt.datetime) -> Task | None:
        """Mark a test task `processing` and fix its event id (kept from an earlier start, so
        a job run again re-sends the same event). None if the task has already ended."""
        started = format_datetime(now)
        prefix = f"{task.organisation}#task"
        try:
            with _dynamodb_errors():
                response = self.client.update_item(
                    TableName=self.table_name,
                    Key=marshal({"PK": org_pk(task.organisation), "SK": f"TASK#{task.id}"}),
                    UpdateExpression=(
                        "SET #s = :processing, StatePK = :spk, date_started = if_not_exists(date_started, :now),"
                        " event_id = if_not_exists(event_id, :event)"
                    ),
                    ConditionExpression="#s IN (:pending, :processing)",
                    ExpressionAttributeNames={"#s": "state"},
                    ExpressionAttributeValues=marshal(
                        {
                            ":processing": "processing",
                            ":pending": "pending",
                            ":spk": f"{prefix}#state=processing",
                            ":now": started,
                            ":event": event_id,
                        }
                    ),
                    ReturnValues="ALL_NEW",
                )
        except ConflictError:
            return None
        return task_from_item(unmarshal(response["Attributes"]))

    def end_task(self, task: Task) -> bool:
        """Write a task's end unless it has already ended; False if it had."""
        try:
            self._end_task(
                task,
                "attribute_exists(PK) AND #s IN (:pending, :processing)",
                {":pending": "pending", ":processing": "processing"},
            )
        except ConflictError:
            return False
        return True

    def record_test_outcome(
        self, config: WebhookConfig, new_state: str, task: Task, event: Event, attempt: Attempt | None = None
    ) -> str:
        """Write a test's end: the task, its event, its attempt and the config's new state,
        all at once.

        The config is written only if it is still at the task's version and not deactivated;
        otherwise the task and event are written alone. Returns `applied`, `stale` (the
        config had moved on) or `duplicate` (the task had already ended elsewhere). The
        config's write is conditional on the state it had when read (so that the counts
        move with it): if only its state changed since (another test of the same version
        ended), it is read again and the write tried again."""
        prefix = f"{config.organisation}#webhook_config"
        task_put = {
            "Put": {
                "Item": marshal(task_item(task)),
                "ConditionExpression": "#s = :processing",
                "ExpressionAttributeNames": {"#s": "state"},
                "ExpressionAttributeValues": marshal({":processing": "processing"}),
            }
        }
        event_put = {"Put": {"Item": marshal(event_item(event))}}
        counting = [self._open_tests(task.organisation, -1)] if task.counted else []
        if attempt is not None:
            counting.append(_attempt_put(attempt))
        seen: WebhookConfig | None = config
        for _ in range(OUTCOME_TRIES):
            if seen is None or seen.version != task.target_version or seen.state == "deactivated":
                break
            config_update = {
                "Update": {
                    "Key": marshal({"PK": org_pk(config.organisation), "SK": f"CONFIG#{config.id}"}),
                    "UpdateExpression": "SET #s = :state, StatePK = :spk",
                    "ConditionExpression": "version = :v AND #s = :was",
                    "ExpressionAttributeNames": {"#s": "state"},
                    "ExpressionAttributeValues": marshal(
                        {
                            ":state": new_state,
                            ":spk": f"{prefix}#state={new_state}",
                            ":v": task.target_version,
                            ":was": seen.state,
                        }
                    ),
                }
            }
            try:
                self._transact(
                    [
                        config_update,
                        task_put,
                        event_put,
                        *counting,
                        *self._config_count(config.organisation, seen.state, new_state),
                    ]
                )
                return "applied"
            except ConflictError as exc:
                if len(exc.reasons) > 1 and exc.reasons[1] is not None:
                    return "duplicate"
            seen = self.get_config(config.organisation, config.id)
        try:
            self._transact([task_put, event_put, *counting])
        except ConflictError:
            return "duplicate"
        return "stale"

    def record_cut_test(self, task: Task, attempt: Attempt) -> bool:
        """Store the attempt of a test whose request the fast lane cut (the task goes on, in
        the slow lane), if the task is still processing; False if it has ended meanwhile."""
        try:
            self._transact(
                [
                    {
                        "Update": {
                            "Key": marshal({"PK": org_pk(task.organisation), "SK": f"TASK#{task.id}"}),
                            "UpdateExpression": "SET cut_attempts = if_not_exists(cut_attempts, :zero) + :one",
                            "ConditionExpression": "#s = :processing",
                            "ExpressionAttributeNames": {"#s": "state"},
                            "ExpressionAttributeValues": marshal({":processing": "processing", ":zero": 0, ":one": 1}),
                        }
                    },
                    _attempt_put(attempt),
                ]
            )
        except ConflictError:
            return False
        return True

    def claim_event_attempt(
        self, event: Event, attempt: int, config_id: str | None, now: int, claimed_until: int
    ) -> Event | None:
        """Claim attempt `attempt` (1-based) of a pending event, routed to `config_id`, until
        the unix time `claimed_until`: the claim is a lease. None if that attempt is claimed
        by a lease still running, was already made, or the event has ended, so a duplicated
        job never sends twice; a claim whose lease ran out (its job was lost mid-attempt) is
        taken over, so no attempt is stranded. The claim clears `next_attempt_at`: while it
        holds, the attempt's outcome is not known."""
        try:
            with _dynamodb_errors():
                response = self.client.update_item(
                    TableName=self.table_name,
                    Key=marshal({"PK": org_pk(event.organisation), "SK": f"EVENT#{event.id}"}),
                    UpdateExpression=(
                        "SET attempts = :attempt, webhook_config = :config, claimed_until = :until,"
                        " next_attempt_at = :none"
                    ),
                    ConditionExpression=(
                        "#s = :pending AND (attempts = :previous OR (attempts = :attempt AND claimed_until < :now))"
                        f" AND {_same_round(event.resends)}"
                    ),
                    ExpressionAttributeNames={"#s": "state"},
                    ExpressionAttributeValues=marshal(
                        {
                            ":attempt": attempt,
                            ":previous": attempt - 1,
                            ":pending": "pending",
                            ":config": config_id,
                            ":until": claimed_until,
                            ":now": now,
                            ":none": None,
                            ":round": event.resends,
                        }
                    ),
                    ReturnValues="ALL_NEW",
                )
        except ConflictError:
            return None
        return event_from_item(unmarshal(response["Attributes"]))

    def release_event_attempt(self, event: Event, attempt: Attempt | None = None) -> bool:
        """Give back the claim on attempt `event.attempts` that `event` holds (its
        `claimed_until`), unused: the attempt can be claimed again at once. False if the
        claim is no longer that one (taken over after its lease, or the event moved on).
        `attempt`, when given, is the request that was sent all the same (cut by the fast
        lane, not counted): stored in the same write."""
        update: dict[str, Any] = {
            "Key": marshal({"PK": org_pk(event.organisation), "SK": f"EVENT#{event.id}"}),
            "UpdateExpression": "SET attempts = :previous REMOVE claimed_until",
            "ConditionExpression": "#s = :pending AND attempts = :attempt AND claimed_until = :until",
            "ExpressionAttributeNames": {"#s": "state"},
            "ExpressionAttributeValues": marshal(
                {
                    ":previous": event.attempts - 1,
                    ":attempt": event.attempts,
                    ":pending": "pending",
                    ":until": event.claimed_until,
                }
            ),
        }
        try:
            if attempt is not None:
                self._transact([{"Update": update}, _attempt_put(attempt)])
            else:
                with _dynamodb_errors():
                    self.client.update_item(TableName=self.table_name, **update)
        except ConflictError:
            return False
        return True

    def save_event(self, event: Event, attempt: Attempt | None = None) -> bool:
        """Write an event's new state while it is pending at the same attempt (and round);
        False if it has moved on (ended, a later attempt claimed, or resent). `attempt`, the
        request whose outcome this is, is stored in the same write."""
        condition = f"#s = :pending AND attempts = :attempts AND {_same_round(event.resends)}"
        values = {":pending": "pending", ":attempts": event.attempts, ":round": event.resends}
        try:
            if attempt is None:
                self._put(event_item(event), condition, names={"#s": "state"}, values=values)
            else:
                put = {
                    "Item": marshal(event_item(event)),
                    "ConditionExpression": condition,
                    "ExpressionAttributeNames": {"#s": "state"},
                    "ExpressionAttributeValues": marshal(values),
                }
                self._transact([{"Put": put}, _attempt_put(attempt)])
        except ConflictError:
            return False
        return True

    def resend_event(self, seen: Event, reopened: Event) -> bool:
        """Re-open an ended event (`reopened`, made from `seen` by a resend) if it is still
        as it was read: ended in the same round. Of two resends that read the same event,
        one wins; the other gets False. The whole item is replaced, so nothing of the last
        round (a claim, the sweep's count) is left."""
        try:
            self._put(
                event_item(reopened),
                f"#s = :seen AND {_same_round(seen.resends)}",
                names={"#s": "state"},
                values={":seen": seen.state, ":round": seen.resends},
            )
        except ConflictError:
            return False
        return True

    def reopen_undone(self, reopened: Event, seen: Event) -> bool:
        """Put back an event re-opened by a resend whose job could not be queued, unless a
        job has already claimed an attempt of it."""
        try:
            self._put(
                event_item(seen),
                f"#s = :pending AND attempts = :zero AND {_same_round(reopened.resends)}",
                names={"#s": "state"},
                values={":pending": "pending", ":zero": 0, ":round": reopened.resends},
            )
        except ConflictError:
            return False
        return True

    def rotate_secret(self, seen: WebhookConfig, rotated: WebhookConfig) -> bool:
        """Store a rotated secret if the config still has the secret it was read with and is
        not deactivated; False otherwise (rotated or deactivated meanwhile). Nothing else of
        the config changes: not its state, not its version."""
        values: Item = {":new": rotated.secret, ":seen": seen.secret, ":deactivated": "deactivated"}
        if rotated.previous_secret is not None and rotated.previous_secret_expires is not None:
            expression = "SET secret = :new, previous_secret = :previous, previous_secret_expires = :expires"
            values[":previous"] = rotated.previous_secret
            values[":expires"] = format_datetime(rotated.previous_secret_expires)
        else:
            expression = "SET secret = :new REMOVE previous_secret, previous_secret_expires"
        try:
            with _dynamodb_errors():
                self.client.update_item(
                    TableName=self.table_name,
                    Key=marshal({"PK": org_pk(seen.organisation), "SK": f"CONFIG#{seen.id}"}),
                    UpdateExpression=expression,
                    ConditionExpression="secret = :seen AND #s <> :deactivated",
                    ExpressionAttributeNames={"#s": "state"},
                    ExpressionAttributeValues=marshal(values),
                )
        except ConflictError:
            return False
        return True

    def mark_slow(self, config: WebhookConfig, until: int) -> None:
        """Send the config's jobs to the slow lane until the unix time `until`."""
        with contextlib.suppress(ConflictError), _dynamodb_errors():
            self.client.update_item(
                TableName=self.table_name,
                Key=marshal({"PK": org_pk(config.organisation), "SK": f"CONFIG#{config.id}"}),
                UpdateExpression="SET slow_until = :until",
                ConditionExpression="attribute_exists(PK)",
                ExpressionAttributeValues=marshal({":until": until}),
            )

    def clear_slow(self, config: WebhookConfig) -> None:
        """Send the config's jobs to the fast lanes again."""
        with contextlib.suppress(ConflictError), _dynamodb_errors():
            self.client.update_item(
                TableName=self.table_name,
                Key=marshal({"PK": org_pk(config.organisation), "SK": f"CONFIG#{config.id}"}),
                UpdateExpression="REMOVE slow_until",
                ConditionExpression="attribute_exists(slow_until)",
            )

    def invalidate_config(self, config: WebhookConfig) -> bool:
        """Make a `valid` config `invalid` (its receiver answered 410), unless it changed;
        its organisation's config counts move in the same transaction."""
        prefix = f"{config.organisation}#webhook_config"
        update = {
            "Update": {
                "Key": marshal({"PK": org_pk(config.organisation), "SK": f"CONFIG#{config.id}"}),
                "UpdateExpression": "SET #s = :invalid, StatePK = :spk",
                "ConditionExpression": "version = :v AND #s = :valid",
                "ExpressionAttributeNames": {"#s": "state"},
                "ExpressionAttributeValues": marshal(
                    {
                        ":invalid": "invalid",
                        ":valid": "valid",
                        ":v": config.version,
                        ":spk": f"{prefix}#state=invalid",
                    }
                ),
            }
        }
        try:
            self._transact([update, *self._config_count(config.organisation, "valid", "invalid")])
        except ConflictError:
            return False
        return True

    # -- the overdue sweep -----------------------------------------------------------------

    def overdue(self, due_before: dt.datetime, limit: int) -> list[Item]:
        """Tasks and events that have not ended and were due before `due_before`, at most
        `limit` of each ByOpen partition, oldest first."""
        found: list[Item] = []
        high = format_datetime(due_before)
        for shard in range(OPEN_SHARDS):
            with _dynamodb_errors():
                response = self.client.query(
                    TableName=self.table_name,
                    IndexName=INDEX_BY_OPEN,
                    KeyConditionExpression="OpenPK = :pk AND DueSK < :high",
                    ExpressionAttributeValues=marshal({":pk": f"open#{shard}", ":high": high}),
                    Limit=limit,
                )
            found.extend(unmarshal(raw) for raw in response.get("Items", []))
        return found

    def mark_swept(self, item: Item, now: dt.datetime) -> bool:
        """Count one sweep of an overdue task or event and make it due again from `now`,
        unless it changed since `item` was read (ended, or moved on); False then."""
        try:
            with _dynamodb_errors():
                self.client.update_item(
                    TableName=self.table_name,
                    Key=marshal({"PK": item["PK"], "SK": item["SK"]}),
                    UpdateExpression="SET sweeps = if_not_exists(sweeps, :zero) + :one, DueSK = :due",
                    ConditionExpression="DueSK = :read",
                    ExpressionAttributeValues=marshal(
                        {":zero": 0, ":one": 1, ":due": open_keys(item["id"], now)["DueSK"], ":read": item["DueSK"]}
                    ),
                )
        except ConflictError:
            return False
        return True

    # -- keys and the organisation default -------------------------------------------------

    def set_key_config(self, organisation: str, key_id: str, config_id: str | None) -> Item | None:
        """Point a key at a config (or clear it). The config must exist, in the same
        organisation, and not be deactivated: checked in the same transaction."""
        return self._set_config_reference(
            {"PK": org_pk(organisation), "SK": f"KEY#{key_id}"}, "webhook_config", organisation, config_id
        )

    def set_organisation_default(self, organisation: str, config_id: str | None) -> Item | None:
        return self._set_config_reference(
            {"PK": org_pk(organisation), "SK": "ORG"}, "webhook_config_default", organisation, config_id
        )

    def _set_config_reference(self, key: Item, attribute: str, organisation: str, config_id: str | None) -> Item | None:
        update: dict[str, Any] = {
            "Update": {
                "Key": marshal(key),
                "UpdateExpression": "SET #a = :c",
                "ConditionExpression": "attribute_exists(PK)",
                "ExpressionAttributeNames": {"#a": attribute},
                "ExpressionAttributeValues": marshal({":c": config_id}),
            }
        }
        actions = [update]
        if config_id is not None:
            actions.append(
                {
                    "ConditionCheck": {
                        "Key": marshal({"PK": org_pk(organisation), "SK": f"CONFIG#{config_id}"}),
                        "ConditionExpression": "attribute_exists(PK) AND #s <> :d",
                        "ExpressionAttributeNames": {"#s": "state"},
                        "ExpressionAttributeValues": marshal({":d": "deactivated"}),
                    }
                }
            )
        self._transact(actions)
        return self._get(key["PK"], key["SK"])

    # -- lists ---------------------------------------------------------------------------

    def list_items(self, organisation: str, resource: str, query: ListQuery) -> Page:
        """One page of a list, newest first. What it reads is bounded by the page: at most
        `limit + 1` items of an index, plus LIST_BOOKKEEPING_ITEMS (the cursors' items and
        the config counts), whatever the organisation's history.

        - Filters an index serves (`state=`; a task's `target=`; an event's `type=`) and the
          date bounds are key conditions: the page reads the `limit + 1` newest matches.
        - Any other filter is applied to a window of the `limit + 1` newest items in the
          index's range: the page holds the matches among them (perhaps fewer than `limit`,
          even none) and `has_more` says the window did not reach the end; `next_after_id`
          names the last item read, where the next page starts.
        - `total_count` counts every match (ignoring the cursors) when that costs nothing
          more: the page held every match (no cursor, nothing more), or the list is of
          configs without date bounds (their counts by state are kept, `config_counts_item`).
          Otherwise it is the number of matches the page read, a lower bound, and
          `total_count_capped` is true.
        """
        index, partition, filters = self._plan(organisation, resource, query.filters)
        low, high = _date_range(query.date_bounds)
        pk = org_pk(organisation)
        counted = resource == "webhook_config" and not query.date_bounds
        cursors = {name: cid for name, cid in (("after_id", query.after_id), ("before_id", query.before_id)) if cid}
        counts: dict[str, int] | None = None
        if cursors:  # the cursors' items, and the counts the total will need, in one request
            # One key per item: both cursors may name the same one (BatchGetItem refuses duplicates).
            keys = [{"PK": pk, "SK": _SORT_KEY_PREFIX[resource] + cid} for cid in dict.fromkeys(cursors.values())]
            if counted:
                keys.append({"PK": pk, "SK": CONFIG_COUNTS_SK})
            found = self._batch_get(keys)
            counts = _counts_of(found.get((pk, CONFIG_COUNTS_SK)))
            for name, cursor_id in cursors.items():
                cursor = found.get((pk, _SORT_KEY_PREFIX[resource] + cursor_id))
                if cursor is None or (resource == "attempt" and cursor.get("event") != query.filters.get("event")):
                    raise UnknownCursorError(name)
                if name == "after_id":  # older than the cursor
                    bound = _strictly_below(cursor["CreatedSK"])
                    high = min(high, bound) if high else bound
                else:  # newer than the cursor
                    bound = cursor["CreatedSK"] + " "
                    low = max(low, bound) if low else bound
        if low is not None and high is not None and low > high:
            items: list[Item] = []
            last_read: str | None = None
        else:
            items, last_read = self._query(index, partition, low, high, filters, window=query.limit + 1)
        has_more = len(items) > query.limit or last_read is not None
        matched = len(items)
        items = items[: query.limit]
        next_after_id = None
        if has_more:
            next_after_id = items[-1]["id"] if len(items) == query.limit else last_read
        if not cursors and not has_more:
            return Page(items=items, has_more=False, total_count=matched)
        if counted:
            if not cursors:
                counts = self.config_counts(organisation)
            if counts is not None:
                return Page(items, has_more, _config_total(counts, query.filters), next_after_id=next_after_id)
            # An organisation made before counts were kept: count with a Query (exact, not bounded).
            total = self._count(index, partition, *_date_range(query.date_bounds), filters)
            return Page(items, has_more, total, next_after_id=next_after_id)
        return Page(items, has_more, matched, total_count_capped=True, next_after_id=next_after_id)

    @staticmethod
    def _plan(organisation: str, resource: str, filters: dict[str, str]) -> tuple[str, str, dict[str, str]]:
        """Choose the index for a list and the filters left to apply after reading it."""
        rest = dict(filters)
        prefix = f"{organisation}#{resource}"
        if resource == "task" and "target" in rest:
            return INDEX_BY_RELATED, f"{prefix}#target={rest.pop('target')}", rest
        if resource == "event" and "type" in rest:
            return INDEX_BY_RELATED, f"{prefix}#type={rest.pop('type')}", rest
        if resource == "attempt":  # always of one event
            return INDEX_BY_RELATED, f"{prefix}#event={rest.pop('event')}", rest
        if "state" in rest:
            return INDEX_BY_STATE, f"{prefix}#state={rest.pop('state')}", rest
        return INDEX_BY_TYPE, prefix, rest

    def _query_kwargs(
        self, index: str, partition: str, low: str | None, high: str | None, filters: dict[str, str]
    ) -> dict[str, Any]:
        names = {"#pk": _INDEX_ATTRIBUTE[index]}
        values: Item = {":pk": partition}
        condition = "#pk = :pk"
        if low is not None or high is not None:
            names["#sk"] = "CreatedSK"
        if low is not None and high is not None:
            condition += " AND #sk BETWEEN :low AND :high"
            values.update({":low": low, ":high": high})
        elif low is not None:
            condition += " AND #sk >= :low"
            values[":low"] = low
        elif high is not None:
            condition += " AND #sk <= :high"
            values[":high"] = high
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "IndexName": index,
            "KeyConditionExpression": condition,
            "ScanIndexForward": False,
        }
        if filters:
            clauses = []
            for n, (field_name, value) in enumerate(sorted(filters.items())):
                names[f"#f{n}"] = field_name
                values[f":f{n}"] = value
                clauses.append(f"#f{n} = :f{n}")
            kwargs["FilterExpression"] = " AND ".join(clauses)
        kwargs["ExpressionAttributeNames"] = names
        kwargs["ExpressionAttributeValues"] = marshal(values)
        return kwargs

    def _query(
        self, index: str, partition: str, low: str | None, high: str | None, filters: dict[str, str], window: int
    ) -> tuple[list[Item], str | None]:
        """The matches among the `window` newest items of the range (DynamoDB's `Limit`
        counts the items it reads, before the filter), and, when items beyond the window
        may remain, the id of the last one read (None when the range ended within it)."""
        kwargs = self._query_kwargs(index, partition, low, high, filters)
        items: list[Item] = []
        read = 0
        while read < window:
            kwargs["Limit"] = window - read
            with _dynamodb_errors():
                response = self.client.query(**kwargs)
            read += int(response.get("ScannedCount", 0))
            items.extend(unmarshal(raw) for raw in response.get("Items", []))
            if "LastEvaluatedKey" not in response:
                return items, None
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        if not filters:
            return items, None  # the window's last item tells `has_more`
        return items, _id_of_key(unmarshal(kwargs["ExclusiveStartKey"]))

    def _count(self, index: str, partition: str, low: str | None, high: str | None, filters: dict[str, str]) -> int:
        if low is not None and high is not None and low > high:
            return 0
        kwargs = self._query_kwargs(index, partition, low, high, filters)
        kwargs["Select"] = "COUNT"
        total = 0
        while True:
            with _dynamodb_errors():
                response = self.client.query(**kwargs)
            total += response.get("Count", 0)
            if "LastEvaluatedKey" not in response:
                return total
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]
