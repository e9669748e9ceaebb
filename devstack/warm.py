"""Imported once by the local stack's worker fork server (`devstack.workers.PRELOAD`): makes
the AWS clients the functions use, once, so that the service models botocore loads for them
(about 250 ms of CPU per process) are in the shared session every worker is forked with.

On Lambda each environment pays that at its cold start, on its own CPU; on this machine a
burst of new workers paid it on the two cores every organisation shares. A worker still
makes its own clients (from the warmed session, about 17 ms), with its own environment. The
session's credentials are the local stack's (`local`), resolved here once. Best effort:
without a region nothing is warmed.
"""

from __future__ import annotations

import contextlib

from webhook_service import clients

with contextlib.suppress(Exception):
    clients.client("dynamodb")
    clients.client("sqs")
