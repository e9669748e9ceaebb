"""The operator command line: `ricloud-webhooks <command>`, or `python -m webhook_service <command>`.

It talks to DynamoDB directly, so it works against a deployed stack (with AWS credentials)
and against the local stack (with AWS_ENDPOINT_URL) alike. `listen` is the exception: a
receiver for development that speaks to the API (webhook_service.listen).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import sys
from typing import Any

from webhook_service import PRODUCT, admin, jsontext
from webhook_service.logs import log_to_stderr
from webhook_service.storage import Store


def _physical_id(args: argparse.Namespace, option: str, env: str, logical_id: str) -> str:
    """A resource of the stack: given by option, else found in --stack, else from env."""
    if getattr(args, option):
        return str(getattr(args, option))
    if args.stack:
        import boto3

        resource = boto3.client("cloudformation").describe_stack_resource(
            StackName=args.stack, LogicalResourceId=logical_id
        )
        return str(resource["StackResourceDetail"]["PhysicalResourceId"])
    if os.environ.get(env):
        return os.environ[env]
    raise SystemExit(f"name the {logical_id}: --stack STACK, --{option.replace('_', '-')} or {env}")


def _print(value: Any) -> None:
    print(jsontext.dumps(value, indent=2))


def run() -> int:
    """The installed command, `ricloud-webhooks` (layers/webhook_service/pyproject.toml)."""
    return main(prog=PRODUCT)


def main(argv: list[str] | None = None, prog: str = "python -m webhook_service") -> int:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    parser.add_argument("--stack", help="CloudFormation stack whose table (and functions) to use")
    parser.add_argument("--table", help="DynamoDB table name (default: $TABLE_NAME)")
    parser.add_argument("--queue-url", help="delivery queue URL, to publish (default: $QUEUE_URL)")
    commands = parser.add_subparsers(dest="command", required=True)

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

    listen = commands.add_parser("listen", help="a receiver on 127.0.0.1 that checks and prints each delivery")
    listen.add_argument("--port", type=int, help="default: the config's port on this machine, else any free one")
    which = listen.add_mutually_exclusive_group(required=True)
    which.add_argument("--config", help="the config whose secret checks the deliveries")
    which.add_argument("--create", action="store_true", help="make a config that sends here")
    listen.add_argument("--api", help="the API's URL (default: $RICLOUD_URL, else what make dev saved)")
    listen.add_argument("--token", help="an API token (default: $RICLOUD_TOKEN, else what make dev saved)")

    args = parser.parse_args(argv)
    log_to_stderr()
    if args.command == "listen":
        return _listen(args)
    if args.command in ("deliveries", "rollback", "restore-table", "copy-items"):
        return _runbook(args)
    store = Store(_physical_id(args, "table", "TABLE_NAME", "Table"))

    if args.command == "create-organisation":
        _print(admin.create_organisation(store, args.name))
    elif args.command == "create-key":
        from webhook_service.errors import ConflictError

        try:
            key_resource, token = admin.create_key(store, args.organisation)
        except ConflictError:
            print(f"no organisation {args.organisation}", file=sys.stderr)
            return 1
        _print({**key_resource, "token": token})
    elif args.command == "deactivate-key":
        found = admin.deactivate_key(store, args.organisation, args.key)
        if found is None:
            print(f"no key {args.key} in organisation {args.organisation}", file=sys.stderr)
            return 1
        _print(found)
    elif args.command == "publish-event":
        return _publish(args, store)
    return 0


def _publish(args: argparse.Namespace, store: Store) -> int:
    from webhook_service.errors import DependencyError, ServiceError, UnavailableError
    from webhook_service.events import publish
    from webhook_service.httperrors import error_body
    from webhook_service.jobqueue import JobQueue

    try:
        data = jsontext.loads(args.data)  # numbers keep the text they are written in
    except (ValueError, RecursionError) as exc:
        print(f"--data is not JSON: {exc}", file=sys.stderr)
        return 2
    queue = JobQueue(_physical_id(args, "queue_url", "QUEUE_URL", "DeliveryQueue"))
    try:
        with contextlib.redirect_stdout(sys.stderr):  # its EMF metric lines are not the answer
            event = publish(args.organisation, args.type, args.action, data, key=args.key, store=store, queue=queue)
    except ServiceError as exc:
        print(json.dumps(error_body(exc)), file=sys.stderr)
        return 1
    except DependencyError as exc:  # DynamoDB or SQS refused: said as the API says it, no traceback
        print(json.dumps(error_body(UnavailableError(f"The event was not published: {exc}."))), file=sys.stderr)
        return 1
    _print(event.to_resource())
    return 0


def _runbook(args: argparse.Namespace) -> int:
    """The runbook's commands; a command that cannot do what it was asked says why."""
    from webhook_service import runbook

    if args.command in ("deliveries", "rollback") and not args.stack:
        raise SystemExit(f"{args.command} acts on a stack: name it with --stack STACK")
    command = {"deliveries": _deliveries, "rollback": _rollback, "restore-table": _restore, "copy-items": _copy}
    try:
        return command[args.command](args)
    except runbook.RunbookError as exc:
        print(f"{args.command}: {exc}", file=sys.stderr)
        return 1


def _deliveries(args: argparse.Namespace) -> int:
    import boto3

    from webhook_service import runbook

    cloudformation, lambda_client = boto3.client("cloudformation"), boto3.client("lambda")
    if args.action == "status":
        sources = runbook.event_sources(cloudformation, lambda_client, args.stack)
    else:
        enabled = args.action == "resume"
        sources = runbook.switch_deliveries(cloudformation, lambda_client, args.stack, enabled, wait=not args.no_wait)
    _print([dataclasses.asdict(source) for source in sources])
    return 0


def _rollback(args: argparse.Namespace) -> int:
    import boto3

    from webhook_service import runbook

    cloudformation = boto3.client("cloudformation")
    if not args.dry_run:
        stopped = runbook.stop_deployments(cloudformation, boto3.client("codedeploy"), args.stack)
        if stopped:  # CodeDeploy moves those aliases back, and CloudFormation the stack
            _print({"stopped_deployments": stopped})
            return 0
    lambda_client = boto3.client("lambda")
    moves = runbook.roll_back(cloudformation, lambda_client, args.stack, args.function, args.to_version, args.dry_run)
    _print([dataclasses.asdict(move) for move in moves])
    return 0


def _restore(args: argparse.Namespace) -> int:
    import boto3

    from webhook_service import runbook
    from webhook_service.timefmt import parse_datetime

    table = _physical_id(args, "table", "TABLE_NAME", "Table")
    try:
        to = parse_datetime(args.to) if args.to else None
    except ValueError as exc:
        print(f"--to is not a datetime: {exc}", file=sys.stderr)
        return 2
    name = runbook.restore_table(boto3.client("dynamodb"), table, to, args.target, wait=not args.no_wait)
    _print({"restored_table": name, "from": table, "to": to.isoformat() if to else "latest"})
    return 0


def _copy(args: argparse.Namespace) -> int:
    import boto3

    from webhook_service import runbook

    table = _physical_id(args, "table", "TABLE_NAME", "Table")
    dynamodb = boto3.client("dynamodb")
    copied = runbook.copy_items(dynamodb, args.source, table, missing_only=not args.all, dry_run=args.dry_run)
    _print({"from": args.source, "to": table, **dataclasses.asdict(copied)})
    return 0


def _listen(args: argparse.Namespace) -> int:
    from webhook_service import listen

    try:
        api = listen.resolve_api(args.api, args.token)
    except listen.ListenError as exc:
        print(f"listen: {exc}", file=sys.stderr)
        return 1
    return listen.run(api, args.port, args.config, args.create)
