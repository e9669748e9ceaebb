"""What the API's use cases need: the repositories, the delivery lanes, the authenticator,
a clock; tests build one with their own fakes."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from webhook_service.auth import Authenticator
from webhook_service.errors import InvalidParameterError, UnknownCursorError
from webhook_service.ports import JobSender, Repositories
from webhook_service.timefmt import utcnow

if TYPE_CHECKING:
    from webhook_service.lanes import Lanes

UPDATE_ATTEMPTS = 3  # reads of an item that changed under a conditional write, before 503


@dataclass
class Services:
    """`store` is any Repositories (ports.py): the use cases read and write through no more
    than it offers. `queue` is the events lane; tests go to `test_queue`, or `slow_queue`
    for an endpoint marked slow (each the events lane's queue when None)."""

    store: Repositories
    queue: JobSender
    authenticator: Authenticator
    allow_private_targets: bool = False
    clock: Callable[[], dt.datetime] = field(default=utcnow)
    test_queue: JobSender | None = None
    slow_queue: JobSender | None = None

    @property
    def lanes(self) -> Lanes:
        from webhook_service.lanes import Lanes  # only the use cases that queue a job load it

        return Lanes(events=self.queue, tests=self.test_queue, slow=self.slow_queue)


@contextlib.contextmanager
def cursors_of(resource: str) -> Iterator[None]:
    """A cursor naming nothing in the list is the caller's error, naming the parameter."""
    try:
        yield
    except UnknownCursorError as exc:
        raise InvalidParameterError(
            f"{exc.name} names no {resource} in this list.", params={exc.name: f"no such {resource}"}
        ) from None
