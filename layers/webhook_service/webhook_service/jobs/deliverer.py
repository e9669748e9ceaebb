"""What the deliver jobs need, how a job ended, and what the lanes decide.

Jobs run in lanes (docs/isolation.md). In the fast lanes (`events`, `tests`) a receiver gets
`fast_timeout` (2 s) to answer; one that has not answered by then is cut, its endpoint is
marked slow (`slow_until` on the config, which every job reads anyway) and the job moves to
the slow lane, where it gets the whole delivery timeout. A job for an endpoint marked slow is
moved there before anything is sent. An attempt that ends within `fast_timeout` clears the
mark; one that takes longer renews it.
"""

from __future__ import annotations

import datetime as dt
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from webhook_service import jsontext
from webhook_service.domain.configs import SLOW_MARK_SECONDS, WebhookConfig
from webhook_service.domain.delivery import TIMEOUT, DeliveryResult
from webhook_service.domain.events import CUT_EXCERPT, UNCONFIGURED, Attempt, Event, new_attempt
from webhook_service.domain.pacing import Lead
from webhook_service.lanes import Lane, Lanes
from webhook_service.logs import logger
from webhook_service.ports import DeliveryClient, JobSender, Repositories
from webhook_service.signing import signature_headers
from webhook_service.timefmt import utcnow
from webhook_service.views import event_resource

STORAGE_RESERVE_SECONDS = 5.0  # what a job's reads and writes may take around its request


@dataclass(frozen=True)
class Outcome:
    """How a job ended, for logs and metrics: its kind (`test` or `event`), the outcome's
    name, and how long the receiver took when something was sent."""

    kind: str
    name: str
    duration_ms: int | None = None

    @property
    def failed_for_good(self) -> bool:
        return self.kind == "event" and self.name in ("failed", UNCONFIGURED)


def _random_jitter() -> float:
    return random.uniform(-1.0, 1.0)  # spreading retries, not security


@dataclass
class Deliverer:
    """What the jobs need. `queue` is the events lane (retries and hops go there);
    `test_queue` and `slow_queue` the other lanes (the events lane's queue when None). With
    no slow lane, nothing is cut or moved: every job gets `sender`, the whole timeout."""

    store: Repositories
    sender: DeliveryClient
    queue: JobSender
    clock: Callable[[], dt.datetime] = field(default=utcnow)
    jitter: Callable[[], float] = field(default=_random_jitter)
    test_queue: JobSender | None = None
    slow_queue: JobSender | None = None
    fast_sender: DeliveryClient | None = None  # the fast lanes' sender, cut at `fast_timeout`
    fast_timeout: float = 2.0
    delivery_timeout: float = 15.0  # `sender`'s
    storage_reserve: float = STORAGE_RESERVE_SECONDS
    retry_scale: float = 1.0  # the retry schedule's waits times this (local test stacks only)
    sleep: Callable[[float], None] = field(default=time.sleep)  # waiting for a paced config's slot
    pace_lead: Lead = field(default_factory=Lead)  # how far ahead this process takes a free slot

    @property
    def lanes(self) -> Lanes:
        return Lanes(events=self.queue, tests=self.test_queue, slow=self.slow_queue)

    def sender_for(self, lane: Lane) -> DeliveryClient:
        if lane is not Lane.SLOW and self.fast_sender is not None and self.slow_queue is not None:
            return self.fast_sender
        return self.sender

    def budget(self, lane: Lane) -> float:
        """The seconds a job of `lane` needs in the worst case: its request and its storage."""
        fast = self.sender_for(lane) is self.fast_sender and self.fast_sender is not None
        return (self.fast_timeout if fast else self.delivery_timeout) + self.storage_reserve

    def moves_to_slow_lane(self, lane: Lane, config: WebhookConfig) -> bool:
        """A fast-lane job for an endpoint marked slow goes to the slow lane unsent."""
        return lane is not Lane.SLOW and self.slow_queue is not None and config.is_slow(self.clock())

    def was_cut(self, lane: Lane, result: DeliveryResult) -> bool:
        """The fast lane's sender gave up before the receiver answered: not an outcome."""
        leashed = self.sender_for(lane) is self.fast_sender and self.fast_sender is not None
        return leashed and result.error == TIMEOUT and result.status_code is None

    def mark_slow(self, config: WebhookConfig) -> None:
        """Mark the endpoint slow for SLOW_MARK_SECONDS; nothing is written while the mark it
        had when the job read it has more than half its time to run (a slow endpoint's config
        item must not take a write per delivery)."""
        now = self.clock().timestamp()
        if config.slow_until is not None and config.slow_until >= now + SLOW_MARK_SECONDS / 2:
            return
        until = math.ceil(now) + SLOW_MARK_SECONDS
        self.store.configs.mark_slow(config, until)
        logger.info("endpoint marked slow", extra={"config_id": config.id, "slow_until": until})

    def note_speed(self, config: WebhookConfig, result: DeliveryResult) -> None:
        """Renew the slow mark after an attempt that took longer than the fast lanes wait;
        clear it after one that did not. Nothing is written for an endpoint that stays fast."""
        if self.slow_queue is None:
            return
        if result.duration_ms >= self.fast_timeout * 1000:
            self.mark_slow(config)
        elif config.slow_until is not None:
            self.store.configs.clear_slow(config)
            logger.info("endpoint fast again", extra={"config_id": config.id})

    def signed(self, config: WebhookConfig, message_id: str, body: bytes) -> dict[str, str]:
        """The signature headers of a delivery: with the config's secret, and with its previous
        one too while that still signs after a rotation (design.md §14)."""
        previous = config.previous_secret_at(self.clock())
        return signature_headers(config.secret, message_id, body, previous_secret=previous)

    def cut_attempt(self, event: Event, config: WebhookConfig, url: str, result: DeliveryResult) -> Attempt:
        """The attempt of a request the fast lane cut: sent, unanswered in time, not counted."""
        return new_attempt(
            event,
            config.id,
            url,
            None,
            TIMEOUT,
            result.duration_ms,
            CUT_EXCERPT.format(seconds=self.fast_timeout),
            self.clock(),
            event.expires_at,
            counted=False,
        )


def event_body(event: Event) -> bytes:
    """The event resource as compact JSON: serialized once; these bytes are signed and sent."""
    return jsontext.dumps(event_resource(event)).encode("utf-8")


def attempt_record(event: Event, config: WebhookConfig, url: str, result: DeliveryResult, now: dt.datetime) -> Attempt:
    """The attempt that records what a receiver did with one delivery."""
    return new_attempt(
        event,
        config.id,
        url,
        result.status_code,
        result.error,
        result.duration_ms,
        result.response_excerpt,
        now,
        event.expires_at,
    )
