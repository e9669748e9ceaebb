"""The deployable artifact, exercised: what `sam deploy` would ship, checked from its zips alone.

`python -m devstack.artifact` (what `make artifact-check` runs, after `make build`):

1. packages a SAM template with the SAM CLI's own `sam package` (the step `sam deploy` runs)
   into a bucket of the embedded local AWS (moto's S3; the SAM CLI honours AWS_ENDPOINT_URL);
2. downloads every function's zip and every layer's zip from that bucket and unpacks them as
   Lambda lays them out: a function's zip is its `/var/task`, its layers' zips are unpacked
   in order into one `/opt`;
3. imports every function's handler in a fresh `python3.13 -I -B -S` (the runtime's Python;
   no bytecode written, no site-packages, no PYTHON* variables), whose path is what Lambda
   gives a Python function: `/var/task`, `/opt/python/lib/python3.13/site-packages`,
   `/opt/python`, then the runtime's own AWS SDK (`--runtime-sdk`: boto3 and botocore as
   the runtime ships them, which the layer does not). Every module it loads must come from
   those folders or the standard library, and every module loaded from the zips must have
   bytecode for that Python;
4. unless `--no-smoke`: serves the unpacked functions as the local stack (`serve`, below)
   under the runtime's Python, and runs the public-API smoke tests (tests/e2e, the ones run
   against a deployed stack) against it with a local receiver, none skipped, checks that
   the scheduled sweep ran, and that every AWS call a function made is one the packaged
   template's policy grants it (devstack.iam).

`python -m devstack.artifact serve --root DIR [devstack options]` is the local stack of an
unpacked artifact: it refuses to start unless the layer's package and its dependencies are
imported from DIR's `/opt`, then runs `python -m devstack` on DIR's template, whose code
locations name the unpacked folders.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import yaml

from devstack import aws, iam
from devstack.servers import LocalServer
from devstack.template import ROOT, load_template

BUILT_TEMPLATE = ROOT / ".aws-sam" / "build" / "template.yaml"
BUCKET = "artifacts"
FUNCTION = "AWS::Serverless::Function"
LAYER = "AWS::Serverless::LayerVersion"
# The layer's package and its dependencies: in `serve`, each must come from the artifact's /opt.
LAYER_MODULES = ("webhook_service", "aws_lambda_powertools", "certifi")
# Files of the layer's source folder that are not part of the layer: `make build` removes them
# from what SAM copied (the editable install's packaging file).
NOT_SHIPPED = ("python/pyproject.toml",)
STARTUP_SECONDS = 120
SMOKE_TIMEOUT = 600

# Run by the runtime's Python for one function: its path as Lambda sets it, then the handler.
_IMPORT_CHECK = """
import importlib, json, os, sys
task, opt, handler, sdk = sys.argv[1:5]
version = "python%d.%d" % sys.version_info[:2]
sys.path[:0] = [task, os.path.join(opt, "python", "lib", version, "site-packages"), os.path.join(opt, "python")]
if sdk:
    sys.path.append(sdk)  # the runtime's boto3 and botocore come after the function's and its layers' own
module_name, _, attribute = handler.rpartition(".")
result = {"error": None, "outside": [], "without_bytecode": [], "loaded": 0}
try:
    if not callable(getattr(importlib.import_module(module_name), attribute)):
        result["error"] = handler + " is not callable"
except BaseException as exc:
    result["error"] = "%s: %s" % (type(exc).__name__, exc)
for name, module in sorted(sys.modules.items()):
    path = getattr(module, "__file__", None)
    if not path:
        continue
    path = os.path.realpath(path)
    if path.startswith((os.path.realpath(task) + os.sep, os.path.realpath(opt) + os.sep)):
        result["loaded"] += 1
        cached = getattr(module, "__cached__", None)
        if path.endswith(".py") and not (cached and os.path.isfile(cached)):
            result["without_bytecode"].append(name)
    elif not path.startswith(os.path.realpath(sys.base_prefix) + os.sep) and not (
        sdk and path.startswith(os.path.realpath(sdk) + os.sep)
    ):
        result["outside"].append(name + " from " + path)
print(json.dumps(result))
"""


@dataclass(frozen=True)
class Artifact:
    """A packaged template, unpacked: `functions[logical id]` is that function's /var/task."""

    root: Path
    template_path: Path  # the packaged template, code locations pointing at the unpacked folders
    functions: dict[str, Path]
    handlers: dict[str, str]
    opt: Path


def _s3_key(uri: Any, logical_id: str) -> str:
    if not (isinstance(uri, str) and uri.startswith(f"s3://{BUCKET}/")):
        raise ValueError(f"{logical_id}: sam package left its code at {uri!r}, not in s3://{BUCKET}/")
    return uri.removeprefix(f"s3://{BUCKET}/")


def _unzip(s3: Any, key: str, into: Path) -> None:
    into.mkdir(parents=True, exist_ok=True)
    archive = into.parent / f"{into.name}.zip"
    s3.download_file(BUCKET, key, str(archive))
    with zipfile.ZipFile(archive) as zipped:
        zipped.extractall(into)
    archive.unlink()


def package(template_path: Path, root: Path, sam: str) -> Artifact:
    """`sam package` the template into the local AWS's S3, then unpack what it uploaded."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per S3 request otherwise
    moto = aws.EmbeddedMoto()
    moto.start()
    try:
        env = {
            **os.environ,
            "AWS_ENDPOINT_URL": moto.endpoint,
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",
            "AWS_DEFAULT_REGION": aws.REGION,
            "SAM_CLI_TELEMETRY": "0",
        }
        env.pop("AWS_PROFILE", None)
        env.pop("AWS_SESSION_TOKEN", None)
        import boto3

        s3 = boto3.client(
            "s3",
            endpoint_url=moto.endpoint,
            region_name=aws.REGION,
            aws_access_key_id="local",
            aws_secret_access_key="local",  # noqa: S106 - the local AWS takes any
        )
        s3.create_bucket(Bucket=BUCKET)
        packaged = root / "packaged.yaml"
        command = [sam, "package", "--template-file", str(template_path), "--s3-bucket", BUCKET]
        done = subprocess.run(  # noqa: S603 - our own tools
            [*command, "--output-template-file", str(packaged), "--region", aws.REGION],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"sam package failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
        template = load_template(packaged)
        resources: dict[str, Any] = template["Resources"]
        layers: dict[str, Path] = {}
        for logical_id, resource in resources.items():
            if resource["Type"] == LAYER:
                layers[logical_id] = root / "layers" / logical_id
                _unzip(s3, _s3_key(resource["Properties"]["ContentUri"], logical_id), layers[logical_id])
                resource["Properties"]["ContentUri"] = str(layers[logical_id])
        globals_ = template.get("Globals", {}).get("Function", {})
        functions: dict[str, Path] = {}
        handlers: dict[str, str] = {}
        layer_lists: set[tuple[str, ...]] = set()
        for logical_id, resource in resources.items():
            if resource["Type"] != FUNCTION:
                continue
            props = resource["Properties"]
            functions[logical_id] = root / "functions" / logical_id
            _unzip(s3, _s3_key(props["CodeUri"], logical_id), functions[logical_id])
            props["CodeUri"] = str(functions[logical_id])
            handlers[logical_id] = props.get("Handler", globals_.get("Handler", "app.handler"))
            refs = [*globals_.get("Layers", []), *props.get("Layers", [])]
            if any(not (isinstance(r, dict) and r.get("Ref") in layers) for r in refs):
                raise ValueError(f"{logical_id}: only layers of this template can be unpacked, not {refs!r}")
            layer_lists.add(tuple(r["Ref"] for r in refs))
        if len(layer_lists) > 1:
            raise ValueError("functions with different layers need an /opt each; this check builds one")
        opt = root / "opt"
        opt.mkdir()
        for layer in next(iter(layer_lists), ()):  # Lambda unpacks a function's layers in order
            shutil.copytree(layers[layer], opt, dirs_exist_ok=True)
        unpacked = root / "template.yaml"
        unpacked.write_text(yaml.safe_dump(template, sort_keys=False), encoding="utf-8")
        return Artifact(root=root, template_path=unpacked, functions=functions, handlers=handlers, opt=opt)
    finally:
        moto.stop()


def check_layer(artifact: Artifact) -> list[str]:
    """The problems of the unpacked /opt itself (none: it holds only what the layer ships)."""
    return [f"the layer ships {name}: build with make build" for name in NOT_SHIPPED if (artifact.opt / name).exists()]


def check_imports(artifact: Artifact, python: str, sdk: Path | None = None) -> list[str]:
    """Import every handler from the artifact alone, with `sdk` standing for the runtime's own
    boto3 and botocore; the problems found (none: it imports)."""
    problems = []
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "AWS_REGION": aws.REGION,
        "AWS_DEFAULT_REGION": aws.REGION,
        "LAMBDA_TASK_ROOT": "/var/task",
    }
    if os.environ.get("PYENV_VERSION"):
        env["PYENV_VERSION"] = os.environ["PYENV_VERSION"]
    for logical_id, task in sorted(artifact.functions.items()):
        done = subprocess.run(  # noqa: S603 - the runtime's Python on our own check
            [
                python,
                "-I",
                "-B",
                "-S",
                "-c",
                _IMPORT_CHECK,
                str(task),
                str(artifact.opt),
                artifact.handlers[logical_id],
                str(sdk.resolve()) if sdk else "",
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if done.returncode != 0:
            problems.append(f"{logical_id}: the import check did not run: {done.stderr.strip()[-500:]}")
            continue
        result = json.loads(done.stdout)
        if result["error"]:
            problems.append(f"{logical_id}: {artifact.handlers[logical_id]} does not import: {result['error']}")
        if result["outside"]:
            problems.append(f"{logical_id}: loaded from outside the artifact: {', '.join(result['outside'][:5])}")
        if result["without_bytecode"]:
            names = ", ".join(result["without_bytecode"][:5])
            problems.append(f"{logical_id}: {len(result['without_bytecode'])} modules without bytecode ({names})")
        print(f"  {logical_id}: {result['loaded']} modules from the artifact", file=sys.stderr)
    return problems


class _Receiver(BaseHTTPRequestHandler):
    """Answers every POST 204, as a healthy receiver does."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's name
        pass


@contextmanager
def _receiver() -> Iterator[str]:
    server = LocalServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, name="receiver", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hooks/"
    finally:
        server.shutdown()
        thread.join(timeout=10)


def smoke(artifact: Artifact, runtime_python: str) -> list[str]:
    """Serve the artifact as the local stack under the runtime's Python; run tests/e2e on it."""
    info_file = artifact.root / "devstack.json"
    log_path = artifact.root / "devstack.log"
    report = artifact.root / "e2e.xml"
    calls_path = artifact.root / "calls.jsonl"
    env = {
        **os.environ,
        "PYTHONPATH": f"{artifact.opt / 'python'}{os.pathsep}{ROOT}",
        "DEV_TOKEN": "rwk_" + secrets.token_urlsafe(32),
        "DELIVERY_LOOPBACK_ONLY": "1",  # the receiver is on this machine; nothing else is reached
        "DELIVERY_CONNECT_TIMEOUT": "1",
        "DELIVERY_TIMEOUT": "5",
        "DEVSTACK_SCHEDULE_SECONDS": "2",  # the sweep too, from the artifact
        "DEVSTACK_CALLS_FILE": str(calls_path),  # every AWS call, checked against the packaged policies
    }
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "PYTHONHOME"):
        env.pop(name, None)
    problems: list[str] = []
    with _receiver() as receiver_url, log_path.open("w") as log_file:
        command = [runtime_python, "-m", "devstack.artifact", "serve", "--root", str(artifact.root)]
        command += ["--port", str(aws.free_port()), "--info-file", str(info_file)]
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log_file)  # noqa: S603
        try:
            deadline = time.monotonic() + STARTUP_SECONDS
            while not info_file.exists():
                if process.poll() is not None or time.monotonic() > deadline:
                    log_file.flush()
                    return [f"the artifact's local stack did not start; {log_path} ends:\n" + _tail(log_path)]
                time.sleep(0.2)
            info = json.loads(info_file.read_text())
            tests = subprocess.run(  # noqa: S603
                [
                    sys.executable,
                    "-m",
                    "pytest",
                    "tests/e2e",
                    "-q",
                    "-rs",
                    "-p",
                    "no:cacheprovider",
                    f"--junitxml={report}",
                ],
                cwd=ROOT,
                env={
                    **os.environ,
                    "E2E_API_URL": info["url"],
                    "E2E_TOKEN": info["token"],
                    "E2E_RECEIVER_URL": receiver_url,
                },
                timeout=SMOKE_TIMEOUT,
                check=False,
            )
            problems += _test_problems(report, tests.returncode)
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
    if "sweep done" not in log_path.read_text(errors="replace"):
        problems.append(f"the scheduled sweep never completed a run; {log_path} ends:\n" + _tail(log_path))
    calls = iam.read_calls(calls_path)
    if not calls:
        problems.append("the artifact's local stack recorded no AWS call of any function")
    problems += iam.ungranted(load_template(artifact.template_path), calls)
    print(f"  {len(calls)} function/action/resource calls, checked against the packaged policies", file=sys.stderr)
    return problems


def _tail(path: Path) -> str:
    return path.read_text(errors="replace")[-3000:]


def _test_problems(report: Path, returncode: int) -> list[str]:
    if not report.exists():
        return [f"the smoke tests wrote no report (exit {returncode})"]
    suite = ElementTree.parse(report).getroot()  # noqa: S314 - our own pytest's report
    suite = suite if suite.tag == "testsuite" else suite[0]
    counts = {k: int(suite.get(k, "0")) for k in ("tests", "failures", "errors", "skipped")}
    print(f"  smoke tests: {counts}", file=sys.stderr)
    if returncode != 0 or counts["tests"] == 0 or counts["failures"] or counts["errors"] or counts["skipped"]:
        return [f"the smoke tests did not all pass: {counts}, exit {returncode}"]
    return []


def serve(argv: list[str]) -> int:
    """The local stack on an unpacked artifact (run by the runtime's Python)."""
    parser = argparse.ArgumentParser(prog="python -m devstack.artifact serve")
    parser.add_argument("--root", required=True, type=Path)
    args, rest = parser.parse_known_args(argv)
    opt = (args.root / "opt").resolve()
    import importlib

    for name in LAYER_MODULES:
        origin = Path(importlib.import_module(name).__file__ or "").resolve()
        if opt not in origin.parents:
            print(f"{name} was imported from {origin}, not from the artifact's {opt}", file=sys.stderr)
            return 2
    from devstack.__main__ import main as devstack_main

    return devstack_main(["--template", str(args.root / "template.yaml"), *rest])


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["serve"]:
        return serve(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m devstack.artifact", description=__doc__.splitlines()[0])
    parser.add_argument("--template", type=Path, default=BUILT_TEMPLATE, help="the template to package")
    parser.add_argument("--sam", default=str(ROOT / ".venv-tools" / "bin" / "sam"), help="the SAM CLI")
    parser.add_argument("--python", default=os.environ.get("RUNTIME_PYTHON", "python3.13"), help="runtime Python")
    parser.add_argument("--runtime-python", help="a Python of the runtime's version with the local stack's tools")
    parser.add_argument(
        "--runtime-sdk", type=Path, help="boto3 and botocore for the runtime's Python, as Lambda provides them"
    )
    parser.add_argument("--no-smoke", action="store_true", help="package and import only")
    parser.add_argument("--keep", type=Path, help="unpack here (kept) instead of a temporary folder")
    args = parser.parse_args(argv)
    if not args.template.is_file():
        print(f"{args.template} does not exist: run `make build` first", file=sys.stderr)
        return 2
    root = args.keep or Path(tempfile.mkdtemp(prefix="artifact-"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        print(f"packaging {args.template} into the local S3, unpacked in {root}", file=sys.stderr)
        artifact = package(args.template.resolve(), root, args.sam)
        print(f"importing {len(artifact.functions)} handlers with {args.python} -I -B -S", file=sys.stderr)
        problems = check_layer(artifact) + check_imports(artifact, args.python, args.runtime_sdk)
        if not problems and not args.no_smoke:
            print("serving the artifact as the local stack; running tests/e2e against it", file=sys.stderr)
            problems = smoke(artifact, args.runtime_python or args.python)
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    for problem in problems:
        print(f"FAIL {problem}", file=sys.stderr)
    if problems:
        return 1
    print(f"artifact ok: {len(artifact.functions)} functions import from their zips", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
