"""`python -m devstack` (what `make dev` runs): the whole service on 127.0.0.1.

Starts moto (unless AWS_ENDPOINT_URL names another local AWS), creates the template's
table and queues through CloudFormation, serves every HttpApi route of the template on
PORT (default 3000), runs every SQS event source of the template (up to its
MaximumConcurrency invocations at once, each in a worker process), runs its Schedule
event sources at their rate (DEVSTACK_SCHEDULE_SECONDS overrides it), and creates a
development organisation and key (DEV_TOKEN, when set, is that key's token).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading

from devstack import aws, template
from devstack.gateway import Gateway
from devstack.poller import EventSource
from devstack.runtime import Functions, apply_environment
from devstack.scheduler import Scheduler

log = logging.getLogger("devstack")


def seed(dev_token: str | None) -> tuple[str, str, str]:
    """The development organisation and key: (organisation id, key id, token)."""
    from webhook_service import admin
    from webhook_service.service import get_services

    store = get_services().store
    if dev_token:
        existing = admin.find_key_by_token(store, dev_token)
        if existing:
            return existing["organisation"], existing["id"], dev_token
    organisation = admin.create_organisation(store, "Development")
    key, token = admin.create_key(store, organisation["id"], token=dev_token)
    return organisation["id"], key["id"], token


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "3000")))
    parser.add_argument("--moto-port", type=int, default=int(os.environ.get("MOTO_PORT", "0")))
    parser.add_argument("--quiet", action="store_true", help="log warnings only")
    parser.add_argument("--info-file", help="write the stack's URL, token and local AWS as JSON here when ready")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(name)s: %(message)s")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING" if args.quiet else "INFO")

    moto = None
    if not os.environ.get("AWS_ENDPOINT_URL"):
        moto = aws.EmbeddedMoto(args.moto_port)
        moto.start()
        aws.use_local_credentials(moto.endpoint)
    else:
        aws.use_local_credentials(os.environ["AWS_ENDPOINT_URL"])
    tpl = template.load_template()
    stack = aws.deploy(tpl, {"Stage": "dev", "AllowPrivateTargets": "true"})
    for function in template.functions(tpl):
        apply_environment(template.resolve(function.environment, stack.refs))

    from webhook_service.logs import log_to_stderr
    from webhook_service.service import set_services
    from webhook_service.settings import reset_settings

    log_to_stderr()  # standard output is the banner (with the development token) alone
    reset_settings()
    set_services(None)
    organisation, key_id, token = seed(os.environ.get("DEV_TOKEN"))

    functions = Functions()
    gateway = Gateway(template.routes(tpl), functions, args.port)
    pollers = [EventSource(source, stack.refs[source.queue_logical_id]) for source in template.queue_sources(tpl)]
    period = float(os.environ["DEVSTACK_SCHEDULE_SECONDS"]) if os.environ.get("DEVSTACK_SCHEDULE_SECONDS") else None
    schedulers = [Scheduler(source, functions, period) for source in template.schedules(tpl)]
    gateway.start()
    for poller in pollers:
        poller.start()
    for scheduler in schedulers:
        scheduler.start()

    url = f"http://127.0.0.1:{gateway.port}"
    if args.info_file:
        info = {
            "url": url,
            "token": token,
            "organisation": organisation,
            "key": key_id,
            "aws_endpoint": os.environ["AWS_ENDPOINT_URL"],
            "table": stack.refs["Table"],
            "queue_url": stack.refs["DeliveryQueue"],
            "test_queue_url": stack.refs["TestQueue"],
            "slow_queue_url": stack.refs["SlowQueue"],
            "dead_letter_queue_url": stack.refs["DeliveryDeadLetterQueue"],
        }
        with open(args.info_file, "w", encoding="utf-8") as handle:
            json.dump(info, handle)
    print(
        f"""
  ricloud-webhooks local stack
  API            {url}
  local AWS      {os.environ["AWS_ENDPOINT_URL"]}  (table {stack.refs["Table"]})
  organisation   {organisation}
  key            {key_id}
  token          {token}

  curl -H 'Authorization: Token {token}' {url}/configs/webhook
  export RICLOUD_URL={url}/ RICLOUD_TOKEN={token}
  operator CLI:  AWS_ENDPOINT_URL={os.environ["AWS_ENDPOINT_URL"]} TABLE_NAME={stack.refs["Table"]} \\
                 AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local AWS_DEFAULT_REGION={aws.REGION} \\
                 python -m webhook_service create-organisation --name Other
  Ctrl-C stops everything.
devstack ready at {url}""",
        flush=True,
    )

    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    try:
        while not stopping.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    print("stopping", file=sys.stderr, flush=True)
    for scheduler in schedulers:
        scheduler.stop()
    for poller in pollers:
        poller.stop()
    gateway.stop()
    if moto:
        moto.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
