"""Metrics, as CloudWatch embedded metric format (EMF) lines written by Powertools.

Namespace `RicloudWebhooks` (POWERTOOLS_METRICS_NAMESPACE overrides it); every metric has
the dimension `service=webhooks`, and `Deliveries` also `kind` and `outcome`. The metric
set is documented in docs/operations.md; this module is the one list of names.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit, single_metric

NAMESPACE = "RicloudWebhooks"
SERVICE = "webhooks"

CONFIGS_CREATED = "ConfigsCreated"
TESTS_QUEUED = "TestsQueued"
QUEUE_SEND_FAILURES = "QueueSendFailures"
EVENTS_PUBLISHED = "EventsPublished"
RESENDS = "Resends"  # events re-opened by POST /events/{id}/resend
SECRET_ROTATIONS = "SecretRotations"  # noqa: S105 - a metric name: rotations that made a new secret
DELIVERIES = "Deliveries"  # dimensions kind (test, event) and outcome
DELIVERY_DURATION = "DeliveryDuration"  # milliseconds, one value per request sent to a receiver
EVENTS_FAILED = "EventsFailed"  # events that ended failed (after their last attempt, or unconfigured)
OVERDUE = "Overdue"  # dimensions kind (task, event) and action (requeued, failed): the sweep's work
# Dimension `function` (its name): an API answer 5xx, or a delivery job that raised. With
# Lambda's own Errors, what each function's rollback alarm counts during a deployment.
FAILURES = "Failures"

metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", NAMESPACE), service=SERVICE)


def count(name: str, value: int = 1) -> None:
    """Add to a count of this invocation; written by `flush()`."""
    metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)


def durations(name: str, milliseconds: Iterable[int]) -> None:
    for value in milliseconds:
        metrics.add_metric(name=name, unit=MetricUnit.Milliseconds, value=value)


def outcomes(counts: Counter[tuple[str, str]]) -> None:
    """Write `Deliveries` now, one line per (kind, outcome), each with its count."""
    _by_kind(DELIVERIES, "outcome", counts)


def overdue(counts: Counter[tuple[str, str]]) -> None:
    """Write `Overdue` now, one line per (kind, action), each with its count."""
    _by_kind(OVERDUE, "action", counts)


def _disabled() -> bool:
    """Whether metrics are off (POWERTOOLS_METRICS_DISABLED, read as `Metrics` reads it):
    Powertools' `single_metric` writes its line whatever the setting says (make dev's quiet
    default turns metrics off)."""
    from aws_lambda_powertools.metrics.functions import is_metrics_disabled

    return bool(is_metrics_disabled())


def _by_kind(name: str, dimension: str, counts: Counter[tuple[str, str]]) -> None:
    if _disabled():
        return
    namespace = metrics.namespace or NAMESPACE
    for (kind, value_name), value in sorted(counts.items()):
        with single_metric(name=name, unit=MetricUnit.Count, value=value, namespace=namespace) as metric:
            metric.add_dimension(name="service", value=SERVICE)
            metric.add_dimension(name="kind", value=kind)
            metric.add_dimension(name=dimension, value=value_name)


def emit_now(name: str, value: int = 1) -> None:
    """Write one count at once, for code that runs outside our handlers (events.publish)."""
    if _disabled():
        return
    namespace = metrics.namespace or NAMESPACE
    with single_metric(name=name, unit=MetricUnit.Count, value=value, namespace=namespace) as metric:
        metric.add_dimension(name="service", value=SERVICE)


def failure() -> None:
    """Write one `Failures` count for this function at once (safe from any thread: it is
    not part of the invocation's metric set)."""
    namespace = metrics.namespace or NAMESPACE
    with single_metric(name=FAILURES, unit=MetricUnit.Count, value=1, namespace=namespace) as metric:
        metric.add_dimension(name="service", value=SERVICE)
        metric.add_dimension(name="function", value=os.environ.get("AWS_LAMBDA_FUNCTION_NAME") or "local")


def flush() -> None:
    """Write this invocation's metrics, if it has any, as one EMF line."""
    if metrics.metric_set:
        metrics.flush_metrics()
