"""Drives the service with the unmodified official client, configured only by RICLOUD_URL
and RICLOUD_TOKEN, and prints what each call returned as JSON."""

import json
import sys
import time

import ricloud

receiver = sys.argv[1]
config = ricloud.WebhookConfig.create(url=receiver)
retrieved = ricloud.WebhookConfig.retrieve(config.id)
listed = ricloud.WebhookConfig.list(limit=5)
config.update(url=receiver + "moved")
# While the update's test is open, a test answers that task: wait until it has ended.
for _ in range(200):
    if all(t.state in ("succeeded", "failed") for t in ricloud.Task.list(target=config.id)):
        break
    time.sleep(0.1)
task = ricloud.WebhookConfig.test_with_id(config.id)
tasks = ricloud.Task.list(target=config.id)
deleted = ricloud.WebhookConfig.delete_with_id(config.id)
deactivated = ricloud.WebhookConfig.list(state="deactivated")
try:
    ricloud.WebhookConfig.retrieve("00000000-0000-4000-8000-000000000000")
    missing_status = None
except ricloud.exceptions.RequestError as exc:
    missing_status = [exc.status, exc.error]

print(
    json.dumps(
        {
            "created": dict(config.attrs),
            "retrieved": dict(retrieved.attrs),
            "listed_ids": [c.id for c in listed],
            "task": dict(task.attrs["attrs"]),
            "tasks_total": tasks.total_count,
            "deleted_state": deleted.state,
            "deactivated_ids": [c.id for c in deactivated],
            "missing_status": missing_status,
        }
    )
)
