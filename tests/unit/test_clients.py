"""The functions' AWS clients keep a connection for every request a function makes at once:
fewer, and urllib3 drops the extra connections after each use (and says so in the log)."""

from __future__ import annotations

from typing import Any

from webhook_service import clients, consumer
from webhook_service.storage.lists import LIST_READERS


def test_client_pool_holds_a_merged_list_pages_reads_and_a_batchs_jobs_at_once(backing: Any) -> None:
    for service in ("dynamodb", "sqs"):
        pool = clients.client(service).meta.config.max_pool_connections

        assert pool >= LIST_READERS
        assert pool >= consumer.MAX_BATCH
