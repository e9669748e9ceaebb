"""The local stack's embedded AWS (moto's server, `devstack.aws.EmbeddedMoto`) answers the
local stack, the operator command line and boto3, and no web page: a browser's request,
cross-origin or not, is refused before moto sees it, so a page on another origin can
neither read the table (config secrets, token hashes) nor change it blind."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any, Literal

import boto3
import pytest
import requests

from devstack.aws import free_port
from tests.support.stack import ROOT

pytestmark = pytest.mark.integration

EVIL = "http://evil.example"
DYNAMODB_LIST_TABLES = {"X-Amz-Target": "DynamoDB_20120810.ListTables", "Content-Type": "application/x-amz-json-1.0"}
AUTHORIZATION = {  # a signature of the local credentials' shape: the local AWS checks none
    "Authorization": "AWS4-HMAC-SHA256 Credential=local/20261206/us-east-1/dynamodb/aws4_request, "
    "SignedHeaders=host;x-amz-target, Signature=0"
}


@pytest.fixture(scope="module")
def local_aws() -> Iterator[str]:
    """An EmbeddedMoto in a process of its own (it patches moto, which this process's unit
    tests use as shipped)."""
    port = free_port()
    script = f"from devstack.aws import EmbeddedMoto; import time; EmbeddedMoto({port}).start(); time.sleep(600)"
    process = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                requests.get(endpoint, timeout=2)
                break
            except requests.ConnectionError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the local AWS did not start") from None
                time.sleep(0.1)
        yield endpoint
    finally:
        process.kill()
        process.wait(timeout=10)


def client(service: Literal["dynamodb", "sqs"], endpoint: str) -> Any:
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )


def test_local_aws_answers_boto3_as_the_stack_and_the_operator_cli_call_it(local_aws: str) -> None:
    dynamodb, sqs = client("dynamodb", local_aws), client("sqs", local_aws)

    assert "TableNames" in dynamodb.list_tables()
    assert sqs.create_queue(QueueName="boto3-may")["QueueUrl"]


def test_local_aws_refuses_a_browsers_preflight_from_another_origin(local_aws: str) -> None:
    response = requests.options(
        local_aws,
        headers={
            "Origin": EVIL,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "x-amz-target,content-type,authorization",
        },
        timeout=10,
    )

    assert response.status_code == 403
    assert not [h for h in response.headers if h.lower().startswith("access-control-")]


def test_local_aws_refuses_a_cross_origin_read_of_the_table(local_aws: str) -> None:
    response = requests.post(
        local_aws, headers={**DYNAMODB_LIST_TABLES, **AUTHORIZATION, "Origin": EVIL}, data="{}", timeout=10
    )

    assert response.status_code == 403
    assert "Access-Control-Allow-Origin" not in response.headers
    assert "TableNames" not in response.text


def test_local_aws_refuses_a_blind_cross_site_form_post_to_the_queue(local_aws: str) -> None:
    sqs = client("sqs", local_aws)
    queue_url = sqs.create_queue(QueueName="blind-post")["QueueUrl"]

    response = requests.post(  # what an HTML form on another site can send: no preflight
        local_aws,
        headers={"Origin": EVIL, "Content-Type": "application/x-www-form-urlencoded", "Sec-Fetch-Site": "cross-site"},
        data={"Action": "SendMessage", "QueueUrl": queue_url, "MessageBody": "forged"},
        timeout=10,
    )

    assert response.status_code == 403
    assert "Messages" not in sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=0)


def test_local_aws_refuses_a_browser_request_without_an_origin(local_aws: str) -> None:
    """An <img> or a navigation sends no Origin, but every current browser says where it
    comes from in Sec-Fetch-Site; boto3 sends neither."""
    response = requests.get(local_aws + "/?Action=ListQueues", headers={"Sec-Fetch-Site": "cross-site"}, timeout=10)

    assert response.status_code == 403
