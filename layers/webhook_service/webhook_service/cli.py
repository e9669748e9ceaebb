"""The operator command line: `ricloud-webhooks <command>`, or `python -m webhook_service <command>`.

It talks to DynamoDB directly, so it works against a deployed stack (with AWS credentials)
and against the local stack (with AWS_ENDPOINT_URL) alike. `listen` is the exception: a
receiver for development that speaks to the API (webhook_service.listen).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from typing import Any

from webhook_service import PRODUCT, admin, jsontext
from webhook_service.logs import log_to_stderr
from webhook_service.storage.store import Store


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
    parser.add_argument("--stack", help="CloudFormation stack whose table to use")
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

    listen = commands.add_parser("listen", help="a receiver on 127.0.0.1 that checks and prints each delivery")
    listen.add_argument("--port", type=int, help="default: the config's port on this machine, else any free one")
    which = listen.add_mutually_exclusive_group(required=True)
    which.add_argument("--config", help="the config whose secret checks the deliveries")
    which.add_argument("--create", action="store_true", help="make a config that sends here")
    listen.add_argument("--api", help="the API's URL (default: $RICLOUD_URL, else what make dev saved)")
    listen.add_argument("--token", help="an API token (default: $RICLOUD_TOKEN, else what make dev saved)")
    _add_limit_commands(commands)

    args = parser.parse_args(argv)
    log_to_stderr()
    if args.command == "listen":
        return _listen(args)
    store = Store(_physical_id(args, "table", "TABLE_NAME", "Table"))
    if args.command in _LIMIT_COMMANDS:
        return _limits(args, store)

    if args.command == "create-organisation":
        _print(admin.create_organisation(store.organisations, args.name))
    elif args.command == "create-key":
        from webhook_service.errors import ConflictError

        try:
            key_resource, token = admin.create_key(store.organisations, args.organisation)
        except ConflictError:
            print(f"no organisation {args.organisation}", file=sys.stderr)
            return 1
        _print({**key_resource, "token": token})
    elif args.command == "deactivate-key":
        found = admin.deactivate_key(store.organisations, args.organisation, args.key)
        if found is None:
            print(f"no key {args.key} in organisation {args.organisation}", file=sys.stderr)
            return 1
        _print(found)
    elif args.command == "publish-event":
        return _publish(args, store)
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
        print(f"no organisation {args.organisation}", file=sys.stderr)
        return 1
    _print(shown)
    return 0


def _publish(args: argparse.Namespace, store: Store) -> int:
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
    queue = JobQueue(_physical_id(args, "queue_url", "QUEUE_URL", "DeliveryQueue"))
    try:
        with contextlib.redirect_stdout(sys.stderr):  # its EMF metric lines are not the answer
            event = publish_event(store, queue, args.organisation, args.type, args.action, data, args.key)
    except ServiceError as exc:
        print(json.dumps(error_body(exc)), file=sys.stderr)
        return 1
    except DependencyError as exc:  # DynamoDB or SQS refused: said as the API says it, no traceback
        print(json.dumps(error_body(UnavailableError(f"The event was not published: {exc}."))), file=sys.stderr)
        return 1
    _print(event_resource(event))
    return 0


def _listen(args: argparse.Namespace) -> int:
    from webhook_service import listen

    try:
        api = listen.resolve_api(args.api, args.token)
    except listen.ListenError as exc:
        print(f"listen: {exc}", file=sys.stderr)
        return 1
    return listen.run(api, args.port, args.config, args.create)
