"""Answers that keep their promises when requests come at once (docs/design.md §13, §14):
of resends of one event made at once exactly one is accepted, and of rotations of one config
made at once exactly one answers 200, so every 200's secret signs for the overlap it promised.

"At once" is when the requests arrived: a request that arrived before another's write
landed (or within a second after it) loses, whichever order the two then read and write in.
The tests replay the orders that broke the promises: the second request reads only after
the first has finished (its event even delivered again), or after its own write lost."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from tests.unit.support import FakeClock, FakeQueue, FakeServices, ThreeLaneDeliverer, three_lane_deliverer
from webhook_service.domain.configs import ConfigState
from webhook_service.domain.limits import RATE_RESENDS, Rate
from webhook_service.domain.tenants import Principal
from webhook_service.errors import InvalidStateError
from webhook_service.events import publish
from webhook_service.jobs.dispatch import handle_job
from webhook_service.lanes import Lane
from webhook_service.service import configs as config_cases
from webhook_service.service import events as event_cases
from webhook_service.service import tenants as tenant_cases
from webhook_service.signing import signature_headers, verify_standard
from webhook_service.storage.store import Store
from webhook_service.wiring import use_deliverer

URL = "https://receiver.example/hooks/"


@pytest.fixture
def lanes(store: Store, clock: FakeClock, services: FakeServices, queue: FakeQueue) -> Iterator[ThreeLaneDeliverer]:
    made = three_lane_deliverer(store, clock)
    services.test_queue = queue
    services.queue = made.queue
    use_deliverer(made)
    yield made
    use_deliverer(None)


def delivered_event(services: FakeServices, caller: Principal, store: Store, lanes: ThreeLaneDeliverer) -> str:
    config = config_cases.create_config(services, caller, {"url": URL})
    stored = store.configs.get(caller.organisation, config["id"])
    assert stored is not None
    store.configs.replace(replace(stored, state=ConfigState.VALID, open_test=None), stored.version, None)
    tenant_cases.update_organisation(services, caller, {"webhook_config_default": config["id"]})
    event_id = publish(caller.organisation, "session", "completed", {}, store=store, queue=lanes.queue).id
    deliver(lanes)
    return event_id


def deliver(lanes: ThreeLaneDeliverer) -> None:
    """Run the events lane's jobs; the fast lane's sender (a FakeSender) answers 200."""
    while lanes.queue.jobs:
        handle_job(lanes, json.dumps(lanes.queue.jobs.pop(0)), Lane.EVENTS)


def test_a_resend_that_arrived_with_another_is_refused_after_that_one_was_delivered(
    services: FakeServices, caller: Principal, store: Store, lanes: ThreeLaneDeliverer
) -> None:
    event_id = delivered_event(services, caller, store, lanes)
    arrived = services.clock()  # both requests arrive now

    first = event_cases.resend_event(services, caller, event_id, {}, arrived=arrived)
    deliver(lanes)  # the first one's round ends before the second request even reads the event
    assert event_cases.get_event(services, caller, event_id)["state"] == "delivered"
    with pytest.raises(InvalidStateError) as refused:
        event_cases.resend_event(services, caller, event_id, {}, arrived=arrived)

    assert first["state"] == "pending"
    assert refused.value.params == {"event": "resent by another request at once"}
    # The refused request sent its round's job before its write (job first): a copy of the
    # winner's, which finds its attempt made and sends nothing.
    assert len(lanes.queue.jobs) == 1
    deliver(lanes)
    assert len(lanes.fast_sender.sent) == 2  # the first round's, and one for the two requests


def test_twenty_resends_at_once_in_any_order_are_accepted_once(
    services: FakeServices, caller: Principal, store: Store, lanes: ThreeLaneDeliverer
) -> None:
    store.limits.set_rate(caller.organisation, RATE_RESENDS, Rate(per_second=100, burst=100))
    event_id = delivered_event(services, caller, store, lanes)
    arrived = services.clock()
    answers: list[str] = []

    for _ in range(20):
        try:
            answers.append(event_cases.resend_event(services, caller, event_id, {}, arrived=arrived)["state"])
        except InvalidStateError:
            answers.append("refused")
        deliver(lanes)

    assert answers.count("pending") == 1
    assert len(lanes.fast_sender.sent) == 2  # the first round's, and one for the twenty


def test_a_resend_that_arrived_a_second_after_the_last_one_landed_is_accepted(
    services: FakeServices, caller: Principal, store: Store, lanes: ThreeLaneDeliverer, clock: FakeClock
) -> None:
    event_id = delivered_event(services, caller, store, lanes)
    event_cases.resend_event(services, caller, event_id, {})
    deliver(lanes)
    clock.now += dt.timedelta(seconds=1, milliseconds=50)

    again = event_cases.resend_event(services, caller, event_id, {}, arrived=clock.now)

    assert again["state"] == "pending"


# -- rotation --------------------------------------------------------------------------------


def sign_with(secret: str) -> tuple[bytes, dict[str, str]]:
    body = b'{"id":"e"}'
    return body, signature_headers(secret, "e", body)


def signs(config: dict[str, Any], secret: str, store: Store) -> bool:
    """Whether deliveries of the config, as stored now, verify with `secret`."""
    stored = store.configs.get(config["organisation"], config["id"])
    assert stored is not None
    signing = [stored.secret] + ([stored.previous_secret] if stored.previous_secret else [])
    body = b'{"id":"e"}'
    for key in signing:
        try:
            verify_standard(body, signature_headers(key, "e", body), secret)
        except Exception:  # noqa: S112 - this key signs with another secret
            continue
        return True
    return False


def test_rotations_at_once_give_one_200_whose_secret_keeps_signing(
    services: FakeServices, caller: Principal, store: Store
) -> None:
    config = config_cases.create_config(services, caller, {"url": URL})
    arrived = services.clock()
    answers: list[Any] = []

    for _ in range(4):  # each reads after the ones before have written
        try:
            answers.append(
                config_cases.rotate_secret(services, caller, config["id"], {"overlap_seconds": 86400}, arrived=arrived)
            )
        except InvalidStateError as exc:
            answers.append(exc.params)

    rotated = [a for a in answers if "id" in a]
    assert len(rotated) == 1
    assert answers.count({"secret": "rotated by another request at once"}) == 3
    assert signs(config, rotated[0]["secret"], store)
    assert signs(config, config["secret"], store)  # the overlap it promised: the old secret signs too


def test_a_rotation_that_lost_its_write_is_refused_not_rotated_again(
    services: FakeServices, caller: Principal, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = config_cases.create_config(services, caller, {"url": URL})
    arrived = services.clock()
    first: dict[str, Any] = {}
    rotate = store.configs.rotate_secret

    def another_rotation_lands_first(seen: Any, rotated: Any, rotated_before: dt.datetime) -> bool:
        if not first:  # the other request's whole rotation happens between this one's read and write
            monkeypatch.setattr(store.configs, "rotate_secret", rotate)
            first.update(config_cases.rotate_secret(services, caller, config["id"], {}, arrived=arrived))
        return rotate(seen, rotated, rotated_before)

    monkeypatch.setattr(store.configs, "rotate_secret", another_rotation_lands_first)
    with pytest.raises(InvalidStateError) as refused:
        config_cases.rotate_secret(services, caller, config["id"], {}, arrived=arrived)

    assert refused.value.params == {"secret": "rotated by another request at once"}
    stored = store.configs.get(caller.organisation, config["id"])
    assert stored is not None
    assert stored.secret == first["secret"]


def test_rotations_a_second_apart_each_rotate(services: FakeServices, caller: Principal, clock: FakeClock) -> None:
    config = config_cases.create_config(services, caller, {"url": URL})
    first = config_cases.rotate_secret(services, caller, config["id"], {})
    clock.now += dt.timedelta(seconds=1, milliseconds=50)

    second = config_cases.rotate_secret(services, caller, config["id"], {}, arrived=clock.now)

    assert len({config["secret"], first["secret"], second["secret"]}) == 3
