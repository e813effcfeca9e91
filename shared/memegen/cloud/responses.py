"""What every answer of the api function carries: its security headers, and JSON bodies."""

from __future__ import annotations

import json
from typing import Any

import flask


def json_response(body: dict[str, Any], *, status: int) -> flask.Response:
    """``body`` as compact JSON with ``status`` and the security headers."""
    response = flask.Response(json.dumps(body, separators=(",", ":")), status=status, mimetype="application/json")
    security_headers(response)
    return response


def security_headers(response: flask.Response) -> None:
    """The headers every answer carries; a Content-Security-Policy that allows nothing unless one is set."""
    response.headers["X-Content-Type-Options"] = "nosniff"
    # The page's URL carries nothing secret, but the signed URLs it fetches must never be sent on.
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers.setdefault("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
