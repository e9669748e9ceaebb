"""What `sam local` asks Docker for when `make sam-invoke` runs on Linux: the SAM CLI's own
command line, invoke context and container code, run in this process up to the moment it
creates the Lambda container, with a stand-in Docker client that records the request and
stops there. Prints the container's network settings and AWS_ENDPOINT_URL as JSON, for
tests/unit/test_sam_local.py. Runs in the tools environment (it imports samcli); no Docker."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any
from unittest import mock

from devstack import samcheck, samlocal, template

LOCAL_AWS_PORT = 4566
BRIDGE_GATEWAY = "172.17.0.1"  # Docker's default bridge gateway; no Docker engine is asked here


class ContainerRequestedError(Exception):
    """Raised by the stand-in Docker client once SAM asks it for the container."""


def docker_request(platform_name: str = "Linux") -> dict[str, Any]:
    """The container SAM asks Docker for, on `make sam-invoke`'s command line for the given
    platform, against the template's sources (the functions SAM builds are the same)."""
    from samcli.cli.main import cli

    tpl = template.load_template()
    plan = samlocal.plan(platform_name, LOCAL_AWS_PORT, bridge=lambda: BRIDGE_GATEWAY)
    variables = samlocal.env_vars(tpl, samcheck.placeholder_refs(tpl), plan.endpoint)
    requested: dict[str, Any] = {}
    connected: list[str] = []
    client = mock.MagicMock(name="docker")

    def create(image: str, **kwargs: Any) -> None:
        requested.update(kwargs, image=image)
        raise ContainerRequestedError

    client.containers.create.side_effect = create
    client.networks.get.side_effect = lambda name: mock.MagicMock(connect=lambda _id: connected.append(name))
    os.environ.update(samlocal.sam_environment(dict(os.environ), "us-east-1"))
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"  # no instance metadata to wait for
    with tempfile.TemporaryDirectory() as folder:
        env_file = Path(folder) / samlocal.ENV_VARS_FILE
        env_file.write_text(json.dumps(variables), encoding="utf-8")
        event = str(template.ROOT / "events" / "deliver.json")
        command = samlocal.sam_command("sam", ["invoke", "DeliverFunction", "-e", event], env_file, plan, [])
        command[command.index("-t") + 1] = str(template.TEMPLATE_PATH)
        # SAM wraps the stand-in's stop in an error of its own (and may exit): what it asked for is kept.
        with (
            mock.patch("samcli.local.docker.utils.get_validated_container_client", return_value=client),
            mock.patch("docker.from_env", return_value=client),
            contextlib.suppress(BaseException),
        ):
            cli.main(args=command[1:], standalone_mode=False)
    if not requested:
        raise SystemExit("samdocker: SAM never asked Docker for a container")
    return {
        "command": command[1:],
        "local_aws_bind": plan.bind,
        "endpoint": requested.get("environment", {}).get("AWS_ENDPOINT_URL"),
        "extra_hosts": requested.get("extra_hosts") or {},
        "network_mode": requested.get("network_mode"),
        "networks_connected": connected,
    }


def main() -> int:
    print(json.dumps(docker_request(sys.argv[1] if len(sys.argv) > 1 else "Linux"), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
