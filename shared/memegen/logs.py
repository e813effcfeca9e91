"""Structured log lines: one JSON object per line on stdout, as Cloud Logging reads them."""

from __future__ import annotations

import json
import sys
import threading

# Cloud Logging's severities; anything else would land as DEFAULT and hide errors.
SEVERITIES = frozenset({"DEBUG", "INFO", "NOTICE", "WARNING", "ERROR", "CRITICAL", "ALERT", "EMERGENCY"})

# The functions serve requests on several threads: one line must never interleave with another.
_lock = threading.Lock()


def log(severity: str, message: str, **fields: object) -> None:
    """Write one structured log line: ``{"severity", "message", **fields}``.

    Values that JSON cannot hold (paths, datetimes) are written as their ``str``.
    """
    if severity not in SEVERITIES:
        raise ValueError(f"unknown severity {severity!r}; use one of {sorted(SEVERITIES)}")
    # ASCII with \u escapes: the line survives any stdout encoding, and Cloud Logging decodes it.
    line = json.dumps({"severity": severity, "message": message, **fields}, default=str)
    with _lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()
