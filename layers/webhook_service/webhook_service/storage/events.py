"""Events and their attempts: an event's two items from its creation to its end (what was
published, written once; what changes, small), the claim on each attempt, and the attempt
records, each written with the outcome it belongs to in one write of the state item."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from typing import Any

from webhook_service.domain.events import Attempt, Event, EventState
from webhook_service.errors import ConflictError
from webhook_service.storage import unit as writes
from webhook_service.storage.codec import Item, marshal
from webhook_service.storage.event_items import (
    archived_attempt_item,
    attempt_record,
    attempts_of_state,
    event_data_item,
    event_from_items,
    event_state_item,
)
from webhook_service.storage.keys import event_data_key, item_key, state_pk, written_partition
from webhook_service.storage.table import Table
from webhook_service.storage.unit import UnitOfWork
from webhook_service.timefmt import format_datetime


def same_round(resends: int) -> str:
    """The condition that an event is in round `resends` (`:round`): items written before
    resends existed have no `resends` and are in round 0."""
    return "(resends = :round OR attribute_not_exists(resends))" if resends == 0 else "resends = :round"


def event_puts(event: Event, log: list[Attempt]) -> list[dict[str, Any]]:
    """The actions that write an event whole: what was published and its state (a test's
    event, written with its outcome)."""
    return [writes.put(event_data_item(event)), writes.put(event_state_item(event, log))]


class Events:
    """Every write of an event's state is conditional on what the writer read (its state,
    attempt and round), so two jobs, or a job and the sweep, never both win. What was
    published is written once, before the state that makes the event visible."""

    def __init__(self, table: Table) -> None:
        self.table = table

    def get(self, organisation: str, event_id: str) -> Event | None:
        """The event (both its items, in one strongly consistent request), or None."""
        data_key, state_key = event_data_key(organisation, event_id), item_key(organisation, "event", event_id)
        found = self.table.batch_get([data_key, state_key])
        data = found.get((data_key["PK"], data_key["SK"]))
        state = found.get((state_key["PK"], state_key["SK"]))
        return event_from_items(data, state) if data and state else None

    def current_attempts(self, organisation: str, event_id: str) -> list[Attempt]:
        """The attempts of the event's current round, oldest first (none for no event)."""
        state = self.table.get(item_key(organisation, "event", event_id))
        return attempts_of_state(state) if state else []

    def create(self, event: Event) -> Event:
        """Store a new event: what was published, then its state, which makes it visible (a
        crash between them leaves an invisible item that expires with the event's time). If
        an event with its id exists (a job run again), return that one."""
        self.table.write("put_item", {"Item": marshal(event_data_item(event))})
        try:
            self.table.put(event_state_item(event), "attribute_not_exists(PK)")
        except ConflictError:
            existing = self.get(event.organisation, event.id)
            if existing is None:
                raise
            return existing
        return event

    def claim_attempt(
        self, event: Event, attempt: int, config_id: str | None, now: int, claimed_until: int
    ) -> Event | None:
        """Claim attempt `attempt` (1-based) of a pending event, routed to `config_id`, until
        the unix time `claimed_until`: the claim is a lease. None if that attempt is claimed
        by a lease still running, was already made, or the event has ended, so a duplicated
        job never sends twice; a claim whose lease ran out (its job was lost mid-attempt) is
        taken over, so no attempt is stranded. The claim clears `next_attempt_at`: while it
        holds, the attempt's outcome is not known. One update of the state item."""
        try:
            self.table.update(
                item_key(event.organisation, "event", event.id),
                "SET attempts = :attempt, webhook_config = :config, claimed_until = :until, next_attempt_at = :none",
                ConditionExpression=(
                    "#s = :pending AND (attempts = :previous OR (attempts = :attempt AND claimed_until < :now))"
                    f" AND {same_round(event.resends)}"
                ),
                ExpressionAttributeNames={"#s": "state"},
                ExpressionAttributeValues={
                    ":attempt": attempt,
                    ":previous": attempt - 1,
                    ":pending": EventState.PENDING.value,
                    ":config": config_id,
                    ":until": claimed_until,
                    ":now": now,
                    ":none": None,
                    ":round": event.resends,
                },
            )
        except ConflictError:
            return None
        return _claimed(event, attempt, config_id, claimed_until)

    def release_attempt(self, event: Event, attempt: Attempt | None = None) -> bool:
        """Give back the claim on attempt `event.attempts` that `event` holds (its
        `claimed_until`), unused: the attempt can be claimed again at once. False if the
        claim is no longer that one (taken over after its lease, or the event moved on).
        `attempt`, when given, is the request that was sent all the same (cut by the fast
        lane, not counted): recorded in the same write."""
        expression = "SET attempts = :previous REMOVE claimed_until"
        values: Item = {
            ":previous": event.attempts - 1,
            ":attempt": event.attempts,
            ":pending": EventState.PENDING.value,
            ":until": event.claimed_until,
        }
        if attempt is not None:
            expression = (
                "SET attempts = :previous, #log = list_append(if_not_exists(#log, :none), :record) REMOVE claimed_until"
            )
            values.update({":none": [], ":record": [attempt_record(attempt)]})
        try:
            self.table.update(
                item_key(event.organisation, "event", event.id),
                expression,
                ConditionExpression="#s = :pending AND attempts = :attempt AND claimed_until = :until",
                ExpressionAttributeNames={"#s": "state", **({"#log": "log"} if attempt is not None else {})},
                ExpressionAttributeValues=values,
            )
        except ConflictError:
            return False
        return True

    def save(self, event: Event, attempt: Attempt | None = None) -> bool:
        """Write an event's new state while it is pending at the same attempt (and round);
        False if it has moved on (ended, a later attempt claimed, or resent). `attempt`, the
        request whose outcome this is, is recorded in the same write. One update of the
        state item; its index keys change only when its state does."""
        sets = [
            "#s = :state",
            "next_attempt_at = :next",
            "webhook_config = :config",
            "#error = :error",
            "date_delivered = :delivered",
        ]
        values: Item = {
            ":state": str(event.state),
            ":next": event.next_attempt_at,
            ":config": event.webhook_config,
            ":error": event.error,
            ":delivered": format_datetime(event.date_delivered) if event.date_delivered else None,
            ":pending": EventState.PENDING.value,
            ":attempts": event.attempts,
            ":round": event.resends,
        }
        names = {"#s": "state", "#error": "error"}
        if event.state != EventState.PENDING:
            sets.append("StatePK = :spk")
            values[":spk"] = written_partition("event", state_pk(event.organisation, "event", event.state), event.id)
        if attempt is not None:
            sets.append("#log = list_append(if_not_exists(#log, :none), :record)")
            names["#log"] = "log"
            values.update({":none": [], ":record": [attempt_record(attempt)]})
        try:
            self.table.update(
                item_key(event.organisation, "event", event.id),
                "SET " + ", ".join(sets) + " REMOVE claimed_until",
                ConditionExpression=f"#s = :pending AND attempts = :attempts AND {same_round(event.resends)}",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        except ConflictError:
            return False
        return True

    def resend(self, seen: Event, reopened: Event, resent_before: dt.datetime) -> bool:
        """Re-open an ended event (`reopened`, made from `seen` by a resend) if it is still
        as it was read, ended in the same round, and its last resend was written before
        `resent_before` (when the request arrived, less the window of requests made at
        once). Of resends made at once one wins, even when another reads the event only
        after the winner's round has ended; the others get False. The state item is
        replaced whole (nothing of the last round, such as a claim, is left) and the ended
        round's attempt records move to items of their own, in the same transaction."""
        ended_round = self.current_attempts(seen.organisation, seen.id)
        unit = UnitOfWork(self.table).add(
            writes.put(
                event_state_item(reopened),
                f"#s = :seen AND {same_round(seen.resends)}"
                " AND (attribute_not_exists(resent_at) OR resent_at < :before)",
                names={"#s": "state"},
                values={":seen": str(seen.state), ":round": seen.resends, ":before": format_datetime(resent_before)},
            )
        )
        for attempt in ended_round:
            unit.add(writes.put(archived_attempt_item(attempt)))
        try:
            unit.commit()
        except ConflictError:
            return False
        return True


def _claimed(event: Event, attempt: int, config_id: str | None, claimed_until: int) -> Event:
    return replace(event, attempts=attempt, webhook_config=config_id, claimed_until=claimed_until, next_attempt_at=None)
