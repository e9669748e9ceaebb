"""A delivery to a config with a `rate_limit` waits for its slot (domain.pacing) before
anything is claimed or sent: here when the slot is near, else by coming back on its queue
just before it. Waiting is neither an attempt nor a failure."""

from __future__ import annotations

from collections.abc import Callable

from webhook_service.domain.configs import WebhookConfig
from webhook_service.domain.pacing import Slot, Turn, decide, interval_us, shard_of
from webhook_service.jobs.deliverer import Deliverer
from webhook_service.logs import logger

ComeBack = Callable[[Slot, int], None]  # send the job back holding the slot, delayed so many seconds


def await_slot(
    deliverer: Deliverer, config: WebhookConfig, delivery_id: str, held: Slot | None, come_back: ComeBack
) -> bool:
    """Whether the delivery `delivery_id` (an event's or a test task's id) may be sent now,
    having waited here for its slot; False once its job was sent back to come back for it.
    A slot the job already holds is kept while it paces the config at its current rate."""
    rate = config.rate_limit
    if rate is None:
        return True
    slot = held if held is not None and held.holds_for(config.id, rate) else None
    for _ in range(2):  # a slot that passed too long ago is retaken once; the new one is not past
        now_us = _microseconds(deliverer)
        if slot is None:
            at = deliverer.store.pacing.take_slot(
                config.organisation, config.id, shard_of(delivery_id, rate), interval_us(rate), now_us
            )
            slot = Slot(config.id, rate, at)
        decision = decide(slot.at_us, now_us)
        if decision.turn is Turn.RETAKE:
            logger.info("pacing slot missed; taking another", extra={"config_id": config.id, "id": delivery_id})
            slot = None
            continue
        if decision.turn is Turn.COME_BACK:
            come_back(slot, int(decision.seconds))
            return False
        if decision.seconds > 0:
            deliverer.sleep(decision.seconds)
        return True
    return True  # unreachable: a slot just taken is never past


def _microseconds(deliverer: Deliverer) -> int:
    return int(deliverer.clock().timestamp() * 1_000_000)
