"""Cold start of every function of the built artifact against its floor, side by side.

Each sample is a fresh `python3.13 -I -B` process (the runtime's Python, no bytecode written,
as on Lambda's read-only file system) whose path is the function's folder, then the layer, then
a Python 3.13 boto3 standing in for the runtime's. It times, from its first line, what a cold
start pays before the first request can be answered: importing the handler module and making
the clients and HTTP session the function uses. The floor is the same kind of process that
imports boto3 and makes only those clients. Rounds alternate function and floor, so both see
the same machine load; the figure is the median of the rounds, with min and max.

Run `make build` first: this measures `.aws-sam/build`, the built template `make deploy` ships.
To see what a change did, copy `.aws-sam/build` of the commit before it somewhere and name it
in COLDSTART_BASELINE: each round then samples that build too, and a second table prints the
change in milliseconds, paired round by round.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from devstack.iam import grants_of
from devstack.template import functions, load_template

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / ".aws-sam" / "build"
RUNTIME = ROOT / ".bench" / "runtime"  # boto3 for Python 3.13 (make bench installs it)
PYTHON = os.environ.get("RUNTIME_PYTHON", "python3.13")
ROUNDS = int(os.environ.get("COLDSTART_ROUNDS", "15"))
# Measure only these function folders (comma-separated), e.g. COLDSTART_FUNCTIONS=sweep.
ONLY = {name for name in os.environ.get("COLDSTART_FUNCTIONS", "").split(",") if name}
# Another build to set beside this one (a copy of .aws-sam/build made at an earlier commit):
# each round then also samples the function from it, and the change is printed, paired.
BASELINE = Path(os.environ["COLDSTART_BASELINE"]) if os.environ.get("COLDSTART_BASELINE") else None
TARGET = 1.2

_PRELUDE = "import sys, time\nt0, c0 = time.perf_counter(), time.process_time()\nsys.path[:0] = {paths!r}\n"
_EPILOGUE = "\nprint((time.perf_counter() - t0) * 1000, (time.process_time() - c0) * 1000)\n"


def clients_of(template: dict[str, Any], logical_id: str) -> list[str]:
    """The AWS clients a function uses, read from its template policies (or its own role's)."""
    resource = template["Resources"][logical_id]
    services = {action.split(":", 1)[0] for action, _ in grants_of(resource, logical_id, template)}
    return [service for service in ("dynamodb", "sqs") if service in services]


STATIC_ONLY = "console"  # imports neither the layer nor boto3: its floor is a bare interpreter


def function_code(folder: str, clients: list[str], build: Path = BUILD) -> str:
    warm = (
        ""
        if folder == STATIC_ONLY
        else "from webhook_service.wiring import deliverer\nd = deliverer()\nd.store.table.client\nd.queue.client\n"
        if folder == "deliver"
        else "from webhook_service.wiring import services\ns = services()\n"
        + ("s.store.table.client\n" if "dynamodb" in clients else "")
        + ("s.queue.client\n" if "sqs" in clients else "")
    )
    paths = [str(build / _logical(folder)), str(build / "ServiceLayer" / "python"), str(RUNTIME)]
    return _PRELUDE.format(paths=paths) + "import app\n" + warm + _EPILOGUE


def floor_code(clients: list[str], http: bool = False) -> str:
    """boto3 and the function's AWS clients; with `http`, also the HTTP client it uses
    (the standard library's http.client and ssl), for the deliver function."""
    body = "import boto3\n" + "".join(f"boto3.client({c!r})\n" for c in clients)
    paths = [str(RUNTIME)]
    if http:
        body += "import http.client\nimport ssl\n"
    return _PRELUDE.format(paths=paths) + body + _EPILOGUE


def _logical(folder: str) -> str:
    return "".join(part.title() for part in folder.split("_")) + "Function"


def sample(code: str) -> tuple[float, float]:
    """(wall ms, CPU ms) of one fresh process."""
    env = {
        "PATH": os.environ["PATH"],
        "PYENV_VERSION": os.environ.get("PYENV_VERSION", ""),
        "AWS_DEFAULT_REGION": "eu-west-1",
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "TABLE_NAME": "bench",
        "QUEUE_URL": "https://sqs.eu-west-1.amazonaws.com/123456789012/bench",
        "POWERTOOLS_SERVICE_NAME": "webhooks",
        "POWERTOOLS_METRICS_NAMESPACE": "RicloudWebhooks",
    }
    done = subprocess.run([PYTHON, "-I", "-B", "-c", code], env=env, capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])
    wall, cpu = done.stdout.strip().splitlines()[-1].split()
    return float(wall), float(cpu)


Samples = list[tuple[float, float]]  # (wall ms, CPU ms) of each fresh process


def main() -> int:
    if not (BUILD / "ServiceLayer").is_dir():
        print("no build: run `make build` first", file=sys.stderr)
        return 2
    rows, paired = _measure(load_template())
    print(f"cold start: import + clients; median of {ROUNDS} fresh processes (min-max), ms; target ratio <= {TARGET}")
    print("CPU time is the measure (wall time shown too: on a shared machine it carries other processes' load)")
    print(f"{'function':28} {'clients':18} {'function CPU':>18} {'floor CPU':>18} {'ratio':>6} {'wall ratio':>10}")
    worst = 0.0
    for name, client_names, own, floor in rows:
        figures = f"{name:28} {client_names:18} {_fmt([c for _, c in own]):>18} {_fmt([c for _, c in floor]):>18}"
        if name.endswith("(vs bare python)"):  # its floor is ~0 ms: the milliseconds are the figure
            print(f"{figures} {'-':>6} {'-':>10}")
            continue
        ratio = statistics.median(c for _, c in own) / statistics.median(c for _, c in floor)
        wall = statistics.median(w for w, _ in own) / statistics.median(w for w, _ in floor)
        if "(vs" not in name:
            worst = max(worst, ratio)
        print(f"{figures} {ratio:6.2f} {wall:10.2f}" + ("" if ratio <= TARGET else "  OVER"))
    print(f"worst CPU ratio {worst:.2f} (target {TARGET}): {'met' if worst <= TARGET else 'NOT met'}")
    if paired:
        _print_paired(paired)
    return 0


def _measure(
    template: dict[str, Any],
) -> tuple[list[tuple[str, str, Samples, Samples]], list[tuple[str, Samples, Samples, Samples]]]:
    """Every function's rows (name, clients, its samples, its floor's), and, with a baseline
    build, (name, the baseline's samples, this build's, the floor's)."""
    rows, paired = [], []
    for function in functions(template):
        folder = function.code_dir.name
        if ONLY and folder not in ONLY:
            continue
        clients = clients_of(template, function.logical_id)
        http = folder == "deliver"
        static = folder == STATIC_ONLY
        own: Samples = []
        floor: Samples = []
        aws_only: Samples = []
        before: Samples = []
        baseline = BASELINE if BASELINE and not static and (BASELINE / _logical(folder)).is_dir() else None
        for _ in range(ROUNDS):
            own.append(sample(function_code(folder, clients)))
            if baseline:
                before.append(sample(function_code(folder, clients, baseline)))
            floor.append(sample(_PRELUDE.format(paths=[]) + _EPILOGUE if static else floor_code(clients, http)))
            if http:
                aws_only.append(sample(floor_code(clients)))
        # Not held to the target: a ratio to an empty process says little; its milliseconds do.
        name = f"{folder} (vs bare python)" if static else folder
        rows.append((name, "+".join(clients) + ("+http" if http else ""), own, floor))
        if aws_only:
            rows.append((f"{folder} (vs AWS only)", "+".join(clients), own, aws_only))
        if before:
            paired.append((folder, before, own, floor))
    return rows, paired


def _print_paired(paired: list[tuple[str, Samples, Samples, Samples]]) -> None:
    """This build beside COLDSTART_BASELINE's, sampled in the same rounds (CPU ms, medians)."""
    print(f"\nbeside the baseline build {BASELINE}, sampled in the same rounds")
    print(f"{'function':28} {'baseline CPU':>18} {'this build CPU':>18} {'change ms':>10} {'ratios':>12}")
    for name, before, own, floor in paired:
        was, now, base = (statistics.median(c for _, c in samples) for samples in (before, own, floor))
        ratios = f"{was / base:.2f} -> {now / base:.2f}"
        figures = f"{_fmt([c for _, c in before]):>18} {_fmt([c for _, c in own]):>18}"
        print(f"{name:28} {figures} {now - was:+10.1f} {ratios:>12}")


def _fmt(values: list[float]) -> str:
    return f"{statistics.median(values):.0f} ({min(values):.0f}-{max(values):.0f})"


if __name__ == "__main__":
    sys.exit(main())
