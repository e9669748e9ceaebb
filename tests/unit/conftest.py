"""Unit fixtures: the template's table and queues on moto in-process, made afresh for each
test module, and per-test organisations, fakes and services on top of them."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import boto3
import pytest
from moto import mock_aws

from devstack import aws, moto_patches, template
from tests.unit.support import Backing, FakeClock, FakeDeliverer, FakeQueue, FakeSender, FakeServices
from webhook_service import admin
from webhook_service.auth import Authenticator
from webhook_service.domain.tenants import KeyState, Principal
from webhook_service.storage.store import Store
from webhook_service.wiring import use_deliverer, use_services

REGION = "us-east-1"


# The environment before any unit module was imported: a module may change it on import too.
ENVIRONMENT_AT_START = dict(os.environ)


def environment_changes(before: dict[str, str]) -> list[str]:
    after = dict(os.environ)
    changed = {name for name in before.keys() | after.keys() if before.get(name) != after.get(name)}
    changed.discard("PYTEST_CURRENT_TEST")  # pytest's own: the test running
    return sorted(changed)


@pytest.fixture(scope="package", autouse=True)
def environment_left_as_found() -> Iterator[None]:
    """The unit tier leaves the process's environment as it found it: `make test` runs the
    integration tests that start local stacks in this same process, after the unit tier, and
    those stacks inherit it (a region left set once put their tables out of the tests' reach).
    Checked when the tier ends, and after each module (which names the module)."""
    yield
    assert not environment_changes(ENVIRONMENT_AT_START), "the unit tier changed the environment"


@pytest.fixture(scope="module", autouse=True)
def module_leaves_environment(environment_left_as_found: None, aws_credentials: None) -> Iterator[None]:
    # after the tier's own credentials are set (a package fixture, else first made inside
    # whichever module runs first, which would then seem to have changed the environment)
    before = dict(os.environ)
    yield
    assert not environment_changes(before), "the module changed the environment"


@pytest.fixture(scope="package")
def aws_credentials() -> Iterator[None]:
    """Dummy credentials and no endpoint: boto3 reaches only moto. And moto's DynamoDB with
    the local stack's speed-ups (`devstack.moto_patches`), which change no answer."""
    with pytest.MonkeyPatch.context() as env:
        env.delenv("AWS_ENDPOINT_URL", raising=False)
        env.delenv("AWS_PROFILE", raising=False)
        env.setenv("AWS_DEFAULT_REGION", REGION)
        env.setenv("AWS_ACCESS_KEY_ID", "testing")
        env.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        env.setenv("AWS_SESSION_TOKEN", "testing")
        patched = moto_patches.apply()
        yield
        if patched:
            moto_patches.remove()


@pytest.fixture(scope="module")
def backing(aws_credentials: None) -> Iterator[Backing]:
    """The template's table and queues, created by CloudFormation on a moto of the module's
    own (about 0.3 s): what a module costs does not depend on what ran before it, and
    leaving the mock frees everything moto kept (it tracks every model object it made)."""
    with mock_aws():
        stack = aws.deploy(template.load_template(), {"Stage": "dev", "AllowPrivateTargets": "false"})
        yield Backing(
            table_name=stack.refs["Table"],
            queue_url=stack.refs["DeliveryQueue"],
            dynamodb=boto3.client("dynamodb", region_name=REGION),
            sqs=boto3.client("sqs", region_name=REGION),
            test_queue_url=stack.refs["TestQueue"],
            slow_queue_url=stack.refs["SlowQueue"],
        )


@pytest.fixture
def store(backing: Backing) -> Store:
    return Store(backing.table_name, backing.dynamodb)


@pytest.fixture
def organisation(store: Store) -> str:
    """A fresh organisation per test: each test's items live in a partition of their own."""
    return str(admin.create_organisation(store.organisations, "Unit test")["id"])


@pytest.fixture
def caller(organisation: str) -> Principal:
    return Principal(key_id=str(uuid.uuid4()), organisation=organisation, state=KeyState.ACTIVE)


@pytest.fixture
def queue() -> FakeQueue:
    return FakeQueue()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def services(store: Store, queue: FakeQueue, clock: FakeClock) -> FakeServices:
    return FakeServices(store=store, queue=queue, authenticator=Authenticator(store.organisations), clock=clock)


@pytest.fixture
def installed_services(services: FakeServices) -> Iterator[FakeServices]:
    """`services` as the process-wide services the handlers use, removed afterwards."""
    use_services(services)
    yield services
    use_services(None)


@pytest.fixture
def deliverer(store: Store, clock: FakeClock) -> Iterator[FakeDeliverer]:
    """The process-wide deliverer, on the module's table, with a fake sender and queue."""
    made = FakeDeliverer(store=store, sender=FakeSender(), queue=FakeQueue(), clock=clock)
    use_deliverer(made)
    yield made
    use_deliverer(None)
