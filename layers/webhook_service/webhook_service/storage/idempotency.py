"""Idempotency keys' claims: one small item per key and organisation, written by one
conditional put that either takes the key or returns the claim that holds it (docs/design.md
§7.8). DynamoDB's TTL deletes a claim some time after its `expires_at`; until then the put's
condition treats it as gone."""

from __future__ import annotations

import datetime as dt

from webhook_service.domain.idempotency import IdempotencyClaim, is_expired, unix_seconds
from webhook_service.errors import ConflictError, DependencyError
from webhook_service.storage.codec import Item, marshal
from webhook_service.storage.items import parse_datetime
from webhook_service.storage.keys import idempotency_claim_key
from webhook_service.storage.table import Table
from webhook_service.timefmt import format_datetime

CLAIM_TRIES = 2  # puts of one claim: a second only if the claim that refused it expired meanwhile


def claim_item(organisation: str, idempotency_key: str, claim: IdempotencyClaim) -> Item:
    """A claim as stored: under 250 bytes, one write unit."""
    return {
        **idempotency_claim_key(organisation, idempotency_key),
        "event": claim.event_id,
        "request": claim.request,
        "date_created": format_datetime(claim.date_created),
        "expires_at": claim.expires_at,
    }


def claim_from_item(item: Item) -> IdempotencyClaim:
    date_created = parse_datetime(item["date_created"])
    assert date_created is not None  # every claim is written with one
    return IdempotencyClaim(
        event_id=item["event"], request=item["request"], date_created=date_created, expires_at=int(item["expires_at"])
    )


class IdempotencyClaims:
    """The claims of idempotency keys. The only write is `claim`, one conditional PutItem."""

    def __init__(self, table: Table) -> None:
        self.table = table

    def claim(
        self, organisation: str, idempotency_key: str, claim: IdempotencyClaim, now: dt.datetime
    ) -> IdempotencyClaim | None:
        """Take `idempotency_key` for `claim` unless a claim that has not expired at `now`
        holds it: None when taken, else the claim that holds it (returned by the refused put
        itself, `ReturnValuesOnConditionCheckFailure`, so no read follows)."""
        item = claim_item(organisation, idempotency_key, claim)
        for _ in range(CLAIM_TRIES):
            try:
                self.table.write(
                    "put_item",
                    {
                        "Item": marshal(item),
                        "ConditionExpression": "attribute_not_exists(PK) OR expires_at <= :now",
                        "ExpressionAttributeValues": {":now": {"N": str(unix_seconds(now))}},
                        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                    },
                )
            except ConflictError as refused:
                stood = refused.item if refused.item is not None else self.table.get(_key_of(item))
                if stood is not None and not is_expired(int(stood["expires_at"]), now):
                    return claim_from_item(stood)
                continue  # it expired (or TTL deleted it) between the put and the read
            return None
        raise DependencyError("put_item: an idempotency key's claim kept changing")


def _key_of(item: Item) -> Item:
    return {"PK": item["PK"], "SK": item["SK"]}
