"""The store: the one table's repositories, made together on one table and one routing cache.

Each aggregate has a repository of its own (`organisations`, `configs`, `events`), the lists
and the sweep's queries theirs (`lists`, `overdue`), the organisations' rates theirs
(`limits`), idempotency keys' claims theirs (`idempotency`), the delivery slots of paced
configs theirs (`pacing`), recover tasks and the events they resend theirs (`recoveries`),
and `routing` reads what routes an event through the cache this store owns. Writes that
must happen together go through one unit of work (`storage.unit`), whichever repositories
stage them. The repositories few functions use are made (and their modules imported) on
first use: every function makes a store, and what it imports is paid at each cold start."""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

from webhook_service.domain.configs import MAX_OPEN_TESTS
from webhook_service.storage.configs import Configs
from webhook_service.storage.events import Events
from webhook_service.storage.limits import RateLimits
from webhook_service.storage.organisations import Organisations
from webhook_service.storage.routing import ROUTING_CACHE_SECONDS, RoutingCache, RoutingReader
from webhook_service.storage.table import Table
from webhook_service.storage.unit import UnitOfWork

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

    from webhook_service.storage.idempotency import IdempotencyClaims
    from webhook_service.storage.lists import Lists
    from webhook_service.storage.overdue import OverdueWork
    from webhook_service.storage.pacing import Pacing
    from webhook_service.storage.recoveries import Recoveries


class Store:
    """Every repository of one table. Give it a client, or its table makes one on first use."""

    def __init__(
        self,
        table_name: str,
        client: DynamoDBClient | None = None,
        open_tests_cap: int = MAX_OPEN_TESTS,
        routing_cache_seconds: float = ROUTING_CACHE_SECONDS,
    ) -> None:
        self.table = Table(table_name, client, RoutingCache(routing_cache_seconds))
        self.organisations = Organisations(self.table, open_tests_cap)
        self.configs = Configs(self.table, self.organisations)
        self.events = Events(self.table)
        self.limits = RateLimits(self.table)
        self.routing = RoutingReader(self.table, self.table.routing)

    @cached_property
    def lists(self) -> Lists:
        from webhook_service.storage.lists import Lists

        return Lists(self.table)

    @cached_property
    def overdue(self) -> OverdueWork:
        from webhook_service.storage.overdue import OverdueWork

        return OverdueWork(self.table)

    @cached_property
    def pacing(self) -> Pacing:
        from webhook_service.storage.pacing import Pacing

        return Pacing(self.table)

    @cached_property
    def recoveries(self) -> Recoveries:
        from webhook_service.storage.recoveries import Recoveries

        return Recoveries(self.table, self.organisations)

    @cached_property
    def idempotency(self) -> IdempotencyClaims:
        from webhook_service.storage.idempotency import IdempotencyClaims

        return IdempotencyClaims(self.table)

    @property
    def table_name(self) -> str:
        return self.table.name

    def unit(self) -> UnitOfWork:
        """A unit of work on this store's table."""
        return UnitOfWork(self.table)
