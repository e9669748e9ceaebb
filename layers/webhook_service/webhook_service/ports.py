"""The edges the use cases depend on, as Protocols: what queues a job, what posts a
delivery, what finds an API key's principal, and what the API's use cases read and write.
`Services` (service.py), `Deliverer` (jobs.py), `events.publish` and the sweep take
JobSender and DeliveryClient instead of the concrete SQS queue (`jobqueue.JobQueue`) and
HTTP sender (`sender.Sender`); the Authenticator takes a PrincipalSource instead of the
whole `storage.Store`, and `Services` holds a Repository. Anything with the same methods
stands in for them (the unit tests' recording fakes, the bench's counting ones), and mypy
checks the fakes, and the real Store, against these."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from webhook_service.domain import (
        Attempt,
        Event,
        Key,
        ListQuery,
        Organisation,
        Principal,
        Task,
        WebhookConfig,
    )
    from webhook_service.sender import DeliveryResult
    from webhook_service.storage.planning import Page


class JobSender(Protocol):
    """Puts one job on a queue for the deliver function; returns the message id. Raises
    DependencyError when the queue refuses it."""

    def send(self, job: dict[str, Any], delay_seconds: int = 0) -> str: ...


class DeliveryClient(Protocol):
    """Posts one signed delivery and reports what came back (never raises for the
    receiver's failures: they are a DeliveryResult's error)."""

    def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> DeliveryResult: ...


class PrincipalSource(Protocol):
    """Finds the principal (key and organisation) of an API token's hash; None when no key
    has that hash."""

    def find_principal(self, token_hash: str) -> Principal | None: ...


class Repository(Protocol):
    """The reads and writes of the API's use cases (service.py), as `storage.Store` makes
    them on the one table: what `Services.store` must offer. Each method's contract
    (which writes are conditional, what a conflict raises) is documented on the Store.

    Reads return domain values (None when the organisation has no such item); lists return
    a `Page`. The writes that create a counted test task take `open_tests_below`, and
    raise OpenTestsLimitError when the organisation has that many open tests (by default
    `open_tests_cap`); the conditional ones raise ConflictError, or return False, when
    the item changed since it was read."""

    @property
    def open_tests_cap(self) -> int: ...

    # -- configs and tasks
    def get_config(self, organisation: str, config_id: str) -> WebhookConfig | None: ...
    def get_task(self, organisation: str, task_id: str) -> Task | None: ...
    def create_config(self, config: WebhookConfig, task: Task, open_tests_below: int | None = None) -> None: ...
    def replace_config(
        self, config: WebhookConfig, expected_version: int, task: Task | None, open_tests_below: int | None = None
    ) -> None: ...
    def create_test_task(self, config: WebhookConfig, task: Task, open_tests_below: int | None = None) -> None: ...
    def finish_pending_task(self, task: Task) -> None: ...
    def rotate_secret(self, seen: WebhookConfig, rotated: WebhookConfig) -> bool: ...
    def list_configs(self, organisation: str, query: ListQuery) -> Page[WebhookConfig]: ...
    def list_tasks(self, organisation: str, query: ListQuery) -> Page[Task]: ...

    # -- keys and the organisation
    def get_key(self, organisation: str, key_id: str) -> Key | None: ...
    def set_key_config(self, organisation: str, key_id: str, config_id: str | None) -> Key | None: ...
    def get_organisation(self, organisation: str) -> Organisation | None: ...
    def set_organisation_default(self, organisation: str, config_id: str | None) -> Organisation | None: ...

    # -- events and their attempts
    def get_event(self, organisation: str, event_id: str) -> Event | None: ...
    def get_routing(
        self, organisation: str, key_id: str | None, event_id: str | None = None
    ) -> tuple[Event | None, Key | None, Organisation | None]: ...
    def resend_event(self, seen: Event, reopened: Event) -> bool: ...
    def reopen_undone(self, reopened: Event, seen: Event) -> bool: ...
    def list_events(self, organisation: str, query: ListQuery) -> Page[Event]: ...
    def list_attempts(self, organisation: str, query: ListQuery) -> Page[Attempt]: ...
