"""Test tasks: read one, list them (docs/design.md §5)."""

from __future__ import annotations

from typing import Any

from webhook_service.domain.configs import TASK_STATES, TASK_TYPES
from webhook_service.domain.ids import is_uuid
from webhook_service.domain.tenants import Principal
from webhook_service.errors import NotFoundError
from webhook_service.service.context import Services, cursors_of
from webhook_service.validation import ANY_ID, parse_list_query
from webhook_service.views import list_resource, task_resource


def get_task(svc: Services, caller: Principal, task_id: str) -> dict[str, Any]:
    task = svc.store.configs.get_task(caller.organisation, task_id) if is_uuid(task_id) else None
    if task is None:
        raise NotFoundError("task")
    return task_resource(task)


def list_tasks(svc: Services, caller: Principal, params: dict[str, str]) -> dict[str, Any]:
    query = parse_list_query(params, {"type": TASK_TYPES, "target": ANY_ID, "state": TASK_STATES})
    with cursors_of("task"):
        page = svc.store.lists.tasks(caller.organisation, query)
    return list_resource(page, "/tasks", [task_resource(t) for t in page.items])
