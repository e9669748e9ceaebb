"""Whole-run check: every AWS call a function made during the tests is one its policy in
infra/template.yaml grants. Calls are recorded in this process (handlers invoked through
`devstack.iam.invoking`) and by the local stack (DEVSTACK_CALLS_FILE), and checked at the
end of the session; a call without a grant fails the run, naming the function and action."""

from __future__ import annotations

from pathlib import Path

from devstack import iam
from devstack.template import load_template

RECORDER = iam.Recorder(names={})
_files: list[Path] = []


def watch_file(path: Path) -> None:
    """Check the calls a local stack records into `path` too."""
    _files.append(path)


def all_calls() -> set[tuple[str, str, str]]:
    calls = set(RECORDER.calls)
    for path in _files:
        calls |= iam.read_calls(path)
    return calls


def problems() -> list[str]:
    try:
        return iam.ungranted(load_template(), all_calls())
    except iam.PolicyError as exc:  # a policy the check cannot read is a finding too
        return [str(exc)]
