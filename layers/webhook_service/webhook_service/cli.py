"""The operator command line: `ricloud-webhooks <command>`, or `python -m webhook_service <command>`.

It talks to DynamoDB (and SQS, to publish) directly, so it works against a deployed stack
(`--stack NAME` and your AWS credentials) and against `make dev`'s local stack alike: with
no `--stack`, `--table` or TABLE_NAME it reads the local stack's endpoint, table, queue and
credentials from what `make dev` saved (.devstack/dev.json, or $DEVSTACK_DATA/dev.json).
Every failure is one line on standard error, never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import json
import os
import socket
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from webhook_service import PRODUCT, admin, jsontext
from webhook_service.logs import log_to_stderr, logger
from webhook_service.storage.store import Store

LOCAL_STACK_FILE = "dev.json"  # what `make dev` saves in its data folder (devstack.persist.IDENTITY)
LOCAL_CREDENTIALS = "local"  # the local AWS checks no signature: any key pair will do
LOCAL_REGION = "us-east-1"
PROBE_SECONDS = 2.0

EPILOG = """\
Which stack: --stack NAME reads the table and queue from a deployed CloudFormation stack,
with your AWS credentials. Without --stack, --table or $TABLE_NAME, it uses `make dev`'s
local stack: endpoint, table, queue and credentials from .devstack/dev.json (the folder
$DEVSTACK_DATA names, if set), so run it from the repository's root while make dev runs.

A receiver for development is not here: `make listen` (python -m devstack.listen).
"""


class OperatorError(Exception):
    """What the command line says in one line before it exits 1."""


def local_stack(folder: str | None = None) -> dict[str, Any] | None:
    """What `make dev` saved about its local stack, or None when there is no such file."""
    path = Path(folder or os.environ.get("DEVSTACK_DATA") or ".devstack") / LOCAL_STACK_FILE
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise OperatorError(f"{path} cannot be read ({exc}); restart make dev") from None
    if not isinstance(saved, dict) or not all(saved.get(k) for k in ("aws_endpoint", "table", "queue_url")):
        raise OperatorError(f"{path} does not name a local stack's endpoint, table and queue; restart make dev")
    saved["file"] = str(path)
    return saved


def use_local_stack(saved: dict[str, Any]) -> None:
    """Point this process's AWS clients at the local stack, whatever the environment said
    (an endpoint exported for an earlier run of make dev is on another port by now)."""
    endpoint = str(saved["aws_endpoint"])
    parts = urlsplit(endpoint)
    try:
        socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80), timeout=PROBE_SECONDS).close()
    except OSError:
        raise OperatorError(
            f"the local stack of {saved['file']} does not answer at {endpoint}: is make dev running?"
        ) from None
    os.environ["AWS_ENDPOINT_URL"] = endpoint
    os.environ["AWS_ACCESS_KEY_ID"] = LOCAL_CREDENTIALS
    os.environ["AWS_SECRET_ACCESS_KEY"] = LOCAL_CREDENTIALS
    os.environ.pop("AWS_SESSION_TOKEN", None)
    os.environ.pop("AWS_PROFILE", None)
    os.environ["AWS_DEFAULT_REGION"] = LOCAL_REGION


class Resources:
    """The table and queue this run uses: named by option, found in --stack, read from the
    environment, else from `make dev`'s saved local stack (loaded on first need)."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self._local: dict[str, Any] | None = None

    def _local_stack(self, what: str, option: str, env: str) -> dict[str, Any]:
        if self._local is None:
            saved = local_stack()
            if saved is None:
                raise OperatorError(
                    f"which {what}? give --stack NAME (a deployed stack), --{option} or ${env};"
                    " or start make dev here (its .devstack/dev.json names its own)"
                )
            use_local_stack(saved)
            self._local = saved
        return self._local

    def physical_id(self, option: str, env: str, logical_id: str, saved_field: str) -> str:
        args = self.args
        if getattr(args, option):
            return str(getattr(args, option))
        if args.stack:
            return stack_resource(args.stack, logical_id)
        if os.environ.get(env):
            return os.environ[env]
        return str(self._local_stack(logical_id, option.replace("_", "-"), env)[saved_field])


def stack_resource(stack: str, logical_id: str) -> str:
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        resource = boto3.client("cloudformation").describe_stack_resource(StackName=stack, LogicalResourceId=logical_id)
    except ClientError as exc:
        message = exc.response.get("Error", {}).get("Message") or str(exc)
        raise OperatorError(f"stack {stack}: {message}") from None
    except BotoCoreError as exc:
        raise OperatorError(f"stack {stack}: {exc}") from None
    return str(resource["StackResourceDetail"]["PhysicalResourceId"])


def _print(value: Any) -> None:
    print(jsontext.dumps(value, indent=2))


def run() -> int:
    """The installed command, `ricloud-webhooks` (layers/webhook_service/pyproject.toml)."""
    return main(prog=PRODUCT)


def _parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description=__doc__.splitlines()[0],
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--stack", help="a deployed CloudFormation stack whose table and queue to use")
    parser.add_argument("--table", help="DynamoDB table name (default: $TABLE_NAME, else make dev's)")
    parser.add_argument("--queue-url", help="delivery queue URL, to publish (default: $QUEUE_URL, else make dev's)")
    parser.add_argument("--verbose", action="store_true", help="also print the service's log lines")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    org = commands.add_parser("create-organisation", help="create an organisation")
    org.add_argument("--name", required=True)

    key = commands.add_parser("create-key", help="create a key and print its token (shown once)")
    key.add_argument("--organisation", required=True, help="organisation id")

    off = commands.add_parser("deactivate-key", help="deactivate a key (effective within 60 s)")
    off.add_argument("--organisation", required=True)
    off.add_argument("--key", required=True, help="key id")

    event = commands.add_parser("publish-event", help="publish an event: store it and queue its delivery")
    event.add_argument("--organisation", required=True)
    event.add_argument("--key", help="the key whose own config takes precedence over the default")
    event.add_argument("--type", required=True, help="the related resource's type, e.g. session")
    event.add_argument("--action", required=True, help="what happened, e.g. completed")
    event.add_argument("--data", default="{}", help="the related resource as a JSON object")
    event.add_argument(
        "--idempotency-key",
        help="publish once: the same key again within 24 hours prints the first event and delivers nothing more",
    )

    commands.add_parser(
        "migrate-layout",
        help="convert the events and attempts an earlier version wrote to this layout (docs/operations.md)",
    )
    _add_limit_commands(commands)

    # The runbook's commands (docs/operations.md): they act on the stack named by --stack.
    deliveries = commands.add_parser("deliveries", help="the kill switch: pause or resume deliveries (--stack)")
    deliveries.add_argument("action", choices=["status", "pause", "resume"])
    deliveries.add_argument("--no-wait", action="store_true", help="do not wait for Lambda to settle")

    rollback = commands.add_parser(
        "rollback", help="stop a deployment in progress, else point functions' live alias at their previous version"
    )
    rollback.add_argument("--function", action="append", help="a logical id, e.g. DeliverFunction (default: all)")
    rollback.add_argument("--to-version", help="this version instead of the previous one (one --function)")
    rollback.add_argument("--dry-run", action="store_true", help="say what would move, move nothing")

    restore = commands.add_parser("restore-table", help="restore the table to a point in time, into a new table")
    restore.add_argument("--to", help="ISO datetime (UTC unless it says); default the latest restorable time")
    restore.add_argument("--target", help="the new table's name (default <table>-restored-<time>)")
    restore.add_argument("--no-wait", action="store_true", help="do not wait for the new table to be active")

    copy = commands.add_parser("copy-items", help="copy a restored table's items back into the stack's table")
    copy.add_argument("--from", dest="source", required=True, help="the restored table")
    copy.add_argument("--all", action="store_true", help="overwrite items that exist too (default: missing ones only)")
    copy.add_argument("--dry-run", action="store_true", help="count what would be copied, write nothing")
    return parser


def main(argv: list[str] | None = None, prog: str = "python -m webhook_service") -> int:
    if (sys.argv[1:] if argv is None else argv)[:1] == ["listen"]:
        print(f"{prog}: listen is a development tool now: make listen (python -m devstack.listen)", file=sys.stderr)
        return 2
    args = _parser(prog).parse_args(argv)
    log_to_stderr()
    level = logger.log_level
    if not args.verbose:
        logger.setLevel("WARNING")  # the answer is what it prints; "event published" says nothing more
    try:
        return _run(args, Resources(args))
    except OperatorError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # DynamoDB, SQS or the network refused: said in one line
        print(f"{prog}: {describe_failure(exc)}", file=sys.stderr)
        return 1
    finally:
        logger.setLevel(level)


def botocore_cause(exc: BaseException) -> BaseException:
    """The botocore error under the service's own (DependencyError wraps it), else `exc`."""
    from botocore.exceptions import BotoCoreError, ClientError

    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, BotoCoreError | ClientError):
            return cause
        cause = cause.__cause__
    return exc


def describe_failure(exc: BaseException) -> str:
    """One line for an AWS failure, from the botocore error under the service's own."""
    from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError, NoRegionError

    cause = botocore_cause(exc)
    if isinstance(cause, EndpointConnectionError):
        return f"cannot reach {cause.kwargs.get('endpoint_url', 'AWS')}: is the stack (or make dev) running?"
    if isinstance(cause, NoCredentialsError):
        return "no AWS credentials (for a deployed stack: AWS_PROFILE or the usual variables)"
    if isinstance(cause, NoRegionError):
        return "no AWS region (AWS_DEFAULT_REGION, or a profile's region)"
    if isinstance(cause, ClientError):
        error = cause.response.get("Error", {})
        return f"AWS refused: {error.get('Code', '?')}: {error.get('Message', '')}".rstrip(": ")
    return f"{type(exc).__name__}: {exc}"


def _run(args: argparse.Namespace, resources: Resources) -> int:
    if args.command in RUNBOOK:
        return _runbook(args, resources)
    store = Store(resources.physical_id("table", "TABLE_NAME", "Table", "table"))
    if args.command in _LIMIT_COMMANDS:
        return _limits(args, store)
    if args.command == "publish-event":
        return _publish(args, store, resources)
    return _tenants_and_layout(args, store)


def _tenants_and_layout(args: argparse.Namespace, store: Store) -> int:
    if args.command == "create-organisation":
        try:
            _print(admin.create_organisation(store.organisations, args.name))
        except ValueError as exc:
            raise OperatorError(str(exc)) from None
    elif args.command == "create-key":
        from webhook_service.errors import ConflictError

        try:
            key_resource, token = admin.create_key(store.organisations, args.organisation)
        except ConflictError:
            raise OperatorError(f"no organisation {args.organisation}") from None
        _print({**key_resource, "token": token})
    elif args.command == "deactivate-key":
        found = admin.deactivate_key(store.organisations, args.organisation, args.key)
        if found is None:
            raise OperatorError(f"no key {args.key} in organisation {args.organisation}")
        _print(found)
    elif args.command == "migrate-layout":
        from webhook_service.storage.migration import Migration

        _print(dataclasses.asdict(Migration(store.table).run()))
    return 0


# -- fair use: each organisation's rates and quotas (docs/design.md §18) ---------------------

_LIMIT_COMMANDS = ("set-limits", "show-limits")
_RATE_OPTIONS = {  # rate name -> the options of its per-second and burst
    "api": ("rate", "burst"),
    "tests": ("tests_per_second", "tests_burst"),
    "resends": ("resends_per_second", "resends_burst"),
}


def _whole_number(text: str) -> int:
    """A number an operator may set: a whole number from 1 to 100,000."""
    from webhook_service.domain.limits import MAX_RATE, valid_rate

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not valid_rate(value):
        raise argparse.ArgumentTypeError(f"{value} is not from 1 to {MAX_RATE}")
    return value


def _add_limit_commands(commands: Any) -> None:
    show = commands.add_parser("show-limits", help="print an organisation's rates and quota of configs")
    show.add_argument("--organisation", required=True)
    limits = commands.add_parser(
        "set-limits", help="give an organisation its own rates and quota of configs, then print them"
    )
    limits.add_argument("--organisation", required=True)
    limits.add_argument("--rate", type=_whole_number, help="API requests a second (default 50)")
    limits.add_argument("--burst", type=_whole_number, help="API requests at once (default 100)")
    limits.add_argument("--tests-per-second", type=_whole_number, help="tests queued a second (default 10)")
    limits.add_argument("--tests-burst", type=_whole_number, help="tests queued at once (default 10)")
    limits.add_argument("--resends-per-second", type=_whole_number, help="resends a second (default 10)")
    limits.add_argument("--resends-burst", type=_whole_number, help="resends at once (default 10)")
    limits.add_argument("--max-configs", type=_whole_number, help="configs not deactivated (default 1000)")
    limits.add_argument("--default", action="store_true", help="every rate and the quota back to the defaults first")


def _limits(args: argparse.Namespace, store: Store) -> int:
    if args.command == "show-limits":
        shown = admin.limits_of(store, args.organisation)
    else:
        rates = {name: (getattr(args, rate), getattr(args, burst)) for name, (rate, burst) in _RATE_OPTIONS.items()}
        shown = admin.set_limits(store, args.organisation, rates, args.max_configs, args.default)
    if shown is None:
        raise OperatorError(f"no organisation {args.organisation}")
    _print(shown)
    return 0


def _publish(args: argparse.Namespace, store: Store, resources: Resources) -> int:
    from botocore.exceptions import ClientError

    from webhook_service.errors import DependencyError, ServiceError, UnavailableError
    from webhook_service.httperrors import error_body
    from webhook_service.jobqueue import JobQueue
    from webhook_service.service.publishing import publish_event
    from webhook_service.views import event_resource

    try:
        data = jsontext.loads(args.data)  # numbers keep the text they are written in
    except (ValueError, RecursionError) as exc:
        print(f"--data is not JSON: {exc}", file=sys.stderr)
        return 2
    queue = JobQueue(resources.physical_id("queue_url", "QUEUE_URL", "DeliveryQueue", "queue_url"))
    try:
        # Its metric line (EMF) would reach CloudWatch only from a function's log: dropped here.
        with contextlib.redirect_stdout(io.StringIO()):
            event = publish_event(
                store, queue, args.organisation, args.type, args.action, data, args.key, args.idempotency_key
            )
    except ServiceError as exc:
        print(json.dumps(error_body(exc)), file=sys.stderr)
        return 1
    except DependencyError as exc:  # DynamoDB or SQS refused: said as the API says it, no traceback
        if not isinstance(botocore_cause(exc), ClientError):
            raise  # no answer at all (the endpoint is gone): described by main
        print(json.dumps(error_body(UnavailableError(f"The event was not published: {exc}."))), file=sys.stderr)
        return 1
    _print(event_resource(event))
    return 0


def _runbook(args: argparse.Namespace, resources: Resources) -> int:
    """The runbook's commands (webhook_service.runbook), on a deployed stack."""
    from webhook_service.runbook import RunbookError

    try:
        return RUNBOOK[args.command](args, resources)
    except RunbookError as exc:
        raise OperatorError(f"{args.command}: {exc}") from None


def _stack(args: argparse.Namespace) -> str:
    if not args.stack:
        raise OperatorError(f"{args.command} acts on a deployed stack: name it with --stack STACK")
    return str(args.stack)


def _deliveries(args: argparse.Namespace, resources: Resources) -> int:
    import boto3

    from webhook_service import runbook

    cloudformation, lambda_client = boto3.client("cloudformation"), boto3.client("lambda")
    if args.action == "status":
        sources = runbook.event_sources(cloudformation, lambda_client, _stack(args))
    else:
        enabled = args.action == "resume"
        sources = runbook.switch_deliveries(cloudformation, lambda_client, _stack(args), enabled, wait=not args.no_wait)
    _print([dataclasses.asdict(source) for source in sources])
    return 0


def _rollback(args: argparse.Namespace, resources: Resources) -> int:
    import boto3

    from webhook_service import runbook

    cloudformation = boto3.client("cloudformation")
    if not args.dry_run:
        stopped = runbook.stop_deployments(cloudformation, boto3.client("codedeploy"), _stack(args))
        if stopped:  # CodeDeploy moves those aliases back, and CloudFormation the stack
            _print({"stopped_deployments": stopped})
            return 0
    lambda_client = boto3.client("lambda")
    moves = runbook.roll_back(cloudformation, lambda_client, _stack(args), args.function, args.to_version, args.dry_run)
    _print([dataclasses.asdict(move) for move in moves])
    return 0


def _restore(args: argparse.Namespace, resources: Resources) -> int:
    import boto3

    from webhook_service import runbook
    from webhook_service.timefmt import parse_datetime

    table = resources.physical_id("table", "TABLE_NAME", "Table", "table")
    try:
        to = parse_datetime(args.to) if args.to else None
    except ValueError as exc:
        print(f"--to is not a datetime: {exc}", file=sys.stderr)
        return 2
    name = runbook.restore_table(boto3.client("dynamodb"), table, to, args.target, wait=not args.no_wait)
    _print({"restored_table": name, "from": table, "to": to.isoformat() if to else "latest"})
    return 0


def _copy(args: argparse.Namespace, resources: Resources) -> int:
    import boto3

    from webhook_service import runbook

    table = resources.physical_id("table", "TABLE_NAME", "Table", "table")
    dynamodb = boto3.client("dynamodb")
    copied = runbook.copy_items(dynamodb, args.source, table, missing_only=not args.all, dry_run=args.dry_run)
    _print({"from": args.source, "to": table, **dataclasses.asdict(copied)})
    return 0


RUNBOOK = {"deliveries": _deliveries, "rollback": _rollback, "restore-table": _restore, "copy-items": _copy}
