"""infra/template.yaml as CloudFormation deploys it: packaged (every CodeUri and ContentUri an
S3 object, as `sam package` leaves them) and expanded by the SAM translator, the same code
that runs as the `AWS::Serverless-2016-10-31` transform. Offline: the managed policies SAM
names are given their ARNs here instead of being looked up in IAM."""

from __future__ import annotations

import copy
import functools
import json
import logging
import os
from typing import Any

from devstack.template import load_template

PACKAGE_BUCKET = "artifacts-bucket"
# The parameters a pipeline deploy passes (Makefile PARAMETERS): a prod stack with its boundary.
PIPELINE_PARAMETERS = {
    "Stage": "prod",
    "AllowPrivateTargets": "false",
    "AlarmEmail": "oncall@example.com",
    "PermissionsBoundaryArn": "arn:aws:iam::111122223333:policy/ricloud-webhooks-prod-boundary",
}


def packaged(template: dict[str, Any]) -> dict[str, Any]:
    """The template as `sam package` writes it: local code folders replaced by S3 URIs."""
    result = copy.deepcopy(template)
    for resource in result["Resources"].values():
        properties = resource.get("Properties", {})
        for name in ("CodeUri", "ContentUri"):
            if isinstance(properties.get(name), str) and not properties[name].startswith("s3://"):
                key = properties[name].strip("./").replace("/", "-")
                properties[name] = f"s3://{PACKAGE_BUCKET}/ricloud-webhooks/{key}.zip"
    return result


@functools.cache
def _transformed(parameters: str) -> str:
    from samtranslator.translator.managed_policy_translator import ManagedPolicyLoader
    from samtranslator.translator.transform import transform

    class OfflinePolicies(ManagedPolicyLoader):  # type: ignore[misc]
        """SAM asks IAM for the ARNs of the managed policies it attaches by name; the
        template attaches only ARNs, so nothing needs looking up."""

        def __init__(self) -> None:  # no IAM client
            pass

        def load(self) -> dict[str, str]:
            return {}

    logging.getLogger("samtranslator").setLevel(logging.ERROR)  # its feature-toggle chatter
    # The translator wants a region for ARNs, from the environment; given for its call alone (a
    # region left in this process's environment would reach the local stacks it starts later).
    region = os.environ.get("AWS_DEFAULT_REGION")
    os.environ["AWS_DEFAULT_REGION"] = region or "eu-west-1"
    try:
        result = transform(packaged(load_template()), json.loads(parameters), OfflinePolicies())
    finally:
        if region is None:
            del os.environ["AWS_DEFAULT_REGION"]
    return json.dumps(result)


def transformed(parameters: dict[str, str] | None = None) -> dict[str, Any]:
    """The translator's output for the template with `parameters` (the pipeline's by default)."""
    result: dict[str, Any] = json.loads(_transformed(json.dumps(parameters or PIPELINE_PARAMETERS, sort_keys=True)))
    return result
