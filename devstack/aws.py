"""The local AWS: an embedded moto server (or the one AWS_ENDPOINT_URL names) holding the
template's tables and queues, created by CloudFormation from the template itself."""

from __future__ import annotations

import io
import json
import os
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import boto3

from devstack.template import backing_template
from devstack.turns import PartitionTurns, partition_of

STACK_NAME = "ricloud-webhooks-local"
REGION = "us-east-1"
_DYNAMODB_READS = ("Get", "BatchGet", "TransactGet", "Query", "Scan", "Describe", "List")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def use_local_credentials(endpoint: str) -> None:
    """Point every boto3 client of this process at the local endpoint with dummy credentials."""
    os.environ["AWS_ENDPOINT_URL"] = endpoint
    os.environ.setdefault("AWS_DEFAULT_REGION", REGION)
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")


# Headers that browsers add to what a page sends and that boto3 and botocore never send:
# Origin on every cross-origin request (and on same-origin POSTs), Sec-Fetch-* on every
# request of current browsers, an <img> or a form's navigation included.
_BROWSER_HEADERS = ("HTTP_ORIGIN", "HTTP_SEC_FETCH_SITE", "HTTP_SEC_FETCH_MODE", "HTTP_SEC_FETCH_DEST")
REFUSED = b"the local AWS answers the local stack and AWS clients only, not browsers\n"


def from_a_browser(environ: dict[str, Any]) -> bool:
    """Whether a request was sent by a web page (the local AWS refuses it, devstack.aws)."""
    return any(name in environ for name in _BROWSER_HEADERS)


class EmbeddedMoto:
    """moto's server in a thread of this process, on 127.0.0.1. It answers DynamoDB requests
    one at a time: moto's DynamoDB is not safe for concurrent calls (a transaction copies a
    table while another request changes it), and the functions call it from many threads.
    Other services stay concurrent (an SQS long poll must not hold up the rest). With calls
    one at a time, moto's DynamoDB can take the speed-ups of `devstack.moto_patches`.
    Waiting calls take their turns round-robin by organisation (`devstack.turns`), as
    DynamoDB serves each partition on its own. It refuses every request a browser sends
    (`from_a_browser`): a web page open on this machine must not reach the table."""

    def __init__(self, port: int = 0, host: str = "127.0.0.1") -> None:
        self.port = port or free_port()
        self.host = host  # where it listens: one address, or every one (0.0.0.0)
        self.dynamodb_writes = 0  # DynamoDB requests that may have changed a table (the save watches it)
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def endpoint(self) -> str:
        """Where this machine reaches it: its address, or the loopback when it listens on all."""
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host  # noqa: S104 - compared, not bound
        return f"http://{host}:{self.port}"

    def start(self) -> None:
        from moto.moto_server import werkzeug_app
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
        from werkzeug.serving import make_server

        from devstack import moto_patches

        moto_patches.apply()
        # moto answers CORS for any origin (flask-cors on every service), and checks no
        # signature: any web page could read the table. Its CORS is off here, and the gate
        # below refuses whatever a browser sends before moto sees it.
        werkzeug_app.DISABLE_GLOBAL_CORS = True  # type: ignore[attr-defined]  # moto's module global, read per app
        app = DomainDispatcherApplication(create_backend_app)
        turns = PartitionTurns()

        def one_at_a_time(environ: dict[str, Any], start_response: Any) -> Any:
            if from_a_browser(environ):
                start_response("403 Forbidden", [("Content-Type", "text/plain"), ("Content-Length", str(len(REFUSED)))])
                return [REFUSED]
            target = environ.get("HTTP_X_AMZ_TARGET", "")
            if not target.startswith("DynamoDB"):
                return app(environ, start_response)
            body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
            environ["wsgi.input"] = io.BytesIO(body)
            with turns.turn(partition_of(body)):
                if not target.rpartition(".")[2].startswith(_DYNAMODB_READS):
                    self.dynamodb_writes += 1
                return list(app(environ, start_response))

        self._server = make_server(self.host, self.port, one_at_a_time, True, request_handler=MotoRequestHandler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="moto", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
        if self._thread is not None:
            self._thread.join(timeout=10)


@dataclass(frozen=True)
class Stack:
    name: str
    refs: dict[str, str]  # parameters and logical ids -> values and physical ids


def deploy(template: dict[str, Any], parameters: dict[str, str], stack_name: str = STACK_NAME) -> Stack:
    """Create (or reuse) the stack of the template's tables and queues; return its ids."""
    cfn = boto3.client("cloudformation")
    try:
        cfn.describe_stacks(StackName=stack_name)
        exists = True
    except cfn.exceptions.ClientError:
        exists = False
    if not exists:
        cfn.create_stack(
            StackName=stack_name,
            TemplateBody=json.dumps(backing_template(template)),
            Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
        )
        _wait_for(cfn, stack_name)
    resources = cfn.describe_stack_resources(StackName=stack_name)["StackResources"]
    refs = {p: str(template["Parameters"][p].get("Default", "")) for p in template.get("Parameters", {})}
    refs.update(parameters)
    refs.update({r["LogicalResourceId"]: r["PhysicalResourceId"] for r in resources})
    refs.update({"AWS::Region": os.environ.get("AWS_DEFAULT_REGION", REGION), "AWS::StackName": stack_name})
    return Stack(name=stack_name, refs=refs)


def _wait_for(cfn: Any, stack_name: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = cfn.describe_stacks(StackName=stack_name)["Stacks"][0]["StackStatus"]
        if status.endswith("_COMPLETE") and "ROLLBACK" not in status:
            return
        if "FAILED" in status or "ROLLBACK" in status:
            raise RuntimeError(f"stack {stack_name} ended {status}")
        time.sleep(0.2)
    raise TimeoutError(f"stack {stack_name} not ready after {timeout} s")


class SerialClient:
    """Wraps a boto3 client so that its calls run one at a time: moto's in-process backend
    is not safe for concurrent transactions (it deep-copies tables while they change)."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        if not callable(attribute):
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                return attribute(*args, **kwargs)

        return call


ClientT = TypeVar("ClientT")


def serial(client: ClientT) -> ClientT:
    """`client` behind a SerialClient, typed as the client it wraps: the wrapper forwards every
    method by name (__getattr__), which no static type can say, so the cast is the claim."""
    return cast(ClientT, SerialClient(client))
