"""Pacing a receiver: the deliveries to a config with a `rate_limit` are given slots spaced
so that its receiver never gets more than that many in any second (docs/design.md §19.1).

A delivery takes the next free slot of its config (one conditional write, `storage.pacing`),
then waits for it: in the invocation when it is near, else by coming back on its queue
a little before it. Waiting is not an attempt: nothing is claimed or sent before the slot.

Why the spacing is a little wider than 1/rate: a delivery sent `late` after its slot and the
one `rate` slots later would otherwise both fall in one second. With slots spaced
(1 + SPACING_SLACK) / rate apart, any second holds at most `rate` of them as long as each
is sent less than SPACING_SLACK late; one later than LATE_AT_MOST takes a new slot instead,
and the rest of the slack is for the network's jitter between us and the receiver.
"""

from __future__ import annotations

import enum
import math
import zlib
from dataclasses import dataclass

SPACING_SLACK = 0.05  # seconds of each second kept for lateness: a backlog drains at rate / 1.05
LATE_AT_MOST_US = 30_000  # a delivery this late past its slot takes a new one
WAIT_IN_INVOCATION_SECONDS = 2.0  # a slot at most this far is waited for where the job is
LONGEST_HOP_SECONDS = 900  # SQS delays a message 15 minutes at most
SHARD_RATE = 400  # slots a second one pacing item hands out at most (DynamoDB: 1,000 writes/s an item)
LEAD_AT_MOST_SECONDS = 1.0  # the furthest ahead of now a process takes a free slot


def shards(rate: int) -> int:
    """How many items a config's slots are spread over: a faster rate than one item can
    take writes for is split evenly between several, each paced at its share."""
    return max(1, math.ceil(rate / SHARD_RATE))


def interval_us(rate: int) -> int:
    """The microseconds between two slots of one of the config's items."""
    return math.ceil(shards(rate) * (1 + SPACING_SLACK) * 1_000_000 / rate)


def shard_of(delivery_id: str, rate: int) -> int:
    """The item a delivery (an event's or a test task's id) takes its slot from."""
    return zlib.crc32(delivery_id.encode("utf-8")) % shards(rate)


@dataclass(frozen=True)
class Slot:
    """A slot a delivery holds: of which config, at which rate, when (unix microseconds)."""

    config: str
    rate: int
    at_us: int

    def holds_for(self, config_id: str, rate: int | None) -> bool:
        """Whether the slot still paces that config: taken for it at its current rate."""
        return self.config == config_id and self.rate == rate

    def message(self) -> dict[str, object]:
        return {"config": self.config, "rate": self.rate, "at": self.at_us}


def slot_of(message: object) -> Slot | None:
    """The slot a job's message carries, or None (none, or not one this code wrote)."""
    if not isinstance(message, dict):
        return None
    config, rate, at = message.get("config"), message.get("rate"), message.get("at")
    if isinstance(config, str) and type(rate) is int and type(at) is int:
        return Slot(config, rate, at)
    return None


class Turn(enum.Enum):
    SEND = "send"  # the slot is now, or near enough to wait for here
    COME_BACK = "come back"  # the slot is further: the job goes back on its queue
    RETAKE = "retake"  # the slot passed too long ago: take a new one


@dataclass(frozen=True)
class Decision:
    """What to do with a job that holds a slot: send (after a short wait), come back later, or retake."""

    turn: Turn
    seconds: float = 0.0  # SEND: how long to wait first; COME_BACK: the queue's delay (whole seconds)


def decide(slot_at_us: int, now_us: int) -> Decision:
    """What a delivery holding the slot at `slot_at_us` does at `now_us`."""
    ahead = (slot_at_us - now_us) / 1_000_000
    if ahead < -LATE_AT_MOST_US / 1_000_000:
        return Decision(Turn.RETAKE)
    if ahead <= WAIT_IN_INVOCATION_SECONDS:
        return Decision(Turn.SEND, max(0.0, ahead))
    # whole seconds, so that it comes back between one and two seconds before the slot: near
    # enough to wait for there (an SQS delay is seldom early, and a little late is still in time)
    delay = min(LONGEST_HOP_SECONDS, math.ceil(ahead - WAIT_IN_INVOCATION_SECONDS))
    return Decision(Turn.COME_BACK, float(delay))


class Lead:
    """How far ahead of now a process takes a free slot: about as long as it takes from taking
    a slot to sending at it (the claim, the reads), learnt from its own sends. A slot taken
    `now` would be missed by a process slower than the lateness allowed (and taken again: a
    write more); one taken that far ahead is waited for instead. Late sends lengthen the lead
    by their lateness; each wait shortens it by a tenth of the wait."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def sent(self, late_seconds: float) -> None:
        """A send was made `late_seconds` after its slot (negative: it waited that long)."""
        if late_seconds > 0:
            self.seconds = min(LEAD_AT_MOST_SECONDS, self.seconds + late_seconds)
        else:
            self.seconds = max(0.0, self.seconds + late_seconds / 10)
