"""Key and organisation calls of the unmodified official client; prints what they returned."""

import json
import sys

import ricloud

config_id = sys.argv[1]
key = ricloud.Key.current()
key_id = key.attrs["attrs"]["id"]  # Key.current() wraps the answer as Key(attrs=...)
updated = ricloud.Key.update_with_id(key_id, webhook_config=config_id)
organisation = ricloud.Organisation.retrieve()

print(
    json.dumps(
        {
            "current_key": key_id,
            "updated_config": updated.webhook_config,
            "organisation": organisation.id,
            "organisation_configs": [c.id for c in organisation.webhook_configs],
        }
    )
)
