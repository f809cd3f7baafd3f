"""Function output: ``print`` and ``logging`` in Lambda's text format.

Logging records look like ``[LEVEL]\\t<ISO time>Z\\t<request id>\\t<message>``; unhandled
errors are written as one line whose parts are joined with ``\\r`` and indented with
U+00A0, as Lambda's Python runtime does (one CloudWatch event per error).
"""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import Any

LOG_FORMAT = "[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(aws_request_id)s\t%(message)s\n"
DATE_FORMAT = "%Y-%m-%dT%H:%M:%S"
_NBSP = "\u00a0"


class RequestIdState:
    """Holds the request id of the invocation in progress (read by the log filter)."""

    request_id = ""


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.aws_request_id = RequestIdState.request_id
        return True


class _StdoutHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stdout.write(self.format(record))
        except Exception:  # noqa: BLE001 - logging must never break the function
            self.handleError(record)


def setup_logging() -> None:
    logging.Formatter.converter = time.gmtime
    handler = _StdoutHandler()
    handler.setFormatter(logging.Formatter(LOG_FORMAT, DATE_FORMAT))
    handler.addFilter(_RequestIdFilter())
    root = logging.getLogger()
    root.addHandler(handler)
    level = os.environ.get("AWS_LAMBDA_LOG_LEVEL", "").upper()
    if level in logging.getLevelNamesMapping():
        root.setLevel(level)


def _indent(line: str) -> str:
    stripped = line.lstrip(" ")
    return _NBSP * (len(line) - len(stripped)) + stripped


def log_error(error: dict[str, Any]) -> None:
    head = "[ERROR]"
    if error.get("errorType"):
        head += " " + error["errorType"]
    if error.get("errorMessage"):
        head += (":" if error.get("errorType") else "") + " " + error["errorMessage"]
    lines = [head]
    trace = error.get("stackTrace")
    if trace is not None:
        lines.append("Traceback (most recent call last):")
        for element in trace:
            if element:
                lines.extend(_indent(line) for line in element.splitlines())
            else:
                lines.append("")
    sys.stdout.write("\r".join(lines) + "\n")
