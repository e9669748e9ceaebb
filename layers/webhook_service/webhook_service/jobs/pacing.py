"""A delivery to a config with a `rate_limit` holds a slot (domain.pacing) and is sent at it:
the slot is taken before anything is claimed (a far one sends the job back on its queue to
come back just before it), and waited for right before the request goes out, so that the
time the claim and the reads take does not move the send. Waiting is neither an attempt nor
a failure."""

from __future__ import annotations

from collections.abc import Callable

from webhook_service.domain.configs import WebhookConfig
from webhook_service.domain.pacing import Slot, Turn, decide, interval_us, shard_of
from webhook_service.jobs.deliverer import Deliverer
from webhook_service.logs import logger

ComeBack = Callable[[Slot, int], None]  # send the job back holding the slot, delayed so many seconds


def reserve_slot(
    deliverer: Deliverer, config: WebhookConfig, delivery_id: str, held: Slot | None, come_back: ComeBack
) -> tuple[bool, Slot | None]:
    """Before the claim: whether the delivery `delivery_id` (an event's or a test task's id)
    goes on here, and the slot it holds (None: the config is not paced). False once its job
    was sent back to come back for a slot too far to wait for here. A slot the job already
    holds is kept while it paces the config at its current rate."""
    rate = config.rate_limit
    if rate is None:
        return True, None
    slot = held if held is not None and held.holds_for(config.id, rate) else None
    for _ in range(2):  # a slot that passed too long ago is retaken once; the new one is not past
        if slot is None:
            slot = _take(deliverer, config, rate, delivery_id)
        decision = decide(slot.at_us, _microseconds(deliverer))
        if decision.turn is Turn.RETAKE:
            slot = None
            continue
        if decision.turn is Turn.COME_BACK:
            come_back(slot, int(decision.seconds))
            return False, slot
        return True, slot
    return True, slot


def keep_slot(
    deliverer: Deliverer, config: WebhookConfig, delivery_id: str, slot: Slot | None
) -> tuple[Slot, int] | None:
    """Right before the send: wait for the slot held. None when the request may go now; a
    later slot and the queue's delay (seconds) to come back for it when the one held was
    missed (the claim or the reads took longer than the lateness allowed) and the next free
    one is too far to wait for here: the caller gives back what it claimed first."""
    if slot is None:
        return None
    for _ in range(2):
        now_us = _microseconds(deliverer)
        decision = decide(slot.at_us, now_us)
        deliverer.pace_lead.sent((now_us - slot.at_us) / 1_000_000)
        if decision.turn is Turn.SEND:
            if decision.seconds > 0:
                deliverer.sleep(decision.seconds)
            return None
        if decision.turn is Turn.COME_BACK:
            return slot, int(decision.seconds)
        logger.info("pacing slot missed; taking another", extra={"config_id": config.id, "id": delivery_id})
        slot = _take(deliverer, config, slot.rate, delivery_id)
    return None  # unreachable: a slot just taken is never past


def _take(deliverer: Deliverer, config: WebhookConfig, rate: int, delivery_id: str) -> Slot:
    """The next free slot from now plus the process's lead (domain.pacing.Lead)."""
    earliest = _microseconds(deliverer) + round(deliverer.pace_lead.seconds * 1_000_000)
    at = deliverer.store.pacing.take_slot(
        config.organisation, config.id, shard_of(delivery_id, rate), interval_us(rate), earliest
    )
    return Slot(config.id, rate, at)


def _microseconds(deliverer: Deliverer) -> int:
    return int(deliverer.clock().timestamp() * 1_000_000)
