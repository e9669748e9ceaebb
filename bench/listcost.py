"""List cost: items DynamoDB reads to list one organisation's configs when the table holds
10,000 configs of other organisations. Counted, not timed: the sum of `ScannedCount` of
every Query and the items of every GetItem a list makes, on the template's table (moto).
Target: listing an organisation's 25 configs reads at most limit + 1 items.
"""

from __future__ import annotations

import os
import sys
import uuid
from typing import Any

from devstack import aws, template

OTHER_CONFIGS = int(os.environ.get("LIST_OTHER_CONFIGS", "10000"))
OWN_CONFIGS = 25


class CountingClient:
    """Counts the items each read reads."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.items_read = 0
        self.requests: list[str] = []

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            response = attribute(*args, **kwargs)
            self.requests.append(name)
            if name == "query":
                self.items_read += int(response.get("ScannedCount", 0))
            elif name == "get_item":
                self.items_read += 1 if "Item" in response else 0
            elif name == "scan":
                raise AssertionError("a list must never scan")
            return response

        return call


def main() -> int:
    import boto3
    from moto import mock_aws

    from webhook_service.domain import new_config
    from webhook_service.service import Services, list_configs
    from webhook_service.storage import Principal, Store, config_item, marshal
    from webhook_service.timefmt import utcnow

    os.environ.update({"AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "b", "AWS_SECRET_ACCESS_KEY": "b"})
    os.environ.pop("AWS_ENDPOINT_URL", None)
    with mock_aws():
        stack = aws.deploy(template.load_template(), {"Stage": "dev"})
        table = stack.refs["Table"]
        client = boto3.client("dynamodb")
        items = [
            config_item(new_config(str(uuid.uuid4()), "https://r.example/", utcnow())) for _ in range(OTHER_CONFIGS)
        ]
        mine = str(uuid.uuid4())
        items += [config_item(new_config(mine, f"https://r.example/{n}", utcnow())) for n in range(OWN_CONFIGS)]
        for start in range(0, len(items), 25):
            batch = [{"PutRequest": {"Item": marshal(i)}} for i in items[start : start + 25]]
            client.batch_write_item(RequestItems={table: batch})

        counting = CountingClient(client)
        services = Services(store=Store(table, counting), queue=None, authenticator=None)  # type: ignore[arg-type]
        caller = Principal(key_id="bench", organisation=mine, state="active")
        print(f"list cost: {OWN_CONFIGS} configs of one organisation among {OTHER_CONFIGS} of others")
        print(f"{'request':44} {'returned':>8} {'items read':>10} {'limit+1':>8}  requests")
        met = True
        cases: list[tuple[str, dict[str, str]]] = [
            ("GET /configs/webhook?limit=25", {"limit": "25"}),
            ("GET /configs/webhook?limit=100", {"limit": "100"}),
            ("GET /configs/webhook?state=new&limit=25", {"state": "new", "limit": "25"}),
            ("GET /configs/webhook?limit=10 (has_more)", {"limit": "10"}),
        ]
        first_page = list_configs(services, caller, {"limit": "10"})
        cases.append(("GET ...?limit=10&after_id=<10th>", {"limit": "10", "after_id": first_page["data"][-1]["id"]}))
        for label, params in cases:
            counting.items_read, counting.requests = 0, []
            page = list_configs(services, caller, dict(params))
            limit = int(params["limit"])
            page_reads = counting.items_read
            print(
                f"{label:44} {len(page['data']):8} {page_reads:10} {limit + 1:8}  {','.join(counting.requests)}"
                f"  total_count={page['total_count']}"
            )
            if "has_more" not in label and "after_id" not in label:
                met = met and page_reads <= limit + 1
        print(
            "  with more pages or a cursor, total_count costs a COUNT query over the organisation's matches "
            f"({OWN_CONFIGS} here), never over other organisations"
        )
        print(f"  target (a full list reads at most limit + 1 items): {'met' if met else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
