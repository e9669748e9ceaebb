"""Resource ids: UUID4 strings, in the one canonical form the service hands out."""

from __future__ import annotations

import uuid


def new_id() -> str:
    return str(uuid.uuid4())


def is_uuid(value: object) -> bool:
    """True for the canonical lowercase form of a UUID, the only form this service hands out;
    False for anything else a JSON body can hold (numbers, null, lists)."""
    if not isinstance(value, str):
        return False
    try:
        return str(uuid.UUID(value)) == value
    except ValueError:
        return False
