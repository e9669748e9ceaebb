"""What the local stack prints, and how it survives losing where it prints to.

`make dev 2>&1 | tee dev.log` and Ctrl-C: the terminal signals every process of the job,
`tee` ends first, and the stack's next line goes to a pipe with no reader. Python then
raises BrokenPipeError (it ignores SIGPIPE), and a line written on the way to the final save
ended the stack before it saved (a terminal that hangs up gives EIO the same way). So the
standard streams are wrapped: the first write that fails points the stream's file
descriptor at /dev/null, and everything after it, the save included, goes on unheard.

By default (`make dev`, `--quiet`) it says one line a request (the gateway) and one an
invocation of a queue's function, and warnings; VERBOSE=1 (no `--quiet`) adds the
functions' JSON log lines, their metric lines and the local stack's own details.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
from typing import TextIO, cast

QUIET_LOGGERS = ("botocore", "boto3", "urllib3", "werkzeug", "moto")


class Unbreakable(io.TextIOBase):
    """A text stream that never raises for where it writes to: once a write fails (a
    closed pipe, a hung-up terminal), its descriptor is /dev/null and writes go on."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._gone = False

    def write(self, text: str) -> int:
        if not self._gone:
            try:
                self._stream.write(text)
                if "\n" in text:
                    self._stream.flush()  # a line at a time, as on a terminal, whatever the stream is
            except OSError:
                self._lose()
        return len(text)

    def flush(self) -> None:
        if not self._gone:
            try:
                self._stream.flush()
            except OSError:
                self._lose()

    def fileno(self) -> int:
        return self._stream.fileno()

    def isatty(self) -> bool:
        return not self._gone and self._stream.isatty()

    def writable(self) -> bool:
        return True

    def _lose(self) -> None:
        """Point the descriptor at /dev/null: the stream's buffer, and anything else that
        writes to the descriptor (this process's C code, a child started later), drain there."""
        self._gone = True
        with contextlib.suppress(OSError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self._stream.fileno())
            os.close(devnull)
        with contextlib.suppress(OSError, ValueError):
            self._stream.flush()


def guard_streams() -> None:
    """Wrap standard output and error (before any logging handler takes them)."""
    # Typed as the TextIO it stands for: print() and logging call write() and flush() only.
    if not isinstance(sys.stdout, Unbreakable):
        sys.stdout = cast(TextIO, Unbreakable(sys.stdout))
    if not isinstance(sys.stderr, Unbreakable):
        sys.stderr = cast(TextIO, Unbreakable(sys.stderr))


def configure() -> None:
    """The local stack's own log lines, one line each, on standard error."""
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s", stream=sys.stderr)
    for name in QUIET_LOGGERS:  # their INFO lines (credentials found, endpoints) say nothing to a developer
        logging.getLogger(name).setLevel(logging.WARNING)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)


def quiet_functions() -> None:
    """The functions' errors only, and no metric lines: set after the template's environment
    (which says INFO), for the functions of this process and the workers started later."""
    os.environ["POWERTOOLS_LOG_LEVEL"] = "ERROR"
    os.environ["POWERTOOLS_METRICS_DISABLED"] = "true"
    from webhook_service.logs import logger

    logger.setLevel("ERROR")  # made at import, before this


def say(text: str) -> None:
    """A line of the local stack's own, on standard error (standard output is the banner)."""
    print(text, file=sys.stderr, flush=True)
