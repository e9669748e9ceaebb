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
import errno
import json
import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from devstack import aws, iam, output, persist, template
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
    parser.add_argument(
        "--quiet", action="store_true", help="one line a request and warnings (make dev's default; VERBOSE=1 drops it)"
    )
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


def _services(tpl: dict[str, Any], stack: aws.Stack, quiet: bool) -> ProcessServices:
    """The service's objects as the functions see them, after the functions' environment."""
    for function in template.functions(tpl):
        apply_environment(template.resolve(function.environment, stack.refs))
    if quiet:
        output.quiet_functions()
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
        # The schedules and event sources stop side by side: each may wait out a long poll or
        # a running invocation, and one after another those waits added up (6 s a stop).
        stops: list[Callable[[], None]] = [part.stop for part in self.schedulers] + [part.stop for part in self.pollers]
        stopping = [threading.Thread(target=stop) for stop in stops]
        for thread in stopping:
            thread.start()
        for thread in stopping:
            thread.join()
        self.gateway.stop()
        if self.api_workers is not None:
            self.api_workers.close()


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _wait_for_a_stop() -> None:
    """Until Ctrl-C, SIGTERM or SIGHUP (unless nohup ignores it). Then those signals are
    ignored: a second Ctrl-C must not cut the save short (kill -9 still stops it)."""
    stopping = threading.Event()
    for stop_signal in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(stop_signal) is not signal.SIG_IGN:  # nohup's choice stands
            signal.signal(stop_signal, lambda *_: stopping.set())
    try:
        while not stopping.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    for stop_signal in _STOP_SIGNALS:
        signal.signal(stop_signal, signal.SIG_IGN)


PORT_IN_USE_EXIT = 98  # the exit status when the API's port is taken (Linux's EADDRINUSE)


class PortInUseError(Exception):
    """The API's port is taken: said with the port, and how to choose another."""

    def __init__(self, port: int) -> None:
        super().__init__(
            f"port {port} on 127.0.0.1 is in use (another make dev, or another program):"
            f" PORT={port + 1} make dev serves on another"
        )


def _check_port_is_free(port: int) -> None:
    """Before the half minute of starting: the gateway binds as this does (SO_REUSEADDR)."""
    if not port:
        return
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            raise PortInUseError(port) from None


def main(argv: list[str] | None = None) -> int:
    output.guard_streams()
    args = _arguments(argv)
    output.configure()
    try:
        return _run(args)
    except PortInUseError as exc:
        output.say(f"devstack: {exc}")
        return PORT_IN_USE_EXIT
    except KeyboardInterrupt:  # stopped while starting: nothing was served, nothing to save
        output.say("devstack: stopped before it was ready")
        return 130


def _run(args: argparse.Namespace) -> int:
    # A developer's routing change applies to the next delivery at once: the local stack's
    # functions read routing for every event (on AWS each process keeps it 5 s, design.md §15.2).
    os.environ.setdefault("ROUTING_CACHE_SECONDS", "0")
    _check_port_is_free(args.port)
    try:
        state = persist.LocalState.open(args.data_dir, reset=args.reset) if args.data_dir else None
    except persist.StateError as exc:
        output.say(f"devstack: {exc}")
        return 1

    moto = _local_aws(args.moto_port)
    endpoint = os.environ["AWS_ENDPOINT_URL"]
    tpl = template.load_template(Path(args.template))
    stack = aws.deploy(tpl, {"Stage": "dev", "AllowPrivateTargets": "true", "AwsEndpointUrl": endpoint})
    services = _services(tpl, stack, args.quiet)
    restored, ttl = None, persist.ttl_attribute(tpl)
    if state:
        try:
            now = dt.datetime.now(dt.UTC)
            restored = state.restore(services.store.table.client, stack.refs["Table"], services.lanes, ttl, now)
        except persist.StateError as exc:
            output.say(f"devstack: {exc}\n  `make dev-reset` (or --reset) starts afresh")
            return 1
    saved_identity = state.read_identity() if state else None
    organisation, key_id, token = persist.seed(services.store, os.environ.get("DEV_TOKEN"), saved_identity)
    try:
        serving = _Serving.start(tpl, stack, args.port, args.api_workers)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:  # taken since the check at the start
            raise PortInUseError(args.port) from None
        raise

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
    print(banner(info, state, restored), flush=True)

    _wait_for_a_stop()
    output.say("stopping")  # to wherever the output still goes (devstack.output)
    serving.stop()
    if state:
        saved = state.close()
        output.say(f"saved {saved} items to {state.folder}")
    if moto:
        moto.stop()
    return 0


def banner(info: dict[str, str], state: persist.LocalState | None, restored: persist.Restored | None) -> str:
    """What `make dev` prints: where things are, and the commands that work against them as
    written (the shell variables and the operator command line read what was saved)."""
    url, token = info["url"], info["token"]
    if state is None:
        kept = "nothing is kept after a stop (no --data-dir)"
    elif restored is None:
        kept = f"{state.folder} (new; `make dev-reset` starts afresh)"
    else:
        kept = (
            f"{state.folder}: {restored.items} items back, {restored.expired} expired,"
            f" {restored.requeued} jobs queued again (`make dev-reset` starts afresh)"
        )
    head = f"""
  ricloud-webhooks local stack
  API            {url}    (the console: {url}/console)
  token          {token}  (organisation {info["organisation"]}, key {info["key"]})
  kept in        {kept}
"""
    if state is None:  # nothing saved: the commands name everything themselves
        commands = f"""
  ricloud client     export RICLOUD_URL={url}/ RICLOUD_TOKEN={token}
  operator CLI       AWS_ENDPOINT_URL={info["aws_endpoint"]} AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local \\
                       AWS_DEFAULT_REGION={aws.REGION} .venv/bin/ricloud-webhooks --table {info["table"]} \\
                       --queue-url {info["queue_url"]} publish-event --organisation {info["organisation"]} \\
                       --type session --action completed
"""
    else:  # `make listen`, `make env` and the operator CLI read the folder (DEVSTACK_DATA names another)
        folder = "" if state.folder == Path(persist.DEFAULT_FOLDER).resolve() else f"DEVSTACK_DATA={state.folder} "
        commands = f"""
  in another terminal, from this folder:
  watch deliveries   {folder}make listen            (a receiver on 127.0.0.1 that checks both signatures)
  shell variables    eval "$({folder}make -s env)"  (API, T, ORG, KEY, and ID: make listen's config)
  curl               curl -s $API/configs/webhook -H "Authorization: Token $T"
  operator CLI       {folder}.venv/bin/ricloud-webhooks publish-event --organisation $ORG \\
                       --type session --action completed
"""
    stop = "what you made is saved first" if state else "nothing is kept"
    return f"""{head}{commands}  Ctrl-C stops everything ({stop}).
devstack ready at {url}"""


if __name__ == "__main__":
    sys.exit(main())
