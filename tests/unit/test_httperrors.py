"""The service's errors carry no HTTP; httperrors alone maps each to its status and code."""

from __future__ import annotations

import inspect

import pytest

from webhook_service import errors, httperrors

SERVICE_ERRORS = [
    cls
    for _, cls in inspect.getmembers(errors, inspect.isclass)
    if issubclass(cls, errors.ServiceError) and cls is not errors.ServiceError
]


def test_there_are_service_errors_to_check() -> None:
    assert len(SERVICE_ERRORS) >= 8


@pytest.mark.parametrize("cls", SERVICE_ERRORS, ids=lambda cls: cls.__name__)
def test_service_error_has_no_http_status_and_one_mapping(cls: type[errors.ServiceError]) -> None:
    assert not hasattr(cls, "status")
    assert not hasattr(cls, "code")
    assert cls in httperrors.STATUS_AND_CODE


@pytest.mark.parametrize(
    ("error", "status", "body"),
    [
        (errors.NotFoundError("event"), 404, {"error": "not-found", "message": "No such event."}),
        (
            errors.InvalidParameterError("Bad url.", {"url": "must be an absolute https URL"}),
            400,
            {"error": "invalid-parameter", "message": "Bad url.", "params": {"url": "must be an absolute https URL"}},
        ),
        (errors.LimitExceededError("Slow down."), 429, {"error": "limit-exceeded", "message": "Slow down."}),
        (errors.UnavailableError("Later.", {}), 503, {"error": "unavailable", "message": "Later."}),
    ],
)
def test_error_maps_to_status_and_body(error: errors.ServiceError, status: int, body: dict[str, object]) -> None:
    assert httperrors.status(error) == status
    assert httperrors.error_body(error) == body


def test_subclass_of_a_mapped_error_takes_its_mapping() -> None:
    class Gone(errors.NotFoundError):
        pass

    assert httperrors.status_and_code(Gone("config")) == (404, "not-found")
