"""The operator command line: `python -m webhook_service <command>`.

It talks to DynamoDB directly, so it works against a deployed stack (with AWS credentials)
and against the local stack (with AWS_ENDPOINT_URL) alike.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from webhook_service import admin
from webhook_service.storage import Store


def _table_name(args: argparse.Namespace) -> str:
    if args.table:
        return str(args.table)
    if args.stack:
        import boto3

        resource = boto3.client("cloudformation").describe_stack_resource(
            StackName=args.stack, LogicalResourceId="Table"
        )
        return str(resource["StackResourceDetail"]["PhysicalResourceId"])
    if os.environ.get("TABLE_NAME"):
        return os.environ["TABLE_NAME"]
    raise SystemExit("name the table: --stack STACK, --table TABLE or TABLE_NAME")


def _print(value: Any) -> None:
    print(json.dumps(value, indent=2))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m webhook_service", description=__doc__.splitlines()[0])
    parser.add_argument("--stack", help="CloudFormation stack whose table to use")
    parser.add_argument("--table", help="DynamoDB table name (default: $TABLE_NAME)")
    commands = parser.add_subparsers(dest="command", required=True)

    org = commands.add_parser("create-organisation", help="create an organisation")
    org.add_argument("--name", required=True)

    key = commands.add_parser("create-key", help="create a key and print its token (shown once)")
    key.add_argument("--organisation", required=True, help="organisation id")

    off = commands.add_parser("deactivate-key", help="deactivate a key (effective within 60 s)")
    off.add_argument("--organisation", required=True)
    off.add_argument("--key", required=True, help="key id")

    args = parser.parse_args(argv)
    store = Store(_table_name(args))

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
    return 0
