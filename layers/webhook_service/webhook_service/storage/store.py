"""The Store: every read and write of the one table, returning domain values.

One store for the one table: its transactions cross aggregates (a config and its test task,
an event and its attempt, the organisation's counts). Keys come from `keys`, item shapes from
`items`, list planning from `planning`, attribute values and errors from `codec`.
A list page reads at most `limit + 1` items plus LIST_BOOKKEEPING_ITEMS (`_list_items`), and
a page of events, merged from its shards, MERGE_SLACK more per shard (`storage.merge`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import TYPE_CHECKING, Any, TypeVar, cast

from webhook_service import clients
from webhook_service.domain import (
    MAX_OPEN_TESTS,
    Attempt,
    ConfigState,
    Event,
    EventState,
    Key,
    KeyState,
    ListQuery,
    Organisation,
    Overdue,
    Principal,
    Task,
    TaskState,
    WebhookConfig,
)
from webhook_service.errors import ConflictError, DependencyError, OpenTestsLimitError
from webhook_service.storage.codec import Item, dynamodb_errors, marshal, unmarshal
from webhook_service.storage.items import (
    attempt_from_item,
    attempt_item,
    config_counts_item,
    config_from_item,
    config_item,
    counts_of,
    event_from_item,
    event_item,
    key_from_item,
    key_item,
    organisation_from_item,
    organisation_item,
    task_from_item,
    task_item,
)
from webhook_service.storage.keys import (
    CONFIG_COUNTS_SK,
    INDEX_BY_OPEN,
    OPEN_SHARDS,
    ORGANISATION_SK,
    TOKEN_SK,
    count_attribute,
    id_of_created_sk,
    item_key,
    open_keys,
    open_pk,
    org_pk,
    organisation_key,
    read_partitions,
    sort_key,
    state_pk,
    token_key,
    token_pk,
)
from webhook_service.storage.merge import Chunk, merge_newest
from webhook_service.storage.planning import (
    Page,
    UnknownCursorError,
    config_total,
    date_range,
    plan,
    query_kwargs,
    strictly_below,
)
from webhook_service.storage.routing import CACHE, ROUTING_CACHE_SECONDS, watch_writes
from webhook_service.timefmt import format_datetime

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

OUTCOME_TRIES = 3  # reads of a config whose state moved while its test ran, before the outcome stands alone
BATCH_GET_TRIES = 5  # BatchGetItem calls for one read, counting the retries of unprocessed keys
BATCH_GET_BACKOFF = 0.05  # seconds before the first retry, doubled for each next: 0.75 s in all
LIST_READERS = 16  # reads of a merged list page in flight at once

T = TypeVar("T")


def _attempt_put(attempt: Attempt) -> dict[str, Any]:
    """The transaction action that stores an attempt (once: its id is new)."""
    return {"Put": {"Item": marshal(attempt_item(attempt)), "ConditionExpression": "attribute_not_exists(PK)"}}


def _same_round(resends: int) -> str:
    """The condition that an event is in round `resends` (`:round`): items written before
    resends existed have no `resends` and are in round 0."""
    return "(resends = :round OR attribute_not_exists(resends))" if resends == 0 else "resends = :round"


class Store:
    """Reads and writes the service's items. Give it a client, or it makes one on first use.

    Open test tasks are counted on the organisation's item (`open_tests`): every write that
    creates a counted task adds one, refused at `open_tests_cap`, and every write that ends
    one takes one away, each in the same transaction as the task's own write. A task ends
    once (its end is conditional on it being open), so the count stays exact."""

    def __init__(
        self,
        table_name: str,
        client: DynamoDBClient | None = None,
        open_tests_cap: int = MAX_OPEN_TESTS,
        routing_cache_seconds: float = ROUTING_CACHE_SECONDS,
    ) -> None:
        self.table_name = table_name
        self._client = client
        self.open_tests_cap = open_tests_cap
        self.routing_cache_seconds = routing_cache_seconds
        self._readers: ThreadPoolExecutor | None = None
        if client is not None:
            watch_writes(client)

    @property
    def client(self) -> DynamoDBClient:
        if self._client is None:
            self._client = cast("DynamoDBClient", clients.client("dynamodb"))
            watch_writes(self._client)
        return self._client

    def _routing_items(self, keys: list[Item], also: list[Item]) -> dict[tuple[str, str], Item]:
        """Routing items (`keys`: organisation, key, config items), from the routing cache
        when it holds them, and the items of `also` (never cached), in one request."""
        found: dict[tuple[str, str], Item] = {}
        wanted = list(also)
        for key in keys:
            kept = CACHE.get(self.table_name, key, self.routing_cache_seconds)
            if kept is None:
                wanted.append(key)
            else:
                found[(key["PK"], key["SK"])] = kept
        if wanted:
            read = self._batch_get(wanted)
            found.update(read)
            if self.routing_cache_seconds > 0:
                for key in keys:
                    item = read.get((key["PK"], key["SK"]))
                    if item is not None:  # what is missing is read again: it may be made any moment
                        CACHE.keep(self.table_name, item)
        return found

    # -- generic ---------------------------------------------------------------------------

    def _get(self, pk: str, sk: str) -> Item | None:
        with dynamodb_errors():
            response = self.client.get_item(
                TableName=self.table_name, Key=marshal({"PK": pk, "SK": sk}), ConsistentRead=True
            )
        raw = response.get("Item")
        return unmarshal(raw) if raw else None

    def _transact(self, actions: list[dict[str, Any]]) -> None:
        for action in actions:
            next(iter(action.values()))["TableName"] = self.table_name
        with dynamodb_errors():
            self.client.transact_write_items(TransactItems=actions)  # type: ignore[arg-type]

    def _open_tests(self, organisation: str, change: int, below: int | None = None) -> dict[str, Any]:
        """The transaction action that counts a test task into (+1, refused unless the count
        is below `below`, by default the cap) or out of (-1) its organisation's open tests."""
        key = marshal(organisation_key(organisation))
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
        found = self.get_organisation(organisation)
        return found.open_tests if found else 0

    def _put(self, item: Item, condition: str, names: dict[str, str] | None = None, values: Item | None = None) -> None:
        kwargs: dict[str, Any] = {"TableName": self.table_name, "Item": marshal(item), "ConditionExpression": condition}
        if names:
            kwargs["ExpressionAttributeNames"] = names
        if values:
            kwargs["ExpressionAttributeValues"] = marshal(values)
        with dynamodb_errors():
            self.client.put_item(**kwargs)

    # -- organisations and keys ----------------------------------------------------------

    def create_organisation(self, organisation: str, name: str, now: dt.datetime) -> Organisation:
        """A new organisation, with its config counts kept from the start."""
        created = Organisation(id=organisation, name=name, date_created=now)
        item = organisation_item(created)
        counts = config_counts_item(organisation, {})
        self._transact(
            [
                {"Put": {"Item": marshal(item), "ConditionExpression": "attribute_not_exists(PK)"}},
                {"Put": {"Item": marshal(counts), "ConditionExpression": "attribute_not_exists(PK)"}},
            ]
        )
        return created

    def _config_count(self, organisation: str, before: str | None, after: str) -> list[dict[str, Any]]:
        """The transaction action (none when the state does not change) that moves one config
        from state `before` (None: a new config) to `after` in its organisation's counts."""
        if before == after:
            return []
        names = {"#a": count_attribute(after)}
        values: Item = {":one": 1}
        expression = "ADD #a :one"
        if before is not None:
            names["#b"] = count_attribute(before)
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
        return counts_of(item)

    def get_organisation(self, organisation: str) -> Organisation | None:
        item = self._get(org_pk(organisation), ORGANISATION_SK)
        return organisation_from_item(item) if item else None

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
        self._transact(
            [
                {
                    "ConditionCheck": {
                        "Key": marshal(organisation_key(organisation)),
                        "ConditionExpression": "attribute_exists(PK)",
                    }
                },
                {"Put": {"Item": marshal(key_item(key)), "ConditionExpression": "attribute_not_exists(PK)"}},
                {"Put": {"Item": marshal(token), "ConditionExpression": "attribute_not_exists(PK)"}},
            ]
        )
        return key

    def get_key(self, organisation: str, key_id: str) -> Key | None:
        item = self._get(org_pk(organisation), sort_key("key", key_id))
        return key_from_item(item) if item else None

    def deactivate_key(self, organisation: str, key_id: str) -> Key | None:
        """Deactivate a key and its token record together; None when the organisation has no
        such key."""
        key = self.get_key(organisation, key_id)
        if key is None:
            return None
        deactivated = marshal({":d": KeyState.DEACTIVATED.value})
        self._transact(
            [
                {
                    "Update": {
                        "Key": marshal(item_key(organisation, "key", key_id)),
                        "UpdateExpression": "SET #s = :d",
                        "ExpressionAttributeNames": {"#s": "state"},
                        "ExpressionAttributeValues": deactivated,
                    }
                },
                {
                    "Update": {
                        "Key": marshal(token_key(key.token_hash)),
                        "UpdateExpression": "SET #s = :d",
                        "ExpressionAttributeNames": {"#s": "state"},
                        "ExpressionAttributeValues": deactivated,
                    }
                },
            ]
        )
        return replace(key, state=KeyState.DEACTIVATED)

    def find_principal(self, token_hash: str) -> Principal | None:
        item = self._get(token_pk(token_hash), TOKEN_SK)
        if item is None:
            return None
        return Principal(key_id=item["key_id"], organisation=item["organisation"], state=item["state"])

    # -- configs and tasks ------------------------------------------------------------------

    def get_config(self, organisation: str, config_id: str) -> WebhookConfig | None:
        item = self._get(org_pk(organisation), sort_key("webhook_config", config_id))
        return config_from_item(item) if item else None

    def _batch_get(self, keys: list[Item]) -> dict[tuple[str, str], Item]:
        """Items by (PK, SK), in strongly consistent BatchGetItem calls (one, unless DynamoDB
        leaves keys unprocessed under throttling: those are retried after a pause)."""
        request: dict[str, Any] = {self.table_name: {"Keys": [marshal(k) for k in keys], "ConsistentRead": True}}
        found: dict[tuple[str, str], Item] = {}
        for attempt in range(BATCH_GET_TRIES):
            if attempt:
                time.sleep(BATCH_GET_BACKOFF * 2 ** (attempt - 1))
            with dynamodb_errors():
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
        found = self._batch_get(
            [{"PK": pk, "SK": sort_key("task", task_id)}, {"PK": pk, "SK": sort_key("webhook_config", config_id)}]
        )
        task = found.get((pk, sort_key("task", task_id)))
        config = found.get((pk, sort_key("webhook_config", config_id)))
        return (task_from_item(task) if task else None), (config_from_item(config) if config else None)

    def get_routing(
        self, organisation: str, key_id: str | None, event_id: str | None = None
    ) -> tuple[Event | None, Key | None, Organisation | None]:
        """What routes an event, in one strongly consistent round trip at most: the event
        itself (when `event_id` is given, read each time), its key (when it has one) and its
        organisation (both through the routing cache, `storage.routing`)."""
        pk = org_pk(organisation)
        keys = [organisation_key(organisation)]
        if key_id is not None:
            keys.append(item_key(organisation, "key", key_id))
        event_key = item_key(organisation, "event", event_id) if event_id is not None else None
        found = self._routing_items(keys, [event_key] if event_key is not None else [])
        event = found.get((event_key["PK"], event_key["SK"])) if event_key is not None else None
        key = found.get((pk, sort_key("key", key_id))) if key_id is not None else None
        organisation_found = found.get((pk, ORGANISATION_SK))
        return (
            event_from_item(event) if event else None,
            key_from_item(key) if key else None,
            organisation_from_item(organisation_found) if organisation_found else None,
        )

    def get_routed_config(self, organisation: str, config_id: str) -> WebhookConfig | None:
        """The config an event is routed to, through the routing cache (`storage.routing`):
        up to ROUTING_CACHE_SECONDS old when another process changed it."""
        key = item_key(organisation, "webhook_config", config_id)
        item = self._routing_items([key], []).get((key["PK"], key["SK"]))
        return config_from_item(item) if item else None

    def get_task(self, organisation: str, task_id: str) -> Task | None:
        item = self._get(org_pk(organisation), sort_key("task", task_id))
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
        stored = self._get(org_pk(config.organisation), sort_key("webhook_config", config.id))
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
        values: Item = {":v": config.version, ":d": ConfigState.DEACTIVATED.value, ":task": task.id}
        if config.open_test is None:
            condition += "attribute_not_exists(open_test)"
        else:
            condition += "open_test = :seen"
            values[":seen"] = config.open_test
        self._transact_counting(
            [
                {
                    "Update": {
                        "Key": marshal(item_key(config.organisation, "webhook_config", config.id)),
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
        self._end_task(task, "#s = :p", {":p": TaskState.PENDING.value})

    # -- delivery ------------------------------------------------------------------------

    def get_event(self, organisation: str, event_id: str) -> Event | None:
        key = item_key(organisation, "event", event_id)
        item = self._get(key["PK"], key["SK"])
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
        try:
            with dynamodb_errors():
                response = self.client.update_item(
                    TableName=self.table_name,
                    Key=marshal(item_key(task.organisation, "task", task.id)),
                    UpdateExpression=(
                        "SET #s = :processing, StatePK = :spk, date_started = if_not_exists(date_started, :now),"
                        " event_id = if_not_exists(event_id, :event)"
                    ),
                    ConditionExpression="#s IN (:pending, :processing)",
                    ExpressionAttributeNames={"#s": "state"},
                    ExpressionAttributeValues=marshal(
                        {
                            ":processing": TaskState.PROCESSING.value,
                            ":pending": TaskState.PENDING.value,
                            ":spk": state_pk(task.organisation, "task", TaskState.PROCESSING),
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
                {":pending": TaskState.PENDING.value, ":processing": TaskState.PROCESSING.value},
            )
        except ConflictError:
            return False
        return True

    def record_test_outcome(
        self, config: WebhookConfig, new_state: ConfigState, task: Task, event: Event, attempt: Attempt | None = None
    ) -> str:
        """Write a test's end: the task, its event, its attempt and the config's new state,
        all at once.

        The config is written only if it is still at the task's version and not deactivated;
        otherwise the task and event are written alone. Returns `applied`, `stale` (the
        config had moved on) or `duplicate` (the task had already ended elsewhere). The
        config's write is conditional on the state it had when read (so that the counts
        move with it): if only its state changed since (another test of the same version
        ended), it is read again and the write tried again."""
        task_put = {
            "Put": {
                "Item": marshal(task_item(task)),
                "ConditionExpression": "#s = :processing",
                "ExpressionAttributeNames": {"#s": "state"},
                "ExpressionAttributeValues": marshal({":processing": TaskState.PROCESSING.value}),
            }
        }
        event_put = {"Put": {"Item": marshal(event_item(event))}}
        counting = [self._open_tests(task.organisation, -1)] if task.counted else []
        if attempt is not None:
            counting.append(_attempt_put(attempt))
        seen: WebhookConfig | None = config
        for _ in range(OUTCOME_TRIES):
            if seen is None or seen.version != task.target_version or seen.state == ConfigState.DEACTIVATED:
                break
            config_update = {
                "Update": {
                    "Key": marshal(item_key(config.organisation, "webhook_config", config.id)),
                    "UpdateExpression": "SET #s = :state, StatePK = :spk",
                    "ConditionExpression": "version = :v AND #s = :was",
                    "ExpressionAttributeNames": {"#s": "state"},
                    "ExpressionAttributeValues": marshal(
                        {
                            ":state": new_state.value,
                            ":spk": state_pk(config.organisation, "webhook_config", new_state),
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
                            "Key": marshal(item_key(task.organisation, "task", task.id)),
                            "UpdateExpression": "SET cut_attempts = if_not_exists(cut_attempts, :zero) + :one",
                            "ConditionExpression": "#s = :processing",
                            "ExpressionAttributeNames": {"#s": "state"},
                            "ExpressionAttributeValues": marshal(
                                {":processing": TaskState.PROCESSING.value, ":zero": 0, ":one": 1}
                            ),
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
            with dynamodb_errors():
                response = self.client.update_item(
                    TableName=self.table_name,
                    Key=marshal(item_key(event.organisation, "event", event.id)),
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
                            ":pending": EventState.PENDING,
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
            "Key": marshal(item_key(event.organisation, "event", event.id)),
            "UpdateExpression": "SET attempts = :previous REMOVE claimed_until",
            "ConditionExpression": "#s = :pending AND attempts = :attempt AND claimed_until = :until",
            "ExpressionAttributeNames": {"#s": "state"},
            "ExpressionAttributeValues": marshal(
                {
                    ":previous": event.attempts - 1,
                    ":attempt": event.attempts,
                    ":pending": EventState.PENDING,
                    ":until": event.claimed_until,
                }
            ),
        }
        try:
            if attempt is not None:
                self._transact([{"Update": update}, _attempt_put(attempt)])
            else:
                with dynamodb_errors():
                    self.client.update_item(TableName=self.table_name, **update)
        except ConflictError:
            return False
        return True

    def save_event(self, event: Event, attempt: Attempt | None = None) -> bool:
        """Write an event's new state while it is pending at the same attempt (and round);
        False if it has moved on (ended, a later attempt claimed, or resent). `attempt`, the
        request whose outcome this is, is stored in the same write."""
        condition = f"#s = :pending AND attempts = :attempts AND {_same_round(event.resends)}"
        values = {":pending": EventState.PENDING, ":attempts": event.attempts, ":round": event.resends}
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
                values={":pending": EventState.PENDING, ":zero": 0, ":round": reopened.resends},
            )
        except ConflictError:
            return False
        return True

    def rotate_secret(self, seen: WebhookConfig, rotated: WebhookConfig) -> bool:
        """Store a rotated secret if the config still has the secret it was read with and is
        not deactivated; False otherwise (rotated or deactivated meanwhile). Nothing else of
        the config changes: not its state, not its version."""
        values: Item = {":new": rotated.secret, ":seen": seen.secret, ":deactivated": ConfigState.DEACTIVATED.value}
        if rotated.previous_secret is not None and rotated.previous_secret_expires is not None:
            expression = "SET secret = :new, previous_secret = :previous, previous_secret_expires = :expires"
            values[":previous"] = rotated.previous_secret
            values[":expires"] = format_datetime(rotated.previous_secret_expires)
        else:
            expression = "SET secret = :new REMOVE previous_secret, previous_secret_expires"
        try:
            with dynamodb_errors():
                self.client.update_item(
                    TableName=self.table_name,
                    Key=marshal(item_key(seen.organisation, "webhook_config", seen.id)),
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
        with contextlib.suppress(ConflictError), dynamodb_errors():
            self.client.update_item(
                TableName=self.table_name,
                Key=marshal(item_key(config.organisation, "webhook_config", config.id)),
                UpdateExpression="SET slow_until = :until",
                ConditionExpression="attribute_exists(PK)",
                ExpressionAttributeValues=marshal({":until": until}),
            )

    def clear_slow(self, config: WebhookConfig) -> None:
        """Send the config's jobs to the fast lanes again."""
        with contextlib.suppress(ConflictError), dynamodb_errors():
            self.client.update_item(
                TableName=self.table_name,
                Key=marshal(item_key(config.organisation, "webhook_config", config.id)),
                UpdateExpression="REMOVE slow_until",
                ConditionExpression="attribute_exists(slow_until)",
            )

    def invalidate_config(self, config: WebhookConfig) -> bool:
        """Make a `valid` config `invalid` (its receiver answered 410), unless it changed;
        its organisation's config counts move in the same transaction."""
        update = {
            "Update": {
                "Key": marshal(item_key(config.organisation, "webhook_config", config.id)),
                "UpdateExpression": "SET #s = :invalid, StatePK = :spk",
                "ConditionExpression": "version = :v AND #s = :valid",
                "ExpressionAttributeNames": {"#s": "state"},
                "ExpressionAttributeValues": marshal(
                    {
                        ":invalid": ConfigState.INVALID.value,
                        ":valid": ConfigState.VALID.value,
                        ":v": config.version,
                        ":spk": state_pk(config.organisation, "webhook_config", ConfigState.INVALID),
                    }
                ),
            }
        }
        try:
            self._transact([update, *self._config_count(config.organisation, ConfigState.VALID, ConfigState.INVALID)])
        except ConflictError:
            return False
        return True

    # -- the overdue sweep -----------------------------------------------------------------

    def overdue(self, due_before: dt.datetime, limit: int) -> list[Overdue]:
        """Tasks and events that have not ended and were due before `due_before`, at most
        `limit` of each ByOpen partition, oldest first."""
        found: list[Overdue] = []
        high = format_datetime(due_before)
        for shard in range(OPEN_SHARDS):
            with dynamodb_errors():
                response = self.client.query(
                    TableName=self.table_name,
                    IndexName=INDEX_BY_OPEN,
                    KeyConditionExpression="OpenPK = :pk AND DueSK < :high",
                    ExpressionAttributeValues=marshal({":pk": open_pk(shard), ":high": high}),
                    Limit=limit,
                )
            for raw in response.get("Items", []):
                item = unmarshal(raw)
                if item.get("resource") == "task":
                    found.append(Overdue(task_from_item(item), int(item.get("sweeps", 0)), item["DueSK"]))
                elif item.get("resource") == "event":
                    found.append(Overdue(event_from_item(item), int(item.get("sweeps", 0)), item["DueSK"]))
        return found

    def mark_swept(self, overdue: Overdue, now: dt.datetime) -> bool:
        """Count one sweep of an overdue task or event and make it due again from `now`,
        unless it changed since it was read (ended, or moved on); False then."""
        work = overdue.work
        try:
            with dynamodb_errors():
                self.client.update_item(
                    TableName=self.table_name,
                    Key=marshal(item_key(work.organisation, overdue.kind, work.id)),
                    UpdateExpression="SET sweeps = if_not_exists(sweeps, :zero) + :one, DueSK = :due",
                    ConditionExpression="DueSK = :read",
                    ExpressionAttributeValues=marshal(
                        {":zero": 0, ":one": 1, ":due": open_keys(work.id, now)["DueSK"], ":read": overdue.due}
                    ),
                )
        except ConflictError:
            return False
        return True

    # -- keys and the organisation default -------------------------------------------------

    def set_key_config(self, organisation: str, key_id: str, config_id: str | None) -> Key | None:
        """Point a key at a config (or clear it), and return the key as stored after. The
        config must exist, in the same organisation, and not be deactivated: checked in the
        same transaction."""
        item = self._set_config_reference(
            item_key(organisation, "key", key_id), "webhook_config", organisation, config_id
        )
        return key_from_item(item) if item else None

    def set_organisation_default(self, organisation: str, config_id: str | None) -> Organisation | None:
        """Point the organisation's default at a config (or clear it), as set_key_config does
        a key, and return the organisation as stored after."""
        item = self._set_config_reference(
            organisation_key(organisation), "webhook_config_default", organisation, config_id
        )
        return organisation_from_item(item) if item else None

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
                        "Key": marshal(item_key(organisation, "webhook_config", config_id)),
                        "ConditionExpression": "attribute_exists(PK) AND #s <> :d",
                        "ExpressionAttributeNames": {"#s": "state"},
                        "ExpressionAttributeValues": marshal({":d": ConfigState.DEACTIVATED.value}),
                    }
                }
            )
        self._transact(actions)
        return self._get(key["PK"], key["SK"])

    # -- lists ---------------------------------------------------------------------------

    def list_configs(self, organisation: str, query: ListQuery) -> Page[WebhookConfig]:
        """A page of the organisation's configs (see `_list_items`)."""
        return self._list_items(organisation, "webhook_config", query).map(config_from_item)

    def list_tasks(self, organisation: str, query: ListQuery) -> Page[Task]:
        """A page of the organisation's tasks (see `_list_items`)."""
        return self._list_items(organisation, "task", query).map(task_from_item)

    def list_events(self, organisation: str, query: ListQuery) -> Page[Event]:
        """A page of the organisation's events (see `_list_items`)."""
        return self._list_items(organisation, "event", query).map(event_from_item)

    def list_attempts(self, organisation: str, query: ListQuery) -> Page[Attempt]:
        """A page of one event's attempts, named by the query's `event` filter (see `_list_items`)."""
        return self._list_items(organisation, "attempt", query).map(attempt_from_item)

    def _list_items(self, organisation: str, resource: str, query: ListQuery) -> Page[Item]:
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
        index, partition, filters = plan(organisation, resource, query.filters)
        low, high = date_range(query.date_bounds)
        pk = org_pk(organisation)
        counted = resource == "webhook_config" and not query.date_bounds
        cursors = {name: cid for name, cid in (("after_id", query.after_id), ("before_id", query.before_id)) if cid}
        counts: dict[str, int] | None = None
        if cursors:  # the cursors' items, and the counts the total will need, in one request
            # One key per item: both cursors may name the same one (BatchGetItem refuses duplicates).
            keys = [item_key(organisation, resource, cid) for cid in dict.fromkeys(cursors.values())]
            if counted:
                keys.append({"PK": pk, "SK": CONFIG_COUNTS_SK})
            found = self._batch_get(keys)
            counts = counts_of(found.get((pk, CONFIG_COUNTS_SK)))
            for name, cursor_id in cursors.items():
                cursor_key = item_key(organisation, resource, cursor_id)
                cursor = found.get((cursor_key["PK"], cursor_key["SK"]))
                if cursor is None or (resource == "attempt" and cursor.get("event") != query.filters.get("event")):
                    raise UnknownCursorError(name)
                if name == "after_id":  # older than the cursor
                    bound = strictly_below(cursor["CreatedSK"])
                    high = min(high, bound) if high else bound
                else:  # newer than the cursor
                    bound = cursor["CreatedSK"] + " "
                    low = max(low, bound) if low else bound
        if low is not None and high is not None and low > high:
            items: list[Item] = []
            last_read: str | None = None
        else:
            partitions = read_partitions(resource, partition)
            if len(partitions) == 1:
                items, last_read = self._query(index, partition, low, high, filters, window=query.limit + 1)
            else:
                items, last_read = self._merged_query(index, partitions, low, high, filters, need=query.limit + 1)
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
                return Page(items, has_more, config_total(counts, query.filters), next_after_id=next_after_id)
            # An organisation made before counts were kept: count with a Query (exact, not bounded).
            total = self._count(index, partition, *date_range(query.date_bounds), filters)
            return Page(items, has_more, total, next_after_id=next_after_id)
        return Page(items, has_more, matched, total_count_capped=True, next_after_id=next_after_id)

    def _query(
        self, index: str, partition: str, low: str | None, high: str | None, filters: dict[str, str], window: int
    ) -> tuple[list[Item], str | None]:
        """The matches among the `window` newest items of the range (DynamoDB's `Limit`
        counts the items it reads, before the filter), and, when items beyond the window
        may remain, the id of the last one read (None when the range ended within it)."""
        kwargs = query_kwargs(self.table_name, index, partition, low, high, filters)
        items: list[Item] = []
        read = 0
        while read < window:
            kwargs["Limit"] = window - read
            with dynamodb_errors():
                response = self.client.query(**kwargs)
            read += int(response.get("ScannedCount", 0))
            items.extend(unmarshal(raw) for raw in response.get("Items", []))
            if "LastEvaluatedKey" not in response:
                return items, None
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        if not filters:
            return items, None  # the window's last item tells `has_more`
        return items, id_of_created_sk(str(unmarshal(kwargs["ExclusiveStartKey"])["CreatedSK"]))

    def _merged_query(
        self, index: str, partitions: list[str], low: str | None, high: str | None, filters: dict[str, str], need: int
    ) -> tuple[list[Item], str | None]:
        """`_query` over the shards of one index partition, merged (`storage.merge`): the
        `need` newest matches, or, when the read budget ran out first, fewer and the id of the
        item where the next page starts."""
        requests = [query_kwargs(self.table_name, index, p, low, high, filters) for p in partitions]

        def fetch(shard: int, resume: Any, size: int) -> Chunk:
            kwargs = {**requests[shard], "Limit": size}
            if resume is not None:
                kwargs["ExclusiveStartKey"] = resume
            with dynamodb_errors():
                response = self.client.query(**kwargs)
            next_key = response.get("LastEvaluatedKey")
            return Chunk(
                items=[unmarshal(raw) for raw in response.get("Items", [])],
                read=int(response.get("ScannedCount", 0)),
                last=str(unmarshal(next_key)["CreatedSK"]) if next_key else None,
                resume=next_key,
            )

        items, stop = merge_newest(len(partitions), need, fetch, self._run_together)
        return items, (id_of_created_sk(stop) if stop is not None else None)

    def _run_together(self, calls: Sequence[Callable[[], T]]) -> list[T]:
        """Run independent reads at once (a merge's round), on a pool kept for the process."""
        if len(calls) <= 1:
            return [call() for call in calls]
        if self._readers is None:
            self._readers = ThreadPoolExecutor(max_workers=LIST_READERS, thread_name_prefix="list-read")
        return list(self._readers.map(lambda call: call(), calls))

    def _count(self, index: str, partition: str, low: str | None, high: str | None, filters: dict[str, str]) -> int:
        if low is not None and high is not None and low > high:
            return 0
        kwargs = query_kwargs(self.table_name, index, partition, low, high, filters)
        kwargs["Select"] = "COUNT"
        total = 0
        while True:
            with dynamodb_errors():
                response = self.client.query(**kwargs)
            total += response.get("Count", 0)
            if "LastEvaluatedKey" not in response:
                return total
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]
