"""Events and their attempts: an event's item from its creation to its end, the claim on
each attempt, and the attempt records (each written with the outcome it belongs to)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from webhook_service.domain.events import Attempt, Event, EventState
from webhook_service.errors import ConflictError
from webhook_service.storage import unit as writes
from webhook_service.storage.codec import Item
from webhook_service.storage.items import attempt_item, event_from_item, event_item
from webhook_service.storage.keys import item_key
from webhook_service.storage.table import Table
from webhook_service.storage.unit import UnitOfWork
from webhook_service.timefmt import format_datetime


def attempt_put(attempt: Attempt) -> dict[str, Any]:
    """The action that stores an attempt (once: its id is new)."""
    return writes.put(attempt_item(attempt), "attribute_not_exists(PK)")


def event_put(event: Event, condition: str | None = None, values: Item | None = None) -> dict[str, Any]:
    """The action that writes an event's whole item (`condition` on the stored one, its
    state named `#s`)."""
    return writes.put(event_item(event), condition, names={"#s": "state"} if condition else None, values=values)


def same_round(resends: int) -> str:
    """The condition that an event is in round `resends` (`:round`): items written before
    resends existed have no `resends` and are in round 0."""
    return "(resends = :round OR attribute_not_exists(resends))" if resends == 0 else "resends = :round"


class Events:
    """Every write of an event is conditional on what the writer read (its state, attempt
    and round), so two jobs, or a job and the sweep, never both win."""

    def __init__(self, table: Table) -> None:
        self.table = table

    def get(self, organisation: str, event_id: str) -> Event | None:
        item = self.table.get(item_key(organisation, "event", event_id))
        return event_from_item(item) if item else None

    def create(self, event: Event) -> Event:
        """Store a new event; if one with its id exists (a job run again), return that one."""
        try:
            self.table.put(event_item(event), "attribute_not_exists(PK)")
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
        holds, the attempt's outcome is not known."""
        try:
            stored = self.table.update(
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
                ReturnValues="ALL_NEW",
            )
        except ConflictError:
            return None
        return event_from_item(stored)

    def release_attempt(self, event: Event, attempt: Attempt | None = None) -> bool:
        """Give back the claim on attempt `event.attempts` that `event` holds (its
        `claimed_until`), unused: the attempt can be claimed again at once. False if the
        claim is no longer that one (taken over after its lease, or the event moved on).
        `attempt`, when given, is the request that was sent all the same (cut by the fast
        lane, not counted): stored in the same write."""
        unit = UnitOfWork(self.table).add(
            writes.update(
                item_key(event.organisation, "event", event.id),
                "SET attempts = :previous REMOVE claimed_until",
                condition="#s = :pending AND attempts = :attempt AND claimed_until = :until",
                names={"#s": "state"},
                values={
                    ":previous": event.attempts - 1,
                    ":attempt": event.attempts,
                    ":pending": EventState.PENDING.value,
                    ":until": event.claimed_until,
                },
            )
        )
        if attempt is not None:
            unit.add(attempt_put(attempt))
        try:
            unit.commit()
        except ConflictError:
            return False
        return True

    def save(self, event: Event, attempt: Attempt | None = None) -> bool:
        """Write an event's new state while it is pending at the same attempt (and round);
        False if it has moved on (ended, a later attempt claimed, or resent). `attempt`, the
        request whose outcome this is, is stored in the same write."""
        condition = f"#s = :pending AND attempts = :attempts AND {same_round(event.resends)}"
        values = {":pending": EventState.PENDING.value, ":attempts": event.attempts, ":round": event.resends}
        unit = UnitOfWork(self.table).add(event_put(event, condition, values))
        if attempt is not None:
            unit.add(attempt_put(attempt))
        try:
            unit.commit()
        except ConflictError:
            return False
        return True

    def resend(self, seen: Event, reopened: Event, resent_before: dt.datetime) -> bool:
        """Re-open an ended event (`reopened`, made from `seen` by a resend) if it is still
        as it was read, ended in the same round, and its last resend was written before
        `resent_before` (when the request arrived, less the window of requests made at
        once). Of resends made at once one wins, even when another reads the event only
        after the winner's round has ended; the others get False. The whole item is
        replaced, so nothing of the last round (a claim, the sweep's count) is left."""
        try:
            self.table.put(
                event_item(reopened),
                f"#s = :seen AND {same_round(seen.resends)}"
                " AND (attribute_not_exists(resent_at) OR resent_at < :before)",
                names={"#s": "state"},
                values={":seen": str(seen.state), ":round": seen.resends, ":before": format_datetime(resent_before)},
            )
        except ConflictError:
            return False
        return True

    def reopen_undone(self, reopened: Event, seen: Event) -> bool:
        """Put back an event re-opened by a resend whose job could not be queued, unless a
        job has already claimed an attempt of it."""
        try:
            self.table.put(
                event_item(seen),
                f"#s = :pending AND attempts = :zero AND {same_round(reopened.resends)}",
                names={"#s": "state"},
                values={":pending": EventState.PENDING.value, ":zero": 0, ":round": reopened.resends},
            )
        except ConflictError:
            return False
        return True
