"""The process's composition root: the services the API functions use and the deliverer the
deliver function uses, each made once per process from the settings (their clients and HTTP
session outlive invocations) and replaceable by tests and the local stack (`use_*`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from webhook_service.auth import Authenticator
from webhook_service.jobqueue import JobQueue
from webhook_service.service.context import Services
from webhook_service.settings import Settings, get_settings
from webhook_service.storage.store import Store

if TYPE_CHECKING:
    from webhook_service.jobs.deliverer import Deliverer


@dataclass
class ProcessServices(Services):
    """Services on the table's own Store, as the process makes them: the local stack and the
    tests reach the store's table too."""

    store: Store


class _Made:
    """What this process made (or was given): one services, one deliverer."""

    services: ProcessServices | None = None
    deliverer: Deliverer | None = None


def _lane(settings_url: str, events_url: str) -> JobQueue | None:
    """A lane's own queue, or None when it is the events lane's."""
    return JobQueue(settings_url) if settings_url not in ("", events_url) else None


def make_services(settings: Settings) -> ProcessServices:
    store = Store(settings.table_name, routing_cache_seconds=settings.routing_cache_seconds)
    return ProcessServices(
        store=store,
        queue=JobQueue(settings.queue_url),
        authenticator=Authenticator(store.organisations, ttl=settings.key_cache_seconds),
        allow_private_targets=settings.allow_private_targets,
        test_queue=_lane(settings.test_queue_url, settings.queue_url),
        slow_queue=_lane(settings.slow_queue_url, settings.queue_url),
    )


def make_deliverer(settings: Settings) -> Deliverer:
    # Imported here: the API's functions never deliver, and the HTTP client (http.client and
    # ssl) would add about 20 ms to each of their cold starts (bench.coldstart).
    from webhook_service.jobs.deliverer import Deliverer
    from webhook_service.sender import Sender, default_ssl_context

    def sender(total_timeout: float) -> Sender:
        return Sender(
            allow_private=settings.allow_private_targets,
            connect_timeout=min(settings.delivery_connect_timeout, total_timeout),
            total_timeout=total_timeout,
            ssl_context=lambda: default_ssl_context(settings.delivery_ca_bundle),
            loopback_only=settings.delivery_loopback_only,
        )

    slow_queue = _lane(settings.slow_queue_url, settings.queue_url)
    leash = slow_queue is not None and settings.fast_lane_timeout < settings.delivery_timeout
    return Deliverer(
        store=Store(settings.table_name, routing_cache_seconds=settings.routing_cache_seconds),
        queue=JobQueue(settings.queue_url),
        test_queue=_lane(settings.test_queue_url, settings.queue_url),
        slow_queue=slow_queue,
        sender=sender(settings.delivery_timeout),
        fast_sender=sender(settings.fast_lane_timeout) if leash else None,
        fast_timeout=settings.fast_lane_timeout,
        delivery_timeout=settings.delivery_timeout,
        retry_scale=settings.retry_delay_scale,
    )


def services() -> ProcessServices:
    """The process-wide services, made on first use."""
    if _Made.services is None:
        _Made.services = make_services(get_settings())
    return _Made.services


def deliverer() -> Deliverer:
    """The process-wide deliverer, made on first use."""
    if _Made.deliverer is None:
        _Made.deliverer = make_deliverer(get_settings())
    return _Made.deliverer


def use_services(made: ProcessServices | None) -> None:
    """Replace the process-wide services (tests and the local stack); None: make anew."""
    _Made.services = made


def use_deliverer(made: Deliverer | None) -> None:
    """Replace the process-wide deliverer (tests); None: make anew."""
    _Made.deliverer = made
