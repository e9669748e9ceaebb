"""Checks, with the SAM CLI's own code, that `sam local` gives every function what the
env-vars file of `make sam-local` says: SAM passes a container only the variables the
template declares, silently dropping the others. Runs in the tools environment (it
imports samcli), as part of `make lint`; no Docker needed."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from typing import Any

from devstack import samlocal, template


def placeholder_refs(tpl: dict[str, Any]) -> dict[str, str]:
    """Every parameter at its default and every resource at a made-up physical id."""
    refs = {name: str(spec.get("Default", "")) for name, spec in tpl.get("Parameters", {}).items()}
    refs.update({logical_id: f"local-{logical_id}" for logical_id in tpl["Resources"]})
    return refs


def main() -> int:
    from samcli.commands.local.lib.local_lambda import LocalLambdaRunner
    from samcli.lib.providers.sam_function_provider import SamFunctionProvider
    from samcli.lib.providers.sam_stack_provider import SamLocalStackProvider

    os.environ.update(samlocal.sam_environment(dict(os.environ), "us-east-1"))
    tpl = template.load_template()
    expected = samlocal.env_vars(tpl, placeholder_refs(tpl), samlocal.container_endpoint(4566))
    stacks, _ = SamLocalStackProvider.get_stacks(str(template.TEMPLATE_PATH), parameter_overrides={})
    provider = SamFunctionProvider(stacks)
    with tempfile.TemporaryDirectory() as folder:
        runner = LocalLambdaRunner(
            local_runtime=None,  # only the environment is asked for
            function_provider=provider,
            cwd=folder,
            real_path=folder,
            env_vars_values=json.loads(json.dumps(expected)),
        )
        problems = []
        functions = list(provider.get_all())
        for function in functions:
            given = runner._make_env_vars(function).resolve()
            for name, value in expected.get(function.name, {}).items():
                if given.get(name) != value:
                    problems.append(f"{function.name}: {name} is {given.get(name)!r}, not {value!r}")
            if given.get("AWS_ACCESS_KEY_ID") != samlocal.DUMMY_CREDENTIALS["AWS_ACCESS_KEY_ID"]:
                problems.append(f"{function.name}: the container would get other credentials than the dummies")
    missing = set(expected) - {f.name for f in functions}
    problems.extend(f"{name}: not a function SAM knows" for name in sorted(missing))
    for problem in problems:
        print(f"samcheck: {problem}", file=sys.stderr)
    if not problems:
        print(f"samcheck: sam local gives all {len(functions)} functions every variable of the env-vars file")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
