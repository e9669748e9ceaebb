"""`python -m devstack` (what `make dev` runs): the whole service on 127.0.0.1.

Starts moto (unless AWS_ENDPOINT_URL names another local AWS), creates the template's
table and queues through CloudFormation, serves every HttpApi route of the template on
PORT (default 3000), runs every SQS event source of the template (up to its
MaximumConcurrency invocations at once, each in a worker process), runs its Schedule
event sources at their rate (DEVSTACK_SCHEDULE_SECONDS overrides it), and creates a
development organisation and key (DEV_TOKEN, when set, is that key's token). With
--data-dir (`make dev`: .devstack), what was made is kept across restarts (devstack.persist).
With --api-workers N (DEVSTACK_API_WORKERS), the API's functions run in worker processes, up
to N at once per function, as Lambda instances would (devstack.apiworkers); by default the
gateway calls them in its own process.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import signal
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from devstack import aws, iam, persist, template
from devstack.apiworkers import WorkerFunctions
from devstack.gateway import Gateway
from devstack.poller import EventSource
from devstack.runtime import apply_environment
from devstack.scheduler import Scheduler

if TYPE_CHECKING:
    from webhook_service.wiring import ProcessServices

log = logging.getLogger("devstack")


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m devstack", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "3000")))
    parser.add_argument("--moto-port", type=int, default=int(os.environ.get("MOTO_PORT", "0")))
    parser.add_argument("--quiet", action="store_true", help="log warnings only")
    parser.add_argument("--info-file", help="write the stack's URL, token and local AWS as JSON here when ready")
    parser.add_argument("--template", default=str(template.TEMPLATE_PATH), help="another template (devstack.artifact)")
    parser.add_argument(
        "--data-dir", default=os.environ.get("DEVSTACK_DATA"), help="keep what was made across restarts in this folder"
    )
    parser.add_argument("--reset", action="store_true", help="forget what --data-dir kept, then start afresh")
    parser.add_argument(
        "--api-workers",
        type=int,
        default=int(os.environ.get("DEVSTACK_API_WORKERS") or 0),
        help="run the API's functions in worker processes, up to N at once per function (0: in this process)",
    )
    return parser.parse_args(argv)


def _local_aws(moto_port: int) -> aws.EmbeddedMoto | None:
    """Point boto3 at the local AWS: AWS_ENDPOINT_URL's, else an embedded moto (returned)."""
    if os.environ.get("AWS_ENDPOINT_URL"):
        aws.use_local_credentials(os.environ["AWS_ENDPOINT_URL"])
        return None
    moto = aws.EmbeddedMoto(moto_port)
    moto.start()
    aws.use_local_credentials(moto.endpoint)
    return moto


def _services(tpl: dict[str, Any], stack: aws.Stack) -> ProcessServices:
    """The service's objects as the functions see them, after the functions' environment."""
    for function in template.functions(tpl):
        apply_environment(template.resolve(function.environment, stack.refs))
    from webhook_service.logs import log_to_stderr
    from webhook_service.settings import reset_settings
    from webhook_service.wiring import services, use_services

    log_to_stderr()  # standard output is the banner (with the development token) alone
    reset_settings()
    use_services(None)
    return services()


@dataclass
class _Serving:
    """The routes, the queues' event sources and the schedules, running."""

    gateway: Gateway
    pollers: list[EventSource]
    schedulers: list[Scheduler]
    api_workers: WorkerFunctions | None = None

    @classmethod
    def start(cls, tpl: dict[str, Any], stack: aws.Stack, port: int, api_workers: int = 0) -> _Serving:
        functions = iam.functions_for(tpl, stack.refs, os.environ.get("DEVSTACK_CALLS_FILE"))
        schedule = os.environ.get("DEVSTACK_SCHEDULE_SECONDS")
        workers = WorkerFunctions(api_workers) if api_workers > 0 else None
        serving = cls(
            Gateway(template.routes(tpl), workers or functions, port),
            [EventSource(source, stack.refs[source.queue_logical_id]) for source in template.queue_sources(tpl)],
            [Scheduler(source, functions, float(schedule) if schedule else None) for source in template.schedules(tpl)],
            workers,
        )
        serving.gateway.start()
        for poller in serving.pollers:
            poller.start()
        for scheduler in serving.schedulers:
            scheduler.start()
        return serving

    def stop(self) -> None:
        for scheduler in self.schedulers:
            scheduler.stop()
        for poller in self.pollers:
            poller.stop()
        self.gateway.stop()
        if self.api_workers is not None:
            self.api_workers.close()


def _wait_for_a_stop() -> None:
    """Until Ctrl-C, SIGTERM or SIGHUP (unless nohup ignores it)."""
    stopping = threading.Event()
    for stop_signal in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(stop_signal) is not signal.SIG_IGN:  # nohup's choice stands
            signal.signal(stop_signal, lambda *_: stopping.set())
    try:
        while not stopping.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(name)s: %(message)s")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING" if args.quiet else "INFO")
    # A developer's routing change applies to the next delivery at once: the local stack's
    # functions read routing for every event (on AWS each process keeps it 5 s, design.md §15.2).
    os.environ.setdefault("ROUTING_CACHE_SECONDS", "0")
    try:
        state = persist.LocalState.open(args.data_dir, reset=args.reset) if args.data_dir else None
    except persist.StateError as exc:
        print(f"devstack: {exc}", file=sys.stderr)
        return 1

    moto = _local_aws(args.moto_port)
    endpoint = os.environ["AWS_ENDPOINT_URL"]
    tpl = template.load_template(Path(args.template))
    stack = aws.deploy(tpl, {"Stage": "dev", "AllowPrivateTargets": "true", "AwsEndpointUrl": endpoint})
    services = _services(tpl, stack)
    restored, ttl = None, persist.ttl_attribute(tpl)
    if state:
        try:
            now = dt.datetime.now(dt.UTC)
            restored = state.restore(services.store.table.client, stack.refs["Table"], services.lanes, ttl, now)
        except persist.StateError as exc:
            print(f"devstack: {exc}\n  `make dev-reset` (or --reset) starts afresh", file=sys.stderr)
            return 1
    saved_identity = state.read_identity() if state else None
    organisation, key_id, token = persist.seed(services.store, os.environ.get("DEV_TOKEN"), saved_identity)
    serving = _Serving.start(tpl, stack, args.port, args.api_workers)

    info = {
        "url": f"http://127.0.0.1:{serving.gateway.port}",
        "token": token,
        "organisation": organisation,
        "key": key_id,
        "aws_endpoint": endpoint,
        "table": stack.refs["Table"],
        "queue_url": stack.refs["DeliveryQueue"],
        "test_queue_url": stack.refs["TestQueue"],
        "slow_queue_url": stack.refs["SlowQueue"],
        "dead_letter_queue_url": stack.refs["DeliveryDeadLetterQueue"],
    }
    if args.info_file:  # whole or absent: whoever waits for it may read it the moment it appears
        persist.write_atomically(Path(args.info_file), lambda handle: json.dump(info, handle))
    if state:
        state.write_identity({**info, "stack": stack.name})
        client, table = services.store.table.client, stack.refs["Table"]
        state.start_saving(
            lambda: state.save_table(client, table, ttl),
            (lambda: moto.dynamodb_writes) if moto else None,
            float(os.environ.get("DEVSTACK_SAVE_SECONDS") or persist.SAVE_SECONDS),
        )
    print(banner(info, stack.name, state, restored), flush=True)

    _wait_for_a_stop()
    print("stopping", file=sys.stderr, flush=True)
    serving.stop()
    if state:
        saved = state.close()
        print(f"saved {saved} items to {state.folder}", file=sys.stderr, flush=True)
    if moto:
        moto.stop()
    return 0


def banner(
    info: dict[str, str], stack_name: str, state: persist.LocalState | None, restored: persist.Restored | None
) -> str:
    """What `make dev` prints: where things are, and the commands that work against them."""
    if state is None:
        kept = "nothing is kept after a stop (no --data-dir)"
    elif restored is None:
        kept = f"{state.folder} (new; `make dev-reset` starts afresh)"
    else:
        kept = (
            f"{state.folder}: {restored.items} items back, {restored.expired} expired,"
            f" {restored.requeued} jobs queued again (`make dev-reset` starts afresh)"
        )
    return f"""
  ricloud-webhooks local stack
  API            {info["url"]}
  token          {info["token"]}  (organisation {info["organisation"]}, key {info["key"]})
  kept in        {kept}

  watch deliveries   make listen    (a receiver on 127.0.0.1 that checks both signatures)
  curl               curl -H 'Authorization: Token {info["token"]}' {info["url"]}/configs/webhook
  ricloud client     export RICLOUD_URL={info["url"]}/ RICLOUD_TOKEN={info["token"]}
  operator CLI       export AWS_ENDPOINT_URL={info["aws_endpoint"]} \\
                       AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local AWS_DEFAULT_REGION={aws.REGION}
                     .venv/bin/ricloud-webhooks --stack {stack_name} publish-event \\
                       --organisation {info["organisation"]} --type session --action completed
  Ctrl-C stops everything.
devstack ready at {info["url"]}"""


if __name__ == "__main__":
    sys.exit(main())
