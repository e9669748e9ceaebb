"""Fair use across organisations (docs/design.md §18): every authenticated request takes one
of its organisation's API rate, resends and queued tests take rates of their own, each exact
across function instances (the store's `limits`), and each refusal is 429 `limit-exceeded`
naming what was exceeded."""

from __future__ import annotations

from webhook_service.domain.limits import RATE_API, RATE_RESENDS, RATE_TESTS, Admission
from webhook_service.domain.tenants import Principal
from webhook_service.errors import LimitExceededError
from webhook_service.service.context import Services

# What each rate is called in a refusal's `params`, and the words of its message.
_NAMES = {
    RATE_API: ("requests", "requests"),
    RATE_RESENDS: ("resends", "resends"),
    RATE_TESTS: ("tests", "tests queued"),
}


def admit(svc: Services, caller: Principal) -> Admission:
    """Take one request's worth of the caller's organisation's API rate (refused or not:
    the answer carries the rate's state either way)."""
    return svc.store.limits.take(caller.organisation, RATE_API, svc.clock())


def refusal(admission: Admission) -> LimitExceededError:
    """The error a refused admission is answered with."""
    param, words = _NAMES[admission.name]
    rate = admission.rate
    return LimitExceededError(
        f"Too many {words}: this organisation may make {rate.per_second} a second, bursts of {rate.burst};"
        f" retry after {admission.retry_after_seconds} s.",
        params={param: f"at most {rate.per_second} a second, bursts of {rate.burst}"},
        retry_after_seconds=admission.retry_after_seconds,
    )


def take_resend(svc: Services, caller: Principal) -> None:
    """One of the organisation's resends, or LimitExceededError naming `resends`."""
    _take(svc, caller, RATE_RESENDS)


def take_test(svc: Services, caller: Principal) -> None:
    """One of the organisation's queued tests, or LimitExceededError naming `tests`."""
    _take(svc, caller, RATE_TESTS)


def _take(svc: Services, caller: Principal, name: str) -> None:
    admission = svc.store.limits.take(caller.organisation, name, svc.clock())
    if not admission.allowed:
        raise refusal(admission)
