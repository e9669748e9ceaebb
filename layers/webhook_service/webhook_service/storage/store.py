"""The store: the one table's repositories, made together on one table and one routing cache.

Each aggregate has a repository of its own (`organisations`, `configs`, `events`), the lists
and the sweep's queries theirs (`lists`, `overdue`), the organisations' rates theirs
(`limits`), idempotency keys' claims theirs (`idempotency`), the delivery slots of paced
configs theirs (`pacing`), recover tasks and the events they resend theirs (`recoveries`),
and `routing` reads what routes an event through the cache this store owns. Writes that
must happen together go through one unit of work (`storage.unit`), whichever repositories
stage them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from webhook_service.domain.configs import MAX_OPEN_TESTS
from webhook_service.storage.configs import Configs
from webhook_service.storage.events import Events
from webhook_service.storage.idempotency import IdempotencyClaims
from webhook_service.storage.limits import RateLimits
from webhook_service.storage.lists import Lists
from webhook_service.storage.organisations import Organisations
from webhook_service.storage.overdue import OverdueWork
from webhook_service.storage.pacing import Pacing
from webhook_service.storage.recoveries import Recoveries
from webhook_service.storage.routing import ROUTING_CACHE_SECONDS, RoutingCache, RoutingReader
from webhook_service.storage.table import Table
from webhook_service.storage.unit import UnitOfWork

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient


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
        self.lists = Lists(self.table)
        self.overdue = OverdueWork(self.table)
        self.limits = RateLimits(self.table)
        self.pacing = Pacing(self.table)
        self.recoveries = Recoveries(self.table, self.organisations)
        self.idempotency = IdempotencyClaims(self.table)
        self.routing = RoutingReader(self.table, self.table.routing)

    @property
    def table_name(self) -> str:
        return self.table.name

    def unit(self) -> UnitOfWork:
        """A unit of work on this store's table."""
        return UnitOfWork(self.table)
