"""docs/design.md against the code: the figures of its appendix A are the code's, and the
numbered sections that code and docs cite keep their headings."""

from __future__ import annotations

import base64
import inspect
import re
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import pytest

import webhook_service
from devstack import template
from webhook_service import (
    auth,
    consumer,
    events,
    httpcodes,
    jobqueue,
    sender,
    signing,
    sweep,
    validation,
)
from webhook_service import settings as settings_module
from webhook_service.domain import configs as domain_configs
from webhook_service.domain import delivery as domain_delivery
from webhook_service.domain import events as domain_events
from webhook_service.domain import idempotency, queries, retries
from webhook_service.domain import limits as domain_limits
from webhook_service.domain import pacing as domain_pacing
from webhook_service.domain import recovery as domain_recovery
from webhook_service.jobs import event_attempts
from webhook_service.ports import PrincipalSource
from webhook_service.service import context as service_context
from webhook_service.service import publishing
from webhook_service.service import tenants as tenant_cases
from webhook_service.storage import configs as storage_configs
from webhook_service.storage import keys, lists, merge, planning, routing
from webhook_service.storage import limits as storage_limits
from webhook_service.storage import pacing as storage_pacing
from webhook_service.storage.store import Store

DESIGN = Path(__file__).resolve().parents[2] / "docs" / "design.md"

SECTIONS = (
    "1. Shape",
    "2. Conventions",
    "3. Errors",
    "4. Resources",
    "5. Endpoints",
    "6. State machine and test tasks",
    "7. Delivery",
    "8. Security",
    "9. Running it",
    "10. Choices",
)

_UNITS = {"s": 1, "min": 60, "h": 3600, "days": 86400, "KiB": 1024}
_QUANTITY = re.compile(r"^(\d+) (s|min|h|days|KiB)$")
_SETTINGS_ENV = (
    "KEY_CACHE_SECONDS",
    "DELIVERY_CONNECT_TIMEOUT",
    "DELIVERY_TIMEOUT",
    "FAST_LANE_TIMEOUT",
    "SWEEP_AFTER_MINUTES",
)


def parse_value(text: str) -> Any:
    """A value as the doc writes it: `text`, 16 KiB, 5 s, 60 min, 30 days, ±10%, 429, or a
    comma-separated list of those. Quantities become a number of bytes or seconds."""
    text = text.strip()
    if text.startswith("`") and text.endswith("`"):
        return text[1:-1]
    if "," in text:
        return [parse_value(part) for part in text.split(",")]
    if text.startswith("±") and text.endswith("%"):
        return int(text[1:-1]) / 100
    quantity = _QUANTITY.match(text)
    if quantity:
        return int(quantity.group(1)) * _UNITS[quantity.group(2)]
    if text.isdigit():
        return int(text)
    raise ValueError(f"docs/design.md appendix A: cannot read the value {text!r}")


def doc_numbers(text: str) -> dict[str, Any]:
    """The rows of appendix A's table: name -> parsed value."""
    section = text.split("\n## A. Numbers\n", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, Any] = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if not line.startswith("|") or len(cells) != 3 or cells[0] in ("name", "") or set(cells[0]) <= {"-"}:
            continue
        assert cells[0] not in rows, f"appendix A names {cells[0]!r} twice"
        rows[cells[0]] = parse_value(cells[1])
    return rows


def _seconds(value: Any) -> Any:
    return value.total_seconds() if hasattr(value, "total_seconds") else value


def _agreed(*values: Any) -> Any:
    """The one value every source gives; all of them when they differ (so the check fails)."""
    return values[0] if len(set(values)) == 1 else values


def _random_bytes(value: str, prefix: str, decode: Callable[[str], bytes]) -> int:
    assert value.startswith(prefix)
    return len(decode(value.removeprefix(prefix)))


def _urlsafe(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _default(function: Callable[..., Any], parameter: str) -> Any:
    return inspect.signature(function).parameters[parameter].default


def _capped_cache_ttl() -> float:
    """The most an Authenticator caches, whatever it is asked for."""
    return auth.Authenticator(cast("PrincipalSource", None), ttl=1e9).ttl


def _resource(name: str) -> dict[str, Any]:
    resource: dict[str, Any] = template.load_template()["Resources"][name]["Properties"]
    return resource


def _rate(expression: str) -> int:
    match = re.fullmatch(r"rate\((\d+) (minute|minutes|hour|hours)\)", expression)
    assert match, expression
    return int(match.group(1)) * (60 if match.group(2).startswith("minute") else 3600)


def code_numbers() -> dict[str, Callable[[], Any]]:
    """The code's value of every row of appendix A, in the doc's units (bytes, seconds)."""
    settings = settings_module.get_settings()
    events_lane = _resource("DeliverFunction")["Events"]["Jobs"]["Properties"]
    sweep_function = _resource("SweepFunction")
    delivery_queue = _resource("DeliveryQueue")
    throttling = _resource("HttpApi")["DefaultRouteSettings"]
    return {
        "request body, at most": lambda: validation.MAX_BODY_BYTES,
        "receiver URL, at most (characters)": lambda: validation.MAX_URL_LENGTH,
        "list limit, default": lambda: queries.DEFAULT_LIMIT,
        "list limit, at most": lambda: validation.MAX_LIMIT,
        "configs embedded in the organisation": lambda: tenant_cases.EMBEDDED_CONFIGS,
        "tries of a state change that loses races": lambda: service_context.UPDATE_ATTEMPTS,
        "token prefix": lambda: auth.TOKEN_PREFIX,
        "token random bytes": lambda: _random_bytes(auth.generate_token(), auth.TOKEN_PREFIX, _urlsafe),
        "token length accepted, at most (characters)": lambda: auth._MAX_TOKEN_LENGTH,
        "key lookup cache, at most": lambda: _agreed(
            settings.key_cache_seconds, _default(auth.Authenticator, "ttl"), _capped_cache_ttl()
        ),
        "secret prefix": lambda: signing.SECRET_PREFIX,
        "secret random bytes": lambda: _random_bytes(
            domain_configs.generate_secret(), signing.SECRET_PREFIX, base64.b64decode
        ),
        "DNS lookup, at most": lambda: _default(sender.Sender, "resolve_timeout"),
        "connect timeout": lambda: _agreed(
            settings.delivery_connect_timeout, _default(sender.Sender, "connect_timeout")
        ),
        "exchange timeout": lambda: _agreed(settings.delivery_timeout, _default(sender.Sender, "total_timeout")),
        "response read, at most": lambda: sender.MAX_RESPONSE_BYTES,
        "response excerpt, at most (characters)": lambda: sender.EXCERPT_CHARS,
        "connections pooled per receiver": lambda: sender.POOL_SIZE,
        "receivers whose connections are pooled": lambda: sender.MAX_POOLS,
        "signature header read by the verifiers, at most (characters)": lambda: signing.MAX_HEADER_CHARS,
        "numeric query parameter, at most (characters)": lambda: validation.MAX_NUMBER_PARAMETER_CHARS,
        "User-Agent": lambda: webhook_service.USER_AGENT,
        "verifiers' timestamp tolerance": lambda: _agreed(
            signing.DEFAULT_TOLERANCE_SECONDS,
            _default(signing.verify_ricloud, "tolerance"),
            _default(signing.verify_standard, "tolerance"),
        ),
        "event data, at most": lambda: events.MAX_DATA_BYTES,
        "event data nesting, at most (levels)": lambda: validation.MAX_DATA_DEPTH,
        "significant digits of an event data number, at most": lambda: validation.MAX_NUMBER_DIGITS,
        "Retry-After read, at most (characters)": lambda: httpcodes.RETRY_AFTER_MAX_CHARS,
        "fast lanes' answer time": lambda: settings.fast_lane_timeout,
        "slow mark": lambda: domain_configs.SLOW_MARK_SECONDS,
        "open tests per organisation, at most": lambda: domain_configs.MAX_OPEN_TESTS,
        "open tests per organisation in the tests lane": lambda: domain_configs.FAST_LANE_OPEN_TESTS,
        "attempts of an event, at most": lambda: retries.MAX_ATTEMPTS,
        "waits between attempts": lambda: [_seconds(delay) for delay in retries.RETRY_DELAYS],
        "jitter of each wait": lambda: retries.RETRY_JITTER,
        "statuses whose Retry-After is read": lambda: list(httpcodes.RETRY_AFTER_STATUSES),
        "status that ends the retries": lambda: httpcodes.GONE_STATUS,
        "tasks and events kept": lambda: _seconds(domain_events.HISTORY_TTL),
        "attempt excerpt, at most (characters)": lambda: _agreed(
            domain_delivery.EXCERPT_MAX_CHARS, sender.EXCERPT_CHARS
        ),
        "rotation overlap, default": lambda: domain_configs.ROTATION_OVERLAP_DEFAULT,
        "rotation overlap, at most": lambda: domain_configs.ROTATION_OVERLAP_MAX,
        "delay of one queue message, at most": lambda: jobqueue.JobQueue.MAX_DELAY_SECONDS,
        "early arrival taken as on time": lambda: event_attempts.EARLY_TOLERANCE_SECONDS,
        "threads of one deliver invocation": lambda: _agreed(consumer.MAX_BATCH, consumer._executor._max_workers),
        "overdue after": lambda: _agreed(
            settings.sweep_after_minutes * 60,
            float(sweep_function["Environment"]["Variables"]["SWEEP_AFTER_MINUTES"]) * 60,
        ),
        "re-queues by the sweep before it ends an item": lambda: sweep.REQUEUES,
        "items per ByOpen partition per sweep run": lambda: sweep.BATCH,
        "bookkeeping items a list page may read besides limit + 1": lambda: planning.LIST_BOOKKEEPING_ITEMS,
        "reads of a config that moved before a test outcome is written without it": lambda: (
            storage_configs.OUTCOME_TRIES
        ),
        "ByOpen partitions": lambda: keys.OPEN_SHARDS,
        "shards of an event's index partition": lambda: keys.EVENT_SHARDS,
        "items a merged page may read past limit + 1, per shard": lambda: merge.MERGE_SLACK,
        "reads of a merged page in flight at once": lambda: lists.LIST_READERS,
        "routing kept per store, default": lambda: _agreed(
            settings.routing_cache_seconds,
            routing.ROUTING_CACHE_SECONDS,
            _default(Store, "routing_cache_seconds"),
        ),
        "sweep period": lambda: _rate(sweep_function["Events"]["Every10Minutes"]["Properties"]["Schedule"]),
        "sweep timeout": lambda: sweep_function["Timeout"],
        "deliver batch size": lambda: _agreed(events_lane["BatchSize"], consumer.MAX_BATCH),
        "events lane concurrency, at most": lambda: events_lane["ScalingConfig"]["MaximumConcurrency"],
        "deliver timeout": lambda: _resource("DeliverFunction")["Timeout"],
        "queue visibility timeout": lambda: delivery_queue["VisibilityTimeout"],
        "receives before the dead-letter queue": lambda: delivery_queue["RedrivePolicy"]["maxReceiveCount"],
        "queue message retention": lambda: _agreed(
            delivery_queue["MessageRetentionPeriod"], _resource("DeliveryDeadLetterQueue")["MessageRetentionPeriod"]
        ),
        "API function timeout": lambda: template.load_template()["Globals"]["Function"]["Timeout"],
        "route throttling, requests per second": lambda: throttling["ThrottlingRateLimit"],
        "route throttling, burst": lambda: throttling["ThrottlingBurstLimit"],
        "API requests per organisation, a second": lambda: domain_limits.DEFAULT_RATES["api"].per_second,
        "API requests per organisation, burst": lambda: domain_limits.DEFAULT_RATES["api"].burst,
        "tests queued per organisation, a second": lambda: domain_limits.DEFAULT_RATES["tests"].per_second,
        "tests queued per organisation, burst": lambda: domain_limits.DEFAULT_RATES["tests"].burst,
        "resends per organisation, a second": lambda: domain_limits.DEFAULT_RATES["resends"].per_second,
        "resends per organisation, burst": lambda: domain_limits.DEFAULT_RATES["resends"].burst,
        "configs not deactivated per organisation, at most": lambda: domain_limits.MAX_CONFIGS,
        "requests made at once: arrived before another's write, or within": lambda: _seconds(domain_limits.AT_ONCE),
        "writes of a rate per request, at most": lambda: storage_limits.WRITES_PER_REQUEST,
        "intervals a flooding instance waits beyond the next slot, at most": lambda: storage_limits.DEFER_SLOTS,
        "time a flooding instance waits beyond the next slot, at most": lambda: (
            storage_limits.DEFER_AT_MOST_US / 1_000_000
        ),
        "delivery rate of a config, at most (a second)": lambda: domain_configs.RATE_LIMIT_MAX,
        "spacing of a config's slots beyond 1 / rate (percent)": lambda: round(domain_pacing.SPACING_SLACK * 100),
        "lateness past its slot after which a delivery takes another (microseconds)": lambda: (
            domain_pacing.LATE_AT_MOST_US
        ),
        "wait for a slot in the invocation, at most": lambda: domain_pacing.WAIT_IN_INVOCATION_SECONDS,
        "slots a second of one pacing item, at most": lambda: domain_pacing.SHARD_RATE,
        "writes to take a slot, at most": lambda: storage_pacing.WRITES_PER_SLOT,
        "how far ahead of now a process takes a free slot, at most": lambda: domain_pacing.LEAD_AT_MOST_SECONDS,
        "pacing items kept after their last write": lambda: storage_pacing.KEEP_SECONDS,
        "recover window's start, at most before now": lambda: domain_recovery.RECOVER_DAYS_BACK * 86_400,
        "recover window's end ahead of our clock, at most": lambda: _seconds(domain_recovery.CLOCK_ALLOWANCE),
        "seconds of a config's rate one recover step resends": lambda: domain_recovery.STEP_SECONDS_OF_RATE,
        "events one recover step resends, at least": lambda: domain_recovery.STEP_LEAST,
        "events one recover step resends, at most": lambda: domain_recovery.STEP_MOST,
        "time one recover step takes events, at most": lambda: domain_recovery.STEP_BUDGET_SECONDS,
        "idempotency key window": lambda: _seconds(idempotency.IDEMPOTENCY_WINDOW),
        "idempotency key, at most (characters)": lambda: idempotency.MAX_IDEMPOTENCY_KEY_CHARS,
        "wait of a repeated publish for the first publisher's event, at most": lambda: (
            publishing.FIRST_PUBLISH_WAIT_SECONDS
        ),
    }


@pytest.fixture
def default_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The settings as a deployed function reads them when the template sets nothing."""
    for name in _SETTINGS_ENV:
        monkeypatch.delenv(name, raising=False)
    settings_module.reset_settings()
    yield
    settings_module.reset_settings()


@pytest.fixture(scope="module")
def design() -> str:
    return DESIGN.read_text(encoding="utf-8")


def test_design_numbers_match_the_code(design: str, default_settings: None) -> None:
    documented = doc_numbers(design)
    code = code_numbers()
    assert sorted(documented) == sorted(code), "appendix A and this test name different figures"
    actual = {name: value() for name, value in code.items()}
    mismatches = {name: (documented[name], actual[name]) for name in code if documented[name] != actual[name]}
    assert mismatches == {}, "docs/design.md (left) disagrees with the code (right)"


def test_design_numbered_sections_keep_their_headings(design: str) -> None:
    headings = re.findall(r"^## (\d+\. .+)$", design, flags=re.MULTILINE)
    assert headings[: len(SECTIONS)] == list(SECTIONS)


def _anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lowercase, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_design_links_in_the_docs_name_existing_sections(design: str) -> None:
    anchors = {_anchor(h) for h in re.findall(r"^#+ (.+)$", design, flags=re.MULTILINE)}
    root = DESIGN.parents[1]
    links = {
        (path.relative_to(root).as_posix(), anchor)
        for path in [root / "README.md", *sorted((root / "docs").glob("*.md"))]
        for anchor in re.findall(r"design\.md#([\w-]+)", path.read_text(encoding="utf-8"))
    }
    assert links, "no document links into docs/design.md"
    assert sorted(link for link in links if link[1] not in anchors) == []


def test_design_doc_reads_values_in_the_units_it_writes() -> None:
    assert parse_value("16 KiB") == 16384
    assert parse_value("1 min, 10 min, 1 h, 3 h") == [60, 600, 3600, 10800]
    assert parse_value("±10%") == pytest.approx(0.1)
    assert parse_value("`whsec_`") == "whsec_"
    assert parse_value("30 days") == 2592000
    with pytest.raises(ValueError, match="cannot read"):
        parse_value("about five")


# The contract lives in this repository: code, tests and documents cite docs/design.md, never
# a document that is not here. The word is assembled so that this file does not cite it either.
_OUTSIDE_CONTRACT = re.compile(r"\b" + "S" + "PEC" + r"\b")
_SECTION_REFERENCE = re.compile(r"§(\d+(?:\.\d+)?)")


def _tracked_text_files() -> dict[str, str]:
    """Every file git tracks that reads as UTF-8 text, by its path in the repository."""
    root = DESIGN.parents[1]
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z"], cwd=root, capture_output=True, check=True, timeout=60
        ).stdout.decode()
    except (OSError, subprocess.CalledProcessError) as error:
        pytest.skip(f"not a git checkout, so no list of tracked files: {error}")
    files: dict[str, str] = {}
    for name in filter(None, listed.split("\0")):
        path = root / name
        if not path.is_file():
            continue
        try:
            files[name] = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
    assert "docs/design.md" in files
    return files


def test_no_tracked_file_cites_a_contract_outside_the_repository() -> None:
    hits = [
        f"{name}:{number}: {line.strip()}"
        for name, text in _tracked_text_files().items()
        for number, line in enumerate(text.splitlines(), start=1)
        if _OUTSIDE_CONTRACT.search(line)
    ]
    assert hits == [], "cite docs/design.md's section instead"


def test_section_references_name_existing_sections(design: str) -> None:
    """`design.md §N` (or `§N.M`) anywhere, and `§N` inside design.md itself, name a heading."""
    numbers = set(re.findall(r"^##+ (\d+(?:\.\d+)?)\.? ", design, flags=re.MULTILINE))
    assert {"1", "6.4", "7.12"} <= numbers
    unknown = [
        f"{name}:{number}: §{section}"
        for name, text in _tracked_text_files().items()
        for number, line in enumerate(text.splitlines(), start=1)
        if name == "docs/design.md" or "design.md" in line
        for section in _SECTION_REFERENCE.findall(line)
        if section not in numbers
    ]
    assert unknown == []
