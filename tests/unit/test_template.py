"""The SAM template, read as data: what operating the service relies on is there."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any

import pytest

from devstack.template import functions, load_template, queue_sources, rate_seconds, routes

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
            "GET /events/{id}/attempts",
            "POST /events/{id}/resend",
            "POST /configs/webhook/{id}/rotate_secret",
            "POST /configs/webhook/{id}/recover",
            "GET /key",
            "POST /keys/{id}",
            "GET /organisation",
            "POST /organisation",
            "GET /console",
            "GET /console/{proxy+}",
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


ALARM_DESTINATION = [{"Fn::If": ["HasAlarmTopicArn", {"Ref": "AlarmTopicArn"}, {"Ref": "AlarmTopic"}]}]


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
        ("SweepFunctionErrorsAlarm", "Errors"),
        ("SweepHeartbeatAlarm", "Invocations"),
        ("TableThrottlesAlarm", "ThrottledRequests"),
        ("TableSystemErrorsAlarm", "SystemErrors"),
        ("ApiThrottledRateAlarm", "ApiThrottled"),
        ("ApiLatencyAlarm", "Latency"),
    ],
)
def test_alarm_exists_watches_its_metric_and_notifies_the_given_topic_or_the_stacks_own(
    alarm: str, metric: str
) -> None:
    props = of_type("AWS::CloudWatch::Alarm")[alarm]["Properties"]
    watched = [props.get("MetricName")] + [
        m["MetricStat"]["Metric"]["MetricName"] for m in props.get("Metrics", []) if "MetricStat" in m
    ]

    assert metric in watched
    assert props["AlarmActions"] == props["OKActions"] == ALARM_DESTINATION
    assert props["TreatMissingData"] == ("breaching" if alarm == "SweepHeartbeatAlarm" else "notBreaching")


def rollback_alarms() -> dict[str, Any]:
    return {name: a for name, a in of_type("AWS::CloudWatch::Alarm").items() if name.endswith("RollbackAlarm")}


def test_every_alarm_is_in_the_tests_above_and_in_the_runbook() -> None:
    runbook = (ROOT / "docs" / "operations.md").read_text()
    operational = set(of_type("AWS::CloudWatch::Alarm")) - set(rollback_alarms())
    for alarm in operational:
        assert f"| `{alarm}` |" in runbook, alarm
    assert len(operational) == 15
    assert "| `<Function>RollbackAlarm` |" in runbook  # one per function: a row for them all


def test_every_function_has_its_own_rollback_alarm_which_acts_through_codedeploy_alone() -> None:
    assert sorted(rollback_alarms()) == sorted(f"{f.logical_id}RollbackAlarm" for f in functions(TEMPLATE))
    for function in functions(TEMPLATE):
        props = RESOURCES[function.logical_id]["Properties"]
        assert props["DeploymentPreference"] == {"Alarms": [{"Ref": f"{function.logical_id}RollbackAlarm"}]}
    for name, alarm in rollback_alarms().items():
        # Any failure outside a deployment fires it too: it pages no one (the 5xx and error
        # alarms do); during a deployment CodeDeploy acts on it.
        assert "AlarmActions" not in alarm["Properties"], name


def test_gradual_deployments_are_set_once_for_every_function() -> None:
    globals_ = TEMPLATE["Globals"]["Function"]

    assert globals_["AutoPublishAlias"] == "live"
    assert globals_["DeploymentPreference"]["Type"] == {"Ref": "DeploymentStrategy"}
    assert TEMPLATE["Parameters"]["DeploymentStrategy"]["Default"].startswith("Canary")


# The operator's commands (the runbook's restore and copy, the layout migration) are run by
# hand and watched by whoever runs them: the alarms are for the functions' own traffic.
OPERATOR_MODULES = {"cli.py", "runbook.py", "migration.py"}
DYNAMODB_CALL = re.compile(
    r"(?:client\.|\")(get_item|batch_get_item|put_item|update_item|delete_item|query|scan|"
    r"batch_write_item|transact_write_items|transact_get_items)(?:\(|\")"
)


def dynamodb_operations_the_code_calls() -> set[str]:
    """Every DynamoDB operation the functions' code calls, by its API name: a call on a client
    (`client.query(`) or an operation named to the table's one writer (`write("put_item", ...)`)."""
    calls = set()
    for path in (ROOT / "layers" / "webhook_service" / "webhook_service").rglob("*.py"):
        if path.name not in OPERATOR_MODULES:
            calls |= set(DYNAMODB_CALL.findall(path.read_text()))
    return {"".join(part.title() for part in call.split("_")) for call in calls}


@pytest.mark.parametrize("alarm", ["TableThrottlesAlarm", "TableSystemErrorsAlarm"])
def test_the_table_alarms_count_every_operation_the_code_calls(alarm: str) -> None:
    props = RESOURCES[alarm]["Properties"]
    watched = {
        next(d["Value"] for d in m["MetricStat"]["Metric"]["Dimensions"] if d["Name"] == "Operation")
        for m in props["Metrics"]
        if "MetricStat" in m
    }
    (total,) = [m for m in props["Metrics"] if m.get("ReturnData", True)]

    assert watched == dynamodb_operations_the_code_calls()
    assert len(props["Metrics"]) <= 10  # CloudWatch's limit for one alarm
    assert metric_math(total["Expression"], dict.fromkeys(m["Id"] for m in props["Metrics"] if "MetricStat" in m)) == 0
    assert (props["DatapointsToAlarm"], props["EvaluationPeriods"]) == (2, 3)


@pytest.mark.parametrize(
    ("requests", "throttled", "fires"),
    [(100, 6, True), (100, 5, False), (19, 19, False), (20, 2, True), (1000, None, False), (None, 3, False)],
)
def test_the_429_alarm_fires_over_5_percent_of_at_least_20_requests(
    requests: int | None, throttled: int | None, fires: bool
) -> None:
    assert breaching("ApiThrottledRateAlarm", {"requests": requests, "throttled": throttled}) is fires


def test_the_429s_are_counted_from_the_access_log_that_records_every_answer() -> None:
    metric = RESOURCES["ApiThrottledAnswersMetric"]["Properties"]

    assert metric["LogGroupName"] == {"Ref": "ApiAccessLogGroup"}
    assert metric["FilterPattern"] == '{ $.status = "429" }'
    assert '"status":"$context.status"' in RESOURCES["HttpApi"]["Properties"]["AccessLogSettings"]["Format"]
    (transform,) = metric["MetricTransformations"]
    assert (transform["MetricNamespace"], transform["MetricName"]) == ("RicloudWebhooks", "ApiThrottled")


def test_the_latency_alarm_is_the_p99_and_ignores_periods_too_small_for_one() -> None:
    props = RESOURCES["ApiLatencyAlarm"]["Properties"]

    assert (props["ExtendedStatistic"], props["EvaluateLowSampleCountPercentile"]) == ("p99", "ignore")
    assert props["Threshold"] == 2500


def test_dead_letter_alarm_watches_the_dead_letter_queue() -> None:
    props = RESOURCES["DeadLetterQueueAlarm"]["Properties"]

    assert props["Dimensions"][0]["Value"] == {"Fn::GetAtt": ["DeliveryDeadLetterQueue", "QueueName"]}
    assert props["Threshold"] == 1


def test_table_keeps_its_data_safe() -> None:
    table = RESOURCES["Table"]
    props = table["Properties"]

    assert table["DeletionPolicy"] == table["UpdateReplacePolicy"] == "Retain"
    assert props["DeletionProtectionEnabled"] is True
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
    for metric in ("ThrottledRequests", "SystemErrors", "ApiThrottled", '"p99"'):  # what the newer alarms watch
        assert metric in text, metric


def test_outputs_name_the_api_table_queues_alarm_topic_and_dashboard() -> None:
    outputs = TEMPLATE["Outputs"]

    assert set(outputs) >= {
        "ApiUrl",
        "TableName",
        "DeliveryQueueUrl",
        "DeliveryQueueArn",
        "TestQueueUrl",
        "SlowQueueUrl",
        "TestQueueArn",
        "SlowQueueArn",
        "DeliveryDeadLetterQueueUrl",
        "DeliveryDeadLetterQueueArn",
        "AlarmNotificationTopicArn",
        "DashboardUrl",
        "FunctionLogGroupName",
    }
    # What the redrive runbook (docs/operations.md) passes to start-message-move-task.
    assert outputs["DeliveryQueueArn"]["Value"] == {"Fn::GetAtt": ["DeliveryQueue", "Arn"]}
    assert outputs["DeliveryDeadLetterQueueArn"]["Value"] == {"Fn::GetAtt": ["DeliveryDeadLetterQueue", "Arn"]}
    assert outputs["AlarmNotificationTopicArn"]["Value"] == ALARM_DESTINATION[0]


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


# -- conditions, rules and alarm math, evaluated ------------------------------------------

PARAMETER_DEFAULTS = {name: str(p.get("Default", "")) for name, p in TEMPLATE["Parameters"].items()}


def holds(condition: Any, parameters: dict[str, str]) -> Any:
    """Evaluate a CloudFormation condition (or rule) expression for the given parameters."""
    values = {**PARAMETER_DEFAULTS, **parameters}
    if not isinstance(condition, dict):
        return condition
    ((name, args),) = condition.items()
    if name == "Ref":
        return values[args]
    if name == "Condition":
        return holds(TEMPLATE["Conditions"][args], parameters)
    evaluated = [holds(a, parameters) for a in args]
    if name == "Fn::Equals":
        return str(evaluated[0]) == str(evaluated[1])
    if name == "Fn::Not":
        return not evaluated[0]
    if name == "Fn::And":
        return all(evaluated)
    if name == "Fn::Or":
        return any(evaluated)
    raise AssertionError(f"no evaluator for {name}")


def refused_by(parameters: dict[str, str]) -> list[str]:
    """The template rules that refuse a stack with these parameters."""
    refused = []
    for name, rule in TEMPLATE["Rules"].items():
        if "RuleCondition" in rule and not holds(rule["RuleCondition"], parameters):
            continue
        if not all(holds(a["Assert"], parameters) for a in rule["Assertions"]):
            refused.append(name)
    return refused


@pytest.mark.parametrize(
    ("parameters", "refused"),
    [
        (
            {"Stage": "prod", "AllowPrivateTargets": "true", "AlarmEmail": "ops@example.com"},
            ["ProdKeepsTheAddressGuard"],
        ),
        ({"Stage": "prod", "AllowPrivateTargets": "false"}, ["ProdAlarmsReachSomeone"]),
        ({"Stage": "prod", "AlarmEmail": "ops@example.com"}, []),
        ({"Stage": "prod", "AlarmTopicArn": "arn:aws:sns:eu-west-1:111122223333:oncall"}, []),
        ({"Stage": "dev", "AllowPrivateTargets": "true"}, []),
        ({"Stage": "dev"}, []),
        (
            {"Stage": "dev", "AlarmTopicArn": "arn:aws:sns:eu-west-1:111122223333:oncall", "AlarmEmail": "a@b.example"},
            ["OneAlarmDestination"],
        ),
        (
            {"Stage": "prod", "AlarmEmail": "ops@example.com", "AwsEndpointUrl": "http://127.0.0.1:4566"},
            ["ProdCallsAwsItself"],
        ),
        ({"Stage": "dev", "AwsEndpointUrl": "http://host.docker.internal:4566"}, []),  # make sam-local's
    ],
)
def test_rules_refuse_a_prod_stack_without_the_guard_or_an_alarm_destination(
    parameters: dict[str, str], refused: list[str]
) -> None:
    assert refused_by(parameters) == refused


@pytest.mark.parametrize(
    ("parameters", "topic_made", "email_subscribed"),
    [
        ({}, True, False),
        ({"AlarmEmail": "ops@example.com"}, True, True),
        ({"AlarmTopicArn": "arn:aws:sns:eu-west-1:111122223333:oncall"}, False, False),
    ],
)
def test_the_stack_makes_its_own_alarm_topic_unless_one_is_given(
    parameters: dict[str, str], topic_made: bool, email_subscribed: bool
) -> None:
    topic, subscription = RESOURCES["AlarmTopic"], RESOURCES["AlarmEmailSubscription"]

    assert holds(TEMPLATE["Conditions"][topic["Condition"]], parameters) is topic_made
    assert holds(TEMPLATE["Conditions"][subscription["Condition"]], parameters) is email_subscribed
    assert holds(TEMPLATE["Conditions"]["HasAlarmTopicArn"], parameters) is not topic_made
    assert subscription["Properties"] == {
        "TopicArn": {"Ref": "AlarmTopic"},
        "Protocol": "email",
        "Endpoint": {"Ref": "AlarmEmail"},
    }


@pytest.mark.parametrize(
    ("value", "accepted"), [("", True), ("ops@example.com", True), ("ops", False), ("a b@c.d", False)]
)
def test_the_alarm_email_parameter_takes_an_address_or_nothing(value: str, accepted: bool) -> None:
    pattern = TEMPLATE["Parameters"]["AlarmEmail"]["AllowedPattern"]

    assert (re.fullmatch(pattern, value) is not None) is accepted


_OPERATORS: dict[type, Any] = {
    ast.Add: float.__add__,
    ast.Sub: float.__sub__,
    ast.Mult: float.__mul__,
    ast.Div: float.__truediv__,
    ast.GtE: float.__ge__,
    ast.Gt: float.__gt__,
    ast.LtE: float.__le__,
    ast.Lt: float.__lt__,
}


def metric_math(expression: str, series: dict[str, float | None]) -> float | None:
    """One datapoint of a CloudWatch metric math expression (IF, FILL, arithmetic,
    comparisons); None is a missing datapoint, which propagates as CloudWatch's does."""

    def both(operator: ast.AST, left: ast.AST, right: ast.AST) -> Any:
        a, b = value(left), value(right)
        return None if a is None or b is None else _OPERATORS[type(operator)](float(a), float(b))

    def call(name: str, args: list[ast.expr]) -> Any:
        if name == "FILL":
            found = value(args[0])
            return value(args[1]) if found is None else found
        condition = value(args[0])  # IF
        return None if condition is None else value(args[1] if condition else args[2])

    def value(node: ast.AST) -> Any:
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name):
            return series[node.id]
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("FILL", "IF"):
            return call(node.func.id, node.args)
        if isinstance(node, ast.BinOp):
            return both(node.op, node.left, node.right)
        if isinstance(node, ast.Compare) and len(node.ops) == 1:
            return both(node.ops[0], node.left, node.comparators[0])
        raise AssertionError(f"no evaluator for {ast.dump(node)}")

    result = value(ast.parse(" ".join(expression.split()), mode="eval").body)
    return None if result is None else float(result)


def breaching(alarm: str, series: dict[str, float | None]) -> bool:
    props = RESOURCES[alarm]["Properties"]
    (returned,) = [m for m in props["Metrics"] if m.get("ReturnData", True)]
    point = metric_math(returned["Expression"], series)
    assert props["ComparisonOperator"] == "GreaterThanThreshold"
    return point is not None and point > props["Threshold"]


@pytest.mark.parametrize(
    ("requests", "errors", "fires"),
    [
        (1, 1, True),  # a total outage at night: one request in five minutes, and it failed
        (3, 3, True),
        (4, 2, True),  # half of a few requests
        (10, 1, False),  # one stray 500 among a few requests
        (19, 0, False),
        (100, 2, True),  # over 1% at 20 requests or more
        (100, 1, False),
        (5000, 40, False),
        (5000, 60, True),
        (20, None, False),  # no 5xx datapoint: none failed
    ],
)
def test_the_5xx_alarm_fires_on_a_total_outage_at_any_traffic_and_on_1_percent_at_20_requests(
    requests: int, errors: int | None, fires: bool
) -> None:
    assert breaching("ApiServerErrorRateAlarm", {"requests": requests, "errors": errors}) is fires


def test_the_5xx_alarm_needs_two_bad_periods_of_three_and_no_traffic_is_not_an_outage() -> None:
    props = RESOURCES["ApiServerErrorRateAlarm"]["Properties"]

    assert (props["DatapointsToAlarm"], props["EvaluationPeriods"]) == (2, 3)
    assert {m["MetricStat"]["Period"] for m in props["Metrics"] if "MetricStat" in m} == {300}
    assert not breaching("ApiServerErrorRateAlarm", {"requests": None, "errors": None})


def test_the_deliver_errors_alarm_waits_for_two_bad_periods_of_three() -> None:
    props = RESOURCES["DeliverFunctionErrorsAlarm"]["Properties"]

    assert (props["DatapointsToAlarm"], props["EvaluationPeriods"], props["Period"]) == (2, 3, 300)


def test_the_sweep_runs_one_at_a_time_and_is_not_retried_by_lambda() -> None:
    sweep = RESOURCES["SweepFunction"]["Properties"]
    (event,) = sweep["Events"].values()
    period = rate_seconds(event["Properties"]["Schedule"])

    assert sweep["ReservedConcurrentExecutions"] == 1
    assert sweep["EventInvokeConfig"]["MaximumRetryAttempts"] == 0
    # A run held back (throttled behind a slow one) is dropped before the next one is due.
    assert 60 <= sweep["EventInvokeConfig"]["MaximumEventAgeInSeconds"] < period


def test_the_sweep_is_watched_for_errors_and_for_not_running() -> None:
    (event,) = RESOURCES["SweepFunction"]["Properties"]["Events"].values()
    period = rate_seconds(event["Properties"]["Schedule"])
    errors = RESOURCES["SweepFunctionErrorsAlarm"]["Properties"]
    heartbeat = RESOURCES["SweepHeartbeatAlarm"]["Properties"]

    for props in (errors, heartbeat):
        assert props["Namespace"] == "AWS/Lambda"
        assert props["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": "SweepFunction"}}]
    assert (errors["Threshold"], errors["DatapointsToAlarm"], errors["EvaluationPeriods"]) == (1, 2, 3)
    assert errors["Period"] == period  # one data point per run
    # Silence is a failure: no invocation in a window that should hold at least two runs.
    assert heartbeat["ComparisonOperator"] == "LessThanThreshold"
    assert heartbeat["Threshold"] == 1
    assert heartbeat["TreatMissingData"] == "breaching"
    assert 2 * period <= heartbeat["Period"] * heartbeat["EvaluationPeriods"] <= 6 * period


def test_the_access_log_is_json_with_what_an_incident_needs() -> None:
    format_ = RESOURCES["HttpApi"]["Properties"]["AccessLogSettings"]["Format"]
    fields = json.loads(format_)

    for variable in (
        "$context.requestId",
        "$context.httpMethod",
        "$context.path",
        "$context.routeKey",
        "$context.status",
        "$context.error.message",
        "$context.integrationStatus",
        "$context.integrationErrorMessage",
        "$context.responseLatency",
    ):
        assert variable in fields.values(), variable


def test_queues_and_log_groups_say_what_happens_to_them_when_deleted_or_replaced() -> None:
    kept = {"DeliveryDeadLetterQueue", "FunctionLogGroup", "ApiAccessLogGroup", "Table"}
    for name, resource in RESOURCES.items():
        if resource["Type"] not in ("AWS::SQS::Queue", "AWS::Logs::LogGroup", "AWS::DynamoDB::Table"):
            continue
        expected = "Retain" if name in kept else "Delete"
        assert resource.get("DeletionPolicy") == resource.get("UpdateReplacePolicy") == expected, name
