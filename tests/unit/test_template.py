"""The SAM template, read as data: what operating the service relies on is there."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from devstack.template import functions, load_template, queue_sources, routes

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = load_template()
RESOURCES: dict[str, Any] = TEMPLATE["Resources"]


def of_type(kind: str) -> dict[str, Any]:
    return {name: r for name, r in RESOURCES.items() if r["Type"] == kind}


def test_every_route_has_a_function_with_a_handler_module() -> None:
    for route in routes(TEMPLATE):
        assert (route.function.code_dir / "app.py").is_file(), route
        assert route.function.code_dir.parent == ROOT / "functions"


def test_every_function_folder_is_in_the_template_under_its_own_name() -> None:
    folders = {p.name for p in (ROOT / "functions").iterdir() if (p / "app.py").is_file()}
    in_template = {f.code_dir.name: f.logical_id for f in functions(TEMPLATE)}

    assert set(in_template) == folders
    for folder, logical_id in in_template.items():
        assert logical_id == "".join(part.title() for part in folder.split("_")) + "Function"


def test_routes_cover_the_spec_endpoints_once_each() -> None:
    keys = sorted(f"{r.method} {r.path}" for r in routes(TEMPLATE))

    assert len(keys) == len(set(keys))
    assert keys == sorted(
        [
            "ANY $default",
            "POST /configs/webhook",
            "GET /configs/webhook",
            "GET /configs/webhook/{id}",
            "POST /configs/webhook/{id}",
            "DELETE /configs/webhook/{id}",
            "POST /configs/webhook/{id}/test",
            "GET /tasks",
            "GET /tasks/{id}",
            "GET /events",
            "GET /events/{id}",
            "GET /key",
            "POST /keys/{id}",
            "GET /organisation",
            "POST /organisation",
        ]
    )


LANES = ("DeliveryQueue", "TestQueue", "SlowQueue")


@pytest.mark.parametrize("queue", LANES)
def test_delivery_lane_redrives_to_the_dead_letter_queue(queue: str) -> None:
    policy = RESOURCES[queue]["Properties"]["RedrivePolicy"]

    assert policy["deadLetterTargetArn"] == {"Fn::GetAtt": ["DeliveryDeadLetterQueue", "Arn"]}
    assert policy["maxReceiveCount"] == 5


def test_each_lane_is_consumed_by_the_deliver_function() -> None:
    sources = queue_sources(TEMPLATE)

    assert sorted(s.queue_logical_id for s in sources) == sorted(LANES)
    assert {s.function.logical_id for s in sources} == {"DeliverFunction"}


def test_queue_visibility_timeout_is_at_least_six_times_the_consumer_timeout() -> None:
    for source in queue_sources(TEMPLATE):
        timeout = RESOURCES[source.function.logical_id]["Properties"]["Timeout"]
        visibility = RESOURCES[source.queue_logical_id]["Properties"]["VisibilityTimeout"]

        assert visibility >= 6 * timeout


def test_consumer_reports_partial_batches_and_caps_its_concurrency() -> None:
    for source in queue_sources(TEMPLATE):
        assert source.report_failures
        assert source.batch_size == 10
        assert source.max_concurrency is not None
        assert source.max_concurrency >= 2


def test_tests_lane_does_not_wait_to_fill_a_batch() -> None:
    tests = RESOURCES["DeliverFunction"]["Properties"]["Events"]["Tests"]["Properties"]

    assert tests["Queue"] == {"Fn::GetAtt": ["TestQueue", "Arn"]}
    assert tests["MaximumBatchingWindowInSeconds"] == 0


def test_every_function_knows_every_lane() -> None:
    variables = TEMPLATE["Globals"]["Function"]["Environment"]["Variables"]

    assert variables["QUEUE_URL"] == {"Ref": "DeliveryQueue"}
    assert variables["TEST_QUEUE_URL"] == {"Ref": "TestQueue"}
    assert variables["SLOW_QUEUE_URL"] == {"Ref": "SlowQueue"}


@pytest.mark.parametrize(
    ("alarm", "metric"),
    [
        ("DeadLetterQueueAlarm", "ApproximateNumberOfMessagesVisible"),
        ("DeliveryBacklogAlarm", "ApproximateAgeOfOldestMessage"),
        ("TestBacklogAlarm", "ApproximateAgeOfOldestMessage"),
        ("SlowLaneBacklogAlarm", "ApproximateAgeOfOldestMessage"),
        ("DeliverFunctionErrorsAlarm", "Errors"),
        ("DeliverFunctionThrottlesAlarm", "Throttles"),
        ("ApiServerErrorRateAlarm", "5xx"),
        ("DeliveryFailureRateAlarm", "Deliveries"),
        ("OverdueEndedAlarm", "Overdue"),
    ],
)
def test_alarm_exists_watches_its_metric_and_notifies_the_optional_topic(alarm: str, metric: str) -> None:
    props = of_type("AWS::CloudWatch::Alarm")[alarm]["Properties"]
    watched = [props.get("MetricName")] + [
        m["MetricStat"]["Metric"]["MetricName"] for m in props.get("Metrics", []) if "MetricStat" in m
    ]

    assert metric in watched
    assert props["AlarmActions"] == {"Fn::If": ["HasAlarmTopic", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]}
    assert props["TreatMissingData"] == "notBreaching"


def test_dead_letter_alarm_watches_the_dead_letter_queue() -> None:
    props = RESOURCES["DeadLetterQueueAlarm"]["Properties"]

    assert props["Dimensions"][0]["Value"] == {"Fn::GetAtt": ["DeliveryDeadLetterQueue", "QueueName"]}
    assert props["Threshold"] == 1


def test_table_keeps_its_data_safe() -> None:
    table = RESOURCES["Table"]
    props = table["Properties"]

    assert table["DeletionPolicy"] == table["UpdateReplacePolicy"] == "Retain"
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert props["SSESpecification"]["SSEEnabled"] is True
    assert props["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}


def test_functions_log_to_a_log_group_with_retention_and_trace_without_the_sdk() -> None:
    globals_ = TEMPLATE["Globals"]["Function"]

    assert globals_["LoggingConfig"]["LogGroup"] == {"Ref": "FunctionLogGroup"}
    assert RESOURCES["FunctionLogGroup"]["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}
    assert RESOURCES["ApiAccessLogGroup"]["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}
    assert globals_["Tracing"] == "Active"
    requirements = (ROOT / "layers" / "webhook_service" / "requirements.txt").read_text()
    assert "xray" not in requirements.lower()


def test_deployed_default_keeps_the_address_guard_on() -> None:
    assert TEMPLATE["Parameters"]["AllowPrivateTargets"]["Default"] == "false"
    env = TEMPLATE["Globals"]["Function"]["Environment"]["Variables"]
    assert env["ALLOW_PRIVATE_TARGETS"] == {"Ref": "AllowPrivateTargets"}


def test_api_is_throttled_and_access_logged() -> None:
    props = RESOURCES["HttpApi"]["Properties"]

    assert props["DefaultRouteSettings"]["ThrottlingRateLimit"] > 0
    assert props["DefaultRouteSettings"]["ThrottlingBurstLimit"] > 0
    assert props["AccessLogSettings"]["DestinationArn"] == {"Fn::GetAtt": ["ApiAccessLogGroup", "Arn"]}
    assert "authorization" not in props["AccessLogSettings"]["Format"].lower()


def test_dashboard_body_is_json_and_shows_every_service_metric() -> None:
    body, _ = RESOURCES["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    dashboard = json.loads(re.sub(r"\$\{[^}]+\}", "x", body))
    text = json.dumps(dashboard)

    for metric in ("ConfigsCreated", "TestsQueued", "QueueSendFailures", "Deliveries", "DeliveryDuration"):
        assert metric in text
    assert "EventsFailed" in text


def test_outputs_name_the_api_table_queues_and_dashboard() -> None:
    assert set(TEMPLATE["Outputs"]) >= {
        "ApiUrl",
        "TableName",
        "DeliveryQueueUrl",
        "TestQueueUrl",
        "SlowQueueUrl",
        "DeliveryDeadLetterQueueUrl",
        "DashboardUrl",
        "FunctionLogGroupName",
    }


def test_the_sweep_runs_on_a_schedule_over_a_sparse_index_of_what_has_not_ended() -> None:
    sweep = RESOURCES["SweepFunction"]["Properties"]
    (event,) = sweep["Events"].values()
    indexes = {i["IndexName"]: i for i in RESOURCES["Table"]["Properties"]["GlobalSecondaryIndexes"]}

    assert event["Type"] == "Schedule"
    assert event["Properties"]["Schedule"] == "rate(10 minutes)"
    # Long after SQS gives a job up: visibility timeout x receives before the dead-letter queue.
    queue = RESOURCES["DeliveryQueue"]["Properties"]
    sqs_gives_up = queue["VisibilityTimeout"] * queue["RedrivePolicy"]["maxReceiveCount"]
    assert float(sweep["Environment"]["Variables"]["SWEEP_AFTER_MINUTES"]) * 60 > sqs_gives_up
    assert [k["AttributeName"] for k in indexes["ByOpen"]["KeySchema"]] == ["OpenPK", "DueSK"]
