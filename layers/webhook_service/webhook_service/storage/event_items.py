"""Item mappers of an event's partition (keys.py): what was published (`DATA`, written once,
its data compressed), what changes (`STATE`, small: the only item the indexes hold, with the
attempt records of the current round) and the attempt records of earlier rounds."""

from __future__ import annotations

import zlib
from typing import Any

from webhook_service import jsontext
from webhook_service.domain.events import Attempt, Event, EventState
from webhook_service.domain.ids import new_time_ordered_id, time_ordered_ms
from webhook_service.storage.codec import Item
from webhook_service.storage.items import parse_datetime
from webhook_service.storage.keys import (
    archived_attempt_key,
    created_sk,
    event_data_key,
    item_key,
    related_pk,
    state_pk,
    written_partition,
)
from webhook_service.timefmt import format_datetime

COMPRESSION_LEVEL = 6  # zlib's default: 2 KiB of JSON in about 0.1 ms, a third to a quarter of its size


def pack_data(data: dict[str, Any]) -> Item:
    """The data's JSON text (never a map: DynamoDB keeps a number's value, not its spelling,
    and deliveries show the text given), compressed when that makes it smaller."""
    text = jsontext.dumps(data).encode("utf-8")
    packed = zlib.compress(text, COMPRESSION_LEVEL)
    return {"data_z": packed} if len(packed) < len(text) else {"data": text.decode("utf-8")}


def unpack_data(item: Item) -> dict[str, Any]:
    if "data_z" in item:
        loaded: dict[str, Any] = jsontext.loads(zlib.decompress(item["data_z"]).decode("utf-8"))
        return loaded
    data = item["data"]
    return jsontext.loads(data) if isinstance(data, str) else dict(data)


def event_data_item(event: Event) -> Item:
    """What was published: written once, when the event is made. Its id and organisation
    are its key's (and its state's), so it does not repeat them: the item stays within one
    write unit for 2 KiB of typical data."""
    return {
        **event_data_key(event.organisation, event.id),
        "type": event.type,
        "action": event.action,
        **({"key": event.key} if event.key else {}),
        "date_created": format_datetime(event.date_created),
        "expires_at": event.expires_at,
        **pack_data(event.data),
    }


def event_index_keys(organisation: str, event_id: str, state: str, event_type: str) -> Item:
    """An event's list index keys, each in the event's shard of its partition."""
    return {
        "StatePK": written_partition("event", state_pk(organisation, "event", state), event_id),
        "RelatedPK": written_partition("event", related_pk(organisation, "event", event_type), event_id),
    }


def event_state_item(event: Event, log: list[Attempt] | None = None) -> Item:
    """What changes: the event's state, its index keys, and `log`, the attempt records of
    its current round (the outcome of each is written with it, in one write)."""
    created = format_datetime(event.date_created)
    item: Item = {
        **item_key(event.organisation, "event", event.id),
        **event_index_keys(event.organisation, event.id, event.state, event.type),
        "CreatedSK": created_sk(created, event.id),
        "resource": "event",
        "id": event.id,
        "organisation": event.organisation,
        "state": str(event.state),
        "attempts": event.attempts,
        "next_attempt_at": event.next_attempt_at,
        "webhook_config": event.webhook_config,
        "error": event.error,
        "date_delivered": format_datetime(event.date_delivered) if event.date_delivered else None,
        "resends": event.resends,
        "expires_at": event.expires_at,
        "log": [attempt_record(a) for a in log or []],
    }
    if event.resent_at is not None:  # only a resent event's: no bytes on every other one
        item["resent_at"] = format_datetime(event.resent_at)
    return item


def event_from_items(data: Item, state: Item) -> Event:
    """The event from its two items."""
    date_created = parse_datetime(data["date_created"])
    assert date_created is not None
    return Event(
        id=state["id"],
        organisation=state["organisation"],
        type=data["type"],
        action=data["action"],
        data=unpack_data(data),
        state=EventState(state["state"]),
        date_created=date_created,
        key=data.get("key"),
        attempts=int(state.get("attempts", 0)),
        next_attempt_at=state.get("next_attempt_at"),
        claimed_until=state.get("claimed_until"),
        webhook_config=state.get("webhook_config"),
        error=state.get("error"),
        date_delivered=parse_datetime(state.get("date_delivered")),
        resends=int(state.get("resends", 0)),
        resent_at=parse_datetime(state.get("resent_at")),
    )


def attempt_record(attempt: Attempt) -> Item:
    """An attempt as its event's state holds it (the event, organisation and expiry are its
    event's)."""
    return {
        "id": attempt.id,
        "webhook_config": attempt.webhook_config,
        "url": attempt.url,
        "status_code": attempt.status_code,
        "error": attempt.error,
        "duration_ms": attempt.duration_ms,
        "response_excerpt": attempt.response_excerpt,
        "counted": attempt.counted,
        "date_created": format_datetime(attempt.date_created),
    }


def attempt_from_record(record: Item, organisation: str, event_id: str, expires_at: int) -> Attempt:
    date_created = parse_datetime(record["date_created"])
    assert date_created is not None
    return Attempt(
        id=record["id"],
        organisation=organisation,
        event=event_id,
        webhook_config=record["webhook_config"],
        url=record["url"],
        status_code=record.get("status_code"),
        error=record.get("error"),
        duration_ms=int(record.get("duration_ms", 0)),
        response_excerpt=record.get("response_excerpt") or "",
        date_created=date_created,
        expires_at=expires_at,
        counted=bool(record.get("counted", True)),
    )


def attempts_of_state(state: Item) -> list[Attempt]:
    """The current round's attempts a state item holds, oldest first."""
    return [
        attempt_from_record(record, state["organisation"], state["id"], int(state["expires_at"]))
        for record in state.get("log") or []
    ]


def archive_sort_id(attempt: Attempt) -> str:
    """Where an attempt of an earlier round sorts among its event's: by its id when the id is
    time-ordered, else (attempts recorded before such ids) by an id made from its time and
    its own id, the same every time it is made."""
    if time_ordered_ms(attempt.id) is not None:
        return attempt.id
    at_ms = int(attempt.date_created.timestamp() * 1000)
    return new_time_ordered_id(at_ms, int(attempt.id.replace("-", ""), 16))


def archived_attempt_item(attempt: Attempt) -> Item:
    """An attempt of an earlier round, in its event's partition."""
    return {
        **archived_attempt_key(attempt.organisation, attempt.event, archive_sort_id(attempt)),
        "resource": "attempt",
        "organisation": attempt.organisation,
        "event": attempt.event,
        "expires_at": attempt.expires_at,
        **attempt_record(attempt),
    }


def attempt_from_archive(item: Item) -> Attempt:
    return attempt_from_record(item, item["organisation"], item["event"], int(item["expires_at"]))
