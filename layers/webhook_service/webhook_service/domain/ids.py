"""Resource ids: UUID4 strings, in the one canonical form the service hands out."""

from __future__ import annotations

import secrets
import time
import uuid


def new_id() -> str:
    return str(uuid.uuid4())


def new_time_ordered_id(at_ms: int | None = None, random_bits: int | None = None) -> str:
    """A UUID whose text sorts as its creation time does (the version 7 layout: 48 bits of
    unix milliseconds, then random bits), for records listed newest first by their id:
    an event's attempts. `at_ms` and `random_bits` (74 bits) make it reproducible."""
    ms = int(time.time() * 1000) if at_ms is None else at_ms
    rand = secrets.randbits(74) if random_bits is None else random_bits & ((1 << 74) - 1)
    value = (ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | (rand >> 62) << 64 | 0b10 << 62 | (rand & ((1 << 62) - 1))
    return str(uuid.UUID(int=value))


def time_ordered_ms(value: str) -> int | None:
    """The unix milliseconds a time-ordered id (new_time_ordered_id) was made at; None for
    an id of another version (the attempts recorded before these ids)."""
    parsed = uuid.UUID(value)
    return parsed.int >> 80 if parsed.version == 7 else None


def is_uuid(value: object) -> bool:
    """True for the canonical lowercase form of a UUID, the only form this service hands out;
    False for anything else a JSON body can hold (numbers, null, lists)."""
    if not isinstance(value, str):
        return False
    try:
        return str(uuid.UUID(value)) == value
    except ValueError:
        return False
