"""`eval "$(make -s env)"`: the shell variables the README's lines use, from what `make dev`
and `make listen` saved (the standard library only: it runs with the system's python3, never installing anything
whose output the shell would then run).

    API  the local stack's URL (the banner's port, whatever PORT made it)
    T    the development key's token
    ORG  the development organisation's id
    KEY  the development key's id
    ID   the config the newest `make listen` listens for, when there is one
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from pathlib import Path
from typing import Any

from devstack.persist import IDENTITY, LISTENING

VARIABLES = (("API", "url"), ("T", "token"), ("ORG", "organisation"), ("KEY", "key"))


def _read(path: Path) -> dict[str, Any] | None:
    try:
        found = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return found if isinstance(found, dict) else None


def exports(folder: Path) -> tuple[str | None, list[str]]:
    """The `export` line, and notes for standard error (what is missing and why)."""
    saved = _read(folder / IDENTITY)
    if not saved or not all(saved.get(field) for _, field in VARIABLES):
        return None, [f"no {folder / IDENTITY}: start make dev first (in another terminal)"]
    values = [(name, str(saved[field])) for name, field in VARIABLES]
    notes = []
    listening = _read(folder / LISTENING)
    if listening and listening.get("config") and listening.get("url") == saved["url"]:
        values.append(("ID", str(listening["config"])))
    else:
        notes.append("no ID yet: make listen (in another terminal) makes the config it names")
    return "export " + " ".join(f"{name}={shlex.quote(value)}" for name, value in values), notes


def main() -> int:
    line, notes = exports(Path(os.environ.get("DEVSTACK_DATA") or ".devstack"))
    for note in notes:
        print(f"make env: {note}", file=sys.stderr)
    if line is None:
        return 1
    print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
