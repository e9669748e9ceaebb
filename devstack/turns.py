"""One DynamoDB call at a time for the local stack, taken in turns by partition.

moto's DynamoDB must answer one call at a time (`devstack.aws.EmbeddedMoto`), so every call
waits for the calls ahead of it. DynamoDB itself serves each partition key on its own: one
organisation's burst of writes to its partition does not delay another organisation's
reads. A plain lock would make the local stack share its storage in a way AWS does not, and
an isolation benchmark would measure that instead of the service. So waiting calls take
their turns round-robin across partitions: with calls of organisations A and B waiting, the
next turn goes to the partition that has waited least recently, whatever A's backlog.

The partition of a call is the organisation it names: `ORG#<id>`, `EVENT#<id>#...`,
`ATTEMPT#<id>#...` or `LIMIT#<id>` (the table's partition keys) or `<id>#...` (an index partition, which
starts with the organisation id); anything else (token lookups, table administration)
shares one partition.
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections import deque
from collections.abc import Iterator

_ORGANISATION = re.compile(
    rb'(?:ORG|EVENT|ATTEMPT|LIMIT)#([0-9a-f-]{36})|"([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})#'
)
OTHER = "other"


def partition_of(body: bytes) -> str:
    """The organisation a DynamoDB request names first, or OTHER."""
    found = _ORGANISATION.search(body)
    if found is None:
        return OTHER
    return (found.group(1) or found.group(2)).decode("ascii")


class PartitionTurns:
    """A lock whose waiters are served round-robin across partitions, FIFO within one."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._busy = False
        self._waiting: dict[str, deque[threading.Event]] = {}
        self._rotation: deque[str] = deque()  # partitions with waiters, next turn first

    def waiting(self) -> int:
        with self._lock:
            return sum(len(queue) for queue in self._waiting.values())

    @contextlib.contextmanager
    def turn(self, partition: str) -> Iterator[None]:
        granted: threading.Event | None = None
        with self._lock:
            if not self._busy:
                self._busy = True
            else:
                granted = threading.Event()
                queue = self._waiting.get(partition)
                if queue is None:
                    queue = self._waiting[partition] = deque()
                    self._rotation.append(partition)
                queue.append(granted)
        if granted is not None:
            granted.wait()
        try:
            yield
        finally:
            self._hand_on()

    def _hand_on(self) -> None:
        with self._lock:
            if not self._rotation:
                self._busy = False
                return
            partition = self._rotation.popleft()
            queue = self._waiting[partition]
            granted = queue.popleft()
            if queue:
                self._rotation.append(partition)  # its next call waits for the others' turns
            else:
                del self._waiting[partition]
        granted.set()
