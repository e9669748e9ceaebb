"""The edges the use cases depend on, as Protocols: what queues a job, what posts a
delivery, and what finds an API key's principal. `Services` (service.py), `Deliverer`
(jobs.py), `events.publish` and the sweep take JobSender and DeliveryClient instead of the
concrete SQS queue (`jobqueue.JobQueue`) and HTTP sender (`sender.Sender`); the
Authenticator takes a PrincipalSource instead of the whole `storage.Store`. Anything with
the same methods stands in for them (the unit tests' recording fakes, the bench's counting
ones), and mypy checks the fakes against these."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from webhook_service.domain import Principal
    from webhook_service.sender import DeliveryResult


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
