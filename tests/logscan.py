"""The whole test run's log lines, scanned for secrets, tokens and Authorization headers
(docs/design.md §8): every line the service's logger writes in this process, and every log
file of a local stack the tests started."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

# A config secret, a key token (any length of the random part that could be one), a token's
# SHA-256, and an Authorization header in any case or spelling.
PATTERNS = {
    "webhook secret": re.compile(r"whsec_[A-Za-z0-9+/]{16,}"),
    "key token": re.compile(r"rwk_[A-Za-z0-9_-]{16,}"),
    "authorization header": re.compile(r"authorization", re.IGNORECASE),
    "token header": re.compile(r"Token\s+\S{16,}"),
}


@dataclass
class Scan:
    lines: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)

    def all_lines(self) -> list[str]:
        found = list(self.lines)
        for path in self.files:
            if path.exists():
                found.extend(path.read_text(errors="replace").splitlines())
        return found

    def hits(self) -> list[tuple[str, str]]:
        return [(name, line) for line in self.all_lines() for name, p in PATTERNS.items() if p.search(line)]


SCAN = Scan()


class _Recorder(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        SCAN.lines.append(self.format(record))


def watch_logger(logger: logging.Logger, formatter: logging.Formatter | None) -> None:
    """Record every line `logger` writes, formatted as it writes them."""
    recorder = _Recorder()
    if formatter is not None:
        recorder.setFormatter(formatter)
    logger.addHandler(recorder)


def watch_file(path: Path) -> None:
    SCAN.files.append(path)


def redact(line: str) -> str:
    for pattern in PATTERNS.values():
        line = pattern.sub("[...]", line)
    return line[:300]
