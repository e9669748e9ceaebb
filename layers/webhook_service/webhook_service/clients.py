"""AWS clients for the functions, made from botocore directly.

`boto3.client()` is a thin layer over botocore that also imports boto3's resource and S3
transfer machinery: about 40-50 ms of every cold start (bench/coldstart.py) for nothing this
service uses. botocore reads the same settings (region, credentials, AWS_ENDPOINT_URL).

botocore is imported with this module, not when the first client is made: every function
makes its clients during its cold start anyway, and importing botocore inside that first
call, after the service's own modules, cost 6-18 ms more CPU a cold start here (about 2,000
more minor page faults a process; docs/benchmarks.md, "Cold start").
"""

from __future__ import annotations

import threading
from typing import Any

import botocore.session
from botocore.config import Config

_lock = threading.Lock()  # botocore sessions are not safe to create clients from concurrently
_session: botocore.session.Session | None = None
# Connections kept per client: a merged list page reads 16 shards at once
# (storage.store.LIST_READERS) and the deliver function runs a batch's 10 jobs at once
# (consumer.MAX_BATCH). With botocore's default of 10, the extra connections were dropped
# after each use ("Connection pool is full, discarding connection") and made again.
MAX_POOL_CONNECTIONS = 20


def client(service: str) -> Any:
    """A new low-level client for `service` (e.g. "dynamodb"), from one shared session."""
    global _session
    with _lock:
        if _session is None:
            _session = botocore.session.get_session()
        return _session.create_client(service, config=Config(max_pool_connections=MAX_POOL_CONNECTIONS))
