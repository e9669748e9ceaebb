"""What a list asks for and what a page of it holds; what the sweep finds overdue."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from webhook_service.domain.configs import Task
from webhook_service.domain.events import Event

T = TypeVar("T")
U = TypeVar("U")

DEFAULT_LIMIT = 10  # a list page's size when the caller names none


@dataclass(frozen=True)
class ListQuery:
    """A list request: equality filters, a date range, a page size and cursors."""

    filters: dict[str, str] = field(default_factory=dict)
    date_bounds: dict[str, dt.datetime] = field(default_factory=dict)
    limit: int = DEFAULT_LIMIT
    after_id: str | None = None
    before_id: str | None = None


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a list. `total_count` is exact unless `total_count_capped`: then it is
    the number of matches this page read, a lower bound (README, "Lists").
    `next_after_id` is the `after_id` of the next page when `has_more`."""

    items: list[T]
    has_more: bool
    total_count: int
    total_count_capped: bool = False
    next_after_id: str | None = None

    def map(self, convert: Callable[[T], U]) -> Page[U]:
        """The same page with each item converted (items to domain values)."""
        return Page(
            [convert(i) for i in self.items],
            self.has_more,
            self.total_count,
            self.total_count_capped,
            self.next_after_id,
        )


@dataclass(frozen=True)
class Overdue:
    """A task or event that has not ended and was due before the sweep's threshold, as the
    store read it: `sweeps` is how many times the sweep queued it again, `due` the due mark
    the store's conditional write checks (it changes whenever the work moves on)."""

    work: Task | Event
    sweeps: int
    due: str

    @property
    def kind(self) -> str:
        return "task" if isinstance(self.work, Task) else "event"
