"""`make sam-local` (devstack.samlocal): the env-vars file gives every function each variable
its code reads (found by reading the code: every `os.environ` read of the modules the
function imports), only variables the template declares (SAM drops the others), and an
AWS_ENDPOINT_URL the containers can reach; an empty AWS_ENDPOINT_URL, as deployed, is
ignored by botocore; SAM itself runs with dummy credentials."""

from __future__ import annotations

import ast
import functools
import json
import subprocess
import urllib.parse
import uuid
from pathlib import Path
from typing import Any

import botocore.session
import pytest

from devstack import aws, samlocal, template
from tests.unit.support import Backing

ROOT = Path(__file__).resolve().parents[2]
LAYER = ROOT / "layers" / "webhook_service"
TEMPLATE = template.load_template()
FUNCTIONS = template.functions(TEMPLATE)

# Read with a default and set by no template: local test knobs (README: "exist for local
# tests; the template sets none of them"). SAM could not pass them anyway: it passes only
# declared variables. A new variable in the code fails the coverage test until it is
# declared in the template or named here.
UNSET_WITH_DEFAULTS = {
    "KEY_CACHE_SECONDS",
    "ROUTING_CACHE_SECONDS",
    "DELIVERY_CONNECT_TIMEOUT",
    "DELIVERY_TIMEOUT",
    "DELIVERY_CA_BUNDLE",
    "DELIVERY_LOOPBACK_ONLY",
    "FAST_LANE_TIMEOUT",
    "RETRY_DELAY_SCALE",
}
# Set by Lambda itself in every function's environment (and by sam local in every container),
# never by the template: telemetry names the function its `Failures` count.
SET_BY_LAMBDA = {"AWS_LAMBDA_FUNCTION_NAME"}
# Read by the settings of every function (one dataclass), used by these alone; the template
# gives the variable to them alone.
USED_ONLY_BY = {"SWEEP_AFTER_MINUTES": {"SweepFunction"}, "DEAD_LETTER_QUEUE_URL": {"SweepFunction"}}


# -- what the code reads -------------------------------------------------------------------


def _is_environ(node: ast.AST) -> bool:
    return isinstance(node, ast.Attribute) and node.attr == "environ" and getattr(node.value, "id", None) == "os"


def _read_key(node: ast.AST) -> ast.AST | None:
    """The key expression of an environment read: os.environ.get(k), os.environ[k],
    os.getenv(k), os.environ.setdefault(k, ...), k in os.environ."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args:
        if node.func.attr in ("get", "setdefault", "pop") and _is_environ(node.func.value):
            return node.args[0]
        if node.func.attr == "getenv" and getattr(node.func.value, "id", None) == "os":
            return node.args[0]
    if isinstance(node, ast.Subscript) and _is_environ(node.value):
        return node.slice
    if isinstance(node, ast.Compare) and any(_is_environ(c) for c in node.comparators):
        return node.left
    return None


def env_reads(source: str) -> set[str]:
    """Every environment variable a module reads: literal keys, and keys passed through a
    parameter of a function of the module (as settings.py's `_flag(name)`), found at its calls."""
    tree = ast.parse(source)
    found: set[str] = set()
    through: dict[str, int] = {}  # function name -> index of the parameter used as a key
    for function in [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)]:
        params = [a.arg for a in function.args.args]
        for node in ast.walk(function):
            key = _read_key(node)
            if isinstance(key, ast.Name) and key.id in params:
                through[function.name] = params.index(key.id)
    for node in ast.walk(tree):
        key = _read_key(node)
        if isinstance(key, ast.Constant) and isinstance(key.value, str):
            found.add(key.value)
        elif key is not None and not isinstance(key, ast.Name):
            raise AssertionError(f"an environment read this test cannot follow: {ast.unparse(node)}")
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in through:
            argument = node.args[through[node.func.id]]
            assert isinstance(argument, ast.Constant), ast.unparse(node)
            found.add(str(argument.value))
    return found


def layer_imports(source: str) -> set[str]:
    """The layer's modules a module imports, at its top or inside functions."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("webhook_service."))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("webhook_service"):
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
    return {m for m in found if module_file(m).exists()}


def module_file(module: str) -> Path:
    path = LAYER.joinpath(*module.split("."))
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


@functools.cache
def read_and_imported(path: Path) -> tuple[frozenset[str], frozenset[str]]:
    """What one file reads and which layer modules it imports: parsed once for the module,
    though every function reaches most of the layer."""
    source = path.read_text()
    return frozenset(env_reads(source)), frozenset(layer_imports(source))


def reads_of(function: template.Function) -> set[str]:
    """What a function's code reads: its app.py and every layer module it reaches. botocore
    reads AWS_ENDPOINT_URL for every client, so a function that makes clients reads it too."""
    handler_reads, handler_imports = read_and_imported(function.code_dir / "app.py")
    seen: set[str] = set()
    todo = set(handler_imports)
    reads = set(handler_reads)
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        module_reads, module_imports = read_and_imported(module_file(module))
        reads |= module_reads
        todo |= module_imports
    if "webhook_service.clients" in seen:
        reads.add("AWS_ENDPOINT_URL")
    return reads


@pytest.fixture(scope="module")
def env_file(backing: Backing) -> dict[str, dict[str, str]]:
    """The env-vars file as `make sam-local` writes it, for a stack of the template."""
    stack = aws.deploy(
        TEMPLATE, {"Stage": "dev", "AllowPrivateTargets": "true"}, stack_name=f"sam-{uuid.uuid4().hex[:8]}"
    )
    return samlocal.env_vars(TEMPLATE, stack.refs, samlocal.container_endpoint(4566))


def test_env_reads_finds_literal_and_parameter_keys() -> None:
    source = (
        "import os\n"
        "def _flag(name):\n    return os.environ.get(name, '')\n"
        "A = os.environ['A']\nB = os.getenv('B')\nC = _flag('C')\nD = 'D' in os.environ\n"
    )

    assert env_reads(source) == {"A", "B", "C", "D"}


def test_env_reads_of_a_key_it_cannot_follow_fails() -> None:
    with pytest.raises(AssertionError, match="cannot follow"):
        env_reads("import os\nX = os.environ.get('A' + 'B')\n")


def test_settings_is_where_the_functions_read_their_variables() -> None:
    reads = env_reads((LAYER / "webhook_service" / "settings.py").read_text())

    assert {"TABLE_NAME", "QUEUE_URL", "ALLOW_PRIVATE_TARGETS", "SWEEP_AFTER_MINUTES"} <= reads
    assert reads >= UNSET_WITH_DEFAULTS


@pytest.mark.parametrize("function", FUNCTIONS, ids=lambda f: f.logical_id)
def test_env_vars_file_covers_every_variable_the_function_reads(
    function: template.Function, env_file: dict[str, dict[str, str]]
) -> None:
    given = env_file[function.logical_id]
    reads = reads_of(function)

    unused = {name for name, users in USED_ONLY_BY.items() if function.logical_id not in users}

    if function.code_dir.name == "console":
        assert reads == set()  # the console serves files: no client, no table, no variable
    else:
        assert {"TABLE_NAME", "AWS_ENDPOINT_URL"} <= reads  # every other function reads its table through a client
    missing = reads - set(given) - unused - SET_BY_LAMBDA
    assert missing <= UNSET_WITH_DEFAULTS, missing - UNSET_WITH_DEFAULTS


@pytest.mark.parametrize("function", FUNCTIONS, ids=lambda f: f.logical_id)
def test_env_vars_file_holds_only_what_the_template_declares_with_the_stack_ids(
    function: template.Function, env_file: dict[str, dict[str, str]]
) -> None:
    given = env_file[function.logical_id]

    assert set(given) == set(function.environment)  # SAM would drop anything else without a word
    assert given["AWS_ENDPOINT_URL"] == "http://host.docker.internal:4566"
    assert given["TABLE_NAME"].startswith("sam-")  # the stack's physical id, not the logical id `Table`
    assert "DeliveryQueue" in given["QUEUE_URL"].rsplit("/", 1)[1]
    assert given["ALLOW_PRIVATE_TARGETS"] == "true"


def test_template_declares_aws_endpoint_url_empty_by_default() -> None:
    variables = TEMPLATE["Globals"]["Function"]["Environment"]["Variables"]

    assert variables["AWS_ENDPOINT_URL"] == {"Ref": "AwsEndpointUrl"}
    assert TEMPLATE["Parameters"]["AwsEndpointUrl"]["Default"] == ""


def test_empty_aws_endpoint_url_is_ignored_by_botocore(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")

    client = botocore.session.get_session().create_client("dynamodb")

    assert client.meta.endpoint_url == "https://dynamodb.eu-west-1.amazonaws.com"


def test_non_empty_aws_endpoint_url_is_used_by_botocore(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:4566")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")

    assert botocore.session.get_session().create_client("sqs").meta.endpoint_url == "http://127.0.0.1:4566"


def test_on_linux_containers_reach_the_host_gateway_where_the_local_aws_listens() -> None:
    linux = samlocal.plan("Linux", 4566, bridge=lambda: "172.18.0.1")

    assert linux.endpoint == "http://host.docker.internal:4566"
    assert linux.sam_args == ("--add-host", "host.docker.internal:host-gateway")
    assert linux.bind == "172.18.0.1"  # the bridge's gateway: where host-gateway leads


def test_docker_desktop_resolves_the_host_itself_and_the_local_aws_stays_on_loopback() -> None:
    def no_bridge() -> str:
        raise AssertionError("Docker Desktop needs no bridge address")

    desktop = samlocal.plan("Darwin", 4566, bridge=no_bridge)

    assert (desktop.endpoint, desktop.bind, desktop.sam_args) == ("http://host.docker.internal:4566", "127.0.0.1", ())


def test_the_local_aws_answers_at_the_address_it_listens_on() -> None:
    assert aws.EmbeddedMoto(4566, host="172.17.0.1").endpoint == "http://172.17.0.1:4566"
    assert aws.EmbeddedMoto(4566, host="0.0.0.0").endpoint == "http://127.0.0.1:4566"  # noqa: S104


def test_sam_environment_has_dummy_credentials_and_none_of_the_developers() -> None:
    mine = {"AWS_PROFILE": "prod", "AWS_ACCESS_KEY_ID": "AKIAREAL", "AWS_SESSION_TOKEN": "t", "TABLE_NAME": "x"}

    environment = samlocal.sam_environment({**mine, "PATH": "/usr/bin"}, "us-east-1")

    assert environment["AWS_ACCESS_KEY_ID"] == "local"
    assert not {"AWS_PROFILE", "AWS_SESSION_TOKEN", "TABLE_NAME", "AWS_ENDPOINT_URL"} & set(environment)
    assert environment["PATH"] == "/usr/bin"


def test_sam_command_uses_the_built_template_the_env_vars_file_and_the_platforms_network() -> None:
    network = samlocal.plan("Linux", 4566, bridge=lambda: "172.17.0.1")

    command = samlocal.sam_command("sam", ["invoke", "DeliverFunction"], Path("/x/env.json"), network, ["--debug"])

    assert command == [
        "sam", "local", "invoke", "DeliverFunction", "-t", str(ROOT / ".aws-sam" / "build" / "template.yaml"),
        "--env-vars", "/x/env.json", *network.sam_args, "--debug",
    ]  # fmt: skip


# -- what SAM's own code asks Docker for (devstack.samdocker, in the tools environment) -----

TOOLS_PYTHON = ROOT / ".venv-tools" / "bin" / "python"


@pytest.fixture(scope="module")
def docker_request() -> dict[str, Any]:
    """The container SAM's CLI and container code ask Docker for on `make sam-invoke`'s
    command line on Linux (samcli lives in the tools environment, so in a process of its own)."""
    if not TOOLS_PYTHON.exists():
        pytest.skip("needs the tools environment: make .venv-tools/.installed (make test installs it)")
    found = subprocess.run(
        [str(TOOLS_PYTHON), "-m", "devstack.samdocker", "Linux"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    request: dict[str, Any] = json.loads(found.stdout)
    return request


def test_on_linux_the_container_sam_makes_reaches_the_local_aws_on_the_host(docker_request: dict[str, Any]) -> None:
    endpoint = urllib.parse.urlsplit(docker_request["endpoint"])
    host = endpoint.hostname or ""
    on_host_network = docker_request["network_mode"] == "host" or "host" in docker_request["networks_connected"]

    if host in ("127.0.0.1", "localhost"):
        assert on_host_network, (
            f"AWS_ENDPOINT_URL {docker_request['endpoint']} is the container's own loopback: SAM ran it on the "
            f"default bridge (network_mode {docker_request['network_mode']!r}, networks connected "
            f"{docker_request['networks_connected']}), whatever `{' '.join(docker_request['command'])}` asked"
        )
    else:
        assert docker_request["extra_hosts"].get(host) == "host-gateway", (
            f"the container cannot resolve {host}: extra_hosts {docker_request['extra_hosts']}"
        )
        # host-gateway is the bridge's gateway on the host: the local AWS must listen there.
        assert docker_request["local_aws_bind"] not in ("127.0.0.1", "localhost")
