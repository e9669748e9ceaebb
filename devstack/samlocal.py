"""`make sam-local` and `make sam-invoke`: the built functions under `sam local` (Docker)
against the embedded local AWS, instead of the local stack's in-process gateway.

`start-api` starts the embedded local AWS (moto: the template's table and queues, what
`make dev` kept in .devstack/, the development key and the samples of events/), writes an
env-vars file derived from the template, then runs `sam local start-api` on the same port
as `make dev`. `invoke FUNCTION` runs `sam local invoke` with that file and the function's
sample event, while a `start-api` runs.

SAM passes a container only the variables the template declares, and takes their values
from the env-vars file. So the template declares AWS_ENDPOINT_URL (parameter
AwsEndpointUrl, empty when deployed, which botocore ignores) and the file gives every
function the local stack's physical ids and an AWS_ENDPOINT_URL the containers can reach,
`http://host.docker.internal:<port>`. Docker Desktop resolves that name to the host by
itself. On Linux SAM cannot put a container on the host's network (it ignores
`--docker-network host`: its container code connects only networks other than "host",
aws/aws-sam-cli#4236), so a container's 127.0.0.1 is the container: SAM is given
`--add-host host.docker.internal:host-gateway` (Docker resolves `host-gateway` to its
bridge's gateway, the host's address on the bridge), and the local AWS listens on that
address, only while `sam-local` runs (any container on the default bridge can reach it
meanwhile; the local AWS holds nothing but development data). tests/unit/test_sam_local.py
checks what SAM's own code then asks Docker for (devstack.samdocker). SAM
hands the containers the credentials of its own environment: they are set to dummies
here, so a container never holds a developer's real AWS credentials.

`sam local start-api` serves the HTTP routes only: it polls no queue and runs no
schedule. Queued jobs wait until `sam local invoke DeliverFunction` (or `make dev`).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import json
import logging
import os
import platform
import socket
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devstack import template

ROOT = template.ROOT
BUILT_TEMPLATE = ROOT / ".aws-sam" / "build" / "template.yaml"
ENV_VARS_FILE = "sam-env-vars.json"  # in the data folder (.devstack/), beside what make dev keeps
CONTAINER_HOST = "host.docker.internal"
DUMMY_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local"}


def container_endpoint(port: int) -> str:
    """The embedded local AWS as a Lambda container reaches it (Docker Desktop, or Linux
    with the host-gateway entry that `plan` adds)."""
    return f"http://{CONTAINER_HOST}:{port}"


def docker_bridge_gateway() -> str:
    """The host's address on Docker's default bridge, where `host-gateway` leads."""
    try:
        found = subprocess.run(
            ["docker", "network", "inspect", "bridge", "--format", "{{(index .IPAM.Config 0).Gateway}}"],  # noqa: S607
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise SystemExit(
            f"sam-local: cannot read Docker's bridge address (docker network inspect bridge: {exc}); "
            "is Docker running? `--bind ADDRESS` names it instead"
        ) from exc
    return found.stdout.strip()


@dataclass(frozen=True)
class ContainerNetwork:
    """How the Lambda containers reach the embedded local AWS on one platform."""

    endpoint: str  # AWS_ENDPOINT_URL, as a container sees the local AWS
    bind: str  # the address the local AWS listens on while sam local runs
    sam_args: tuple[str, ...]  # what `sam local` is given for it


def plan(platform_name: str, port: int, bridge: Callable[[], str] = docker_bridge_gateway) -> ContainerNetwork:
    """The containers' way to the local AWS on `platform_name` (platform.system())."""
    if platform_name == "Linux":
        add_host = ("--add-host", f"{CONTAINER_HOST}:host-gateway")
        return ContainerNetwork(container_endpoint(port), bridge(), add_host)
    return ContainerNetwork(container_endpoint(port), "127.0.0.1", ())


def env_vars(tpl: dict[str, Any], refs: dict[str, str], endpoint: str) -> dict[str, dict[str, str]]:
    """SAM's env-vars file: for each function, every variable the template gives it, with
    the local stack's ids, and the local AWS as AWS_ENDPOINT_URL."""
    found: dict[str, dict[str, str]] = {}
    for function in template.functions(tpl):
        variables = {name: str(value) for name, value in template.resolve(function.environment, refs).items()}
        variables["AWS_ENDPOINT_URL"] = endpoint
        found[function.logical_id] = variables
    return found


def sam_environment(base: dict[str, str], region: str) -> dict[str, str]:
    """The SAM CLI's own environment: dummy credentials (SAM gives its credentials to the
    containers), no profile, and none of the local stack's variables (a variable of SAM's
    shell overrides the template's default for the containers)."""
    dropped = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "TABLE_NAME", "QUEUE_URL")
    environment = {k: v for k, v in base.items() if k not in dropped}
    environment.update(DUMMY_CREDENTIALS)
    environment.update({"AWS_DEFAULT_REGION": region, "AWS_REGION": region, "SAM_CLI_TELEMETRY": "0"})
    return environment


def sam_command(sam: str, action: list[str], env_file: Path, network: ContainerNetwork, extra: list[str]) -> list[str]:
    return [sam, "local", *action, "-t", str(BUILT_TEMPLATE), "--env-vars", str(env_file), *network.sam_args, *extra]


def _reachable(host: str, port: int) -> bool:
    """Whether the local AWS answers where it listens."""
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=2):
        return True
    return False


def start_api(args: argparse.Namespace) -> int:
    from devstack import aws, persist, samples

    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    logging.getLogger("botocore").setLevel(logging.WARNING)

    try:
        state = persist.LocalState.open(args.data_dir)
    except persist.StateError as exc:
        print(f"sam-local: {exc}", file=sys.stderr)
        return 1
    os.environ.pop("AWS_PROFILE", None)  # this process speaks to the local AWS alone
    port = int(os.environ.get("MOTO_PORT") or 0) or aws.free_port()
    network = plan(args.platform, port, bridge=(lambda: args.bind) if args.bind else docker_bridge_gateway)
    if args.bind:  # the address given, whatever the platform's way
        network = dataclasses.replace(network, bind=args.bind)
    moto = aws.EmbeddedMoto(port, host=network.bind)
    moto.start()
    aws.use_local_credentials(moto.endpoint)
    endpoint = network.endpoint
    tpl = template.load_template()
    stack = aws.deploy(tpl, {"Stage": "dev", "AllowPrivateTargets": "true", "AwsEndpointUrl": endpoint})

    from webhook_service.jobqueue import JobQueue
    from webhook_service.storage.store import Store

    store, queue = Store(stack.refs["Table"]), JobQueue(stack.refs["DeliveryQueue"])
    ttl, now = persist.ttl_attribute(tpl), dt.datetime.now(dt.UTC)
    try:
        state.restore(store.table.client, store.table.name, queue, ttl, now)
    except persist.StateError as exc:
        print(f"sam-local: {exc}\n  `make dev-reset` starts afresh", file=sys.stderr)
        return 1
    organisation, key, token = persist.seed(store, os.environ.get("DEV_TOKEN"), state.read_identity())
    samples.seed(store, now)
    env_file = state.folder / ENV_VARS_FILE
    with open(env_file, "w", encoding="utf-8") as handle:
        json.dump(env_vars(tpl, stack.refs, endpoint), handle, indent=2)
    url = f"http://127.0.0.1:{args.port}"
    state.write_identity(
        {"url": url, "token": token, "organisation": organisation, "key": key, "aws_endpoint": moto.endpoint}
    )
    state.start_saving(
        lambda: state.save_table(store.table.client, store.table.name, ttl), lambda: moto.dynamodb_writes
    )
    print(
        f"""
  ricloud-webhooks under sam local start-api (Docker)
  API            {url}   token {token}
  local AWS      {moto.endpoint}   (containers: {endpoint})
  env-vars file  {env_file}
  samples        events/*.json (token {samples.TOKEN}); another terminal:
                 make sam-invoke FUNCTION=DeliverFunction   (start-api polls no queue, runs no schedule)
""",
        flush=True,
    )
    command = sam_command(args.sam, ["start-api", "--host", "127.0.0.1", "--port", str(args.port)], env_file,
                          network, args.extra)  # fmt: skip
    try:
        process = subprocess.Popen(command, env=sam_environment(dict(os.environ), aws.REGION), cwd=ROOT)  # noqa: S603
        try:
            code = process.wait()
        except KeyboardInterrupt:  # Ctrl-C reached SAM too: let it stop its containers
            code = process.wait(timeout=60)
    finally:
        saved = state.close()
        print(f"saved {saved} items to {state.folder}", file=sys.stderr, flush=True)
        moto.stop()
    return code


def invoke(args: argparse.Namespace) -> int:
    from devstack import aws

    env_file = Path(args.data_dir).resolve() / ENV_VARS_FILE
    functions = {f.logical_id: f for f in template.functions(template.load_template())}
    if args.function not in functions:
        print(f"sam-invoke: no function {args.function}; the template has {', '.join(sorted(functions))}")
        return 2
    try:
        variables = json.loads(env_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        variables = None
    port = int(variables[args.function]["AWS_ENDPOINT_URL"].rpartition(":")[2]) if variables else 0
    network = plan(args.platform, port) if variables else None
    if network is None or not _reachable(network.bind, port):
        print("sam-invoke: the local AWS is not running; start `make sam-local` first", file=sys.stderr)
        return 1
    event = args.event or str(ROOT / "events" / f"{functions[args.function].code_dir.name}.json")
    command = sam_command(args.sam, ["invoke", args.function, "-e", event], env_file, network, args.extra)
    return subprocess.call(command, env=sam_environment(dict(os.environ), aws.REGION), cwd=ROOT)  # noqa: S603


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.samlocal", description=__doc__.splitlines()[0])
    parser.add_argument("--sam", default="sam", help="the SAM CLI (make: .venv-tools/bin/sam)")
    parser.add_argument("--data-dir", default=os.environ.get("DEVSTACK_DATA") or ".devstack")
    parser.add_argument(
        "--platform",
        default=platform.system(),
        help="how the containers reach the local AWS: Linux (host-gateway), else Docker Desktop; default %(default)s",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    api = commands.add_parser("start-api", help="the local AWS, then sam local start-api")
    api.add_argument("--port", type=int, default=int(os.environ.get("PORT", "3000")))
    api.add_argument(
        "--bind",
        help="the local AWS's address (default: Docker's bridge gateway on Linux, else 127.0.0.1; 0.0.0.0 exposes it "
        "to your network)",
    )
    call = commands.add_parser("invoke", help="sam local invoke, with the function's sample event")
    call.add_argument("function", help="a logical id of the template, e.g. DeliverFunction")
    call.add_argument("--event", help="default: events/<the function's folder>.json")
    for sub in (api, call):
        sub.add_argument("extra", nargs="*", help="more arguments for sam (after --)")
    args = parser.parse_args(argv)
    return start_api(args) if args.command == "start-api" else invoke(args)


if __name__ == "__main__":
    sys.exit(main())
