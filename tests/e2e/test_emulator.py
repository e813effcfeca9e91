"""The local storage server answers browsers as Cloud Storage does: only where a bucket's CORS rule allows."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest
import requests

from local.stack import ROOT, free_port, wait_until_serving

PAGE = "http://127.0.0.1:8080"

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    """The storage server as make run starts it, in its own process (its patches are process-wide)."""
    port = free_port()
    command = [sys.executable, "-m", "local.emulator", "--port", str(port)]
    command += ["--bucket", "in", "--bucket", "out", "--bucket", "bare"]
    command += ["--cors", "in", "PUT", PAGE, "--cors", "out", "GET,HEAD", PAGE]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(url, process=process)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def preflight(url: str, *, origin: str, method: str, headers: str = "") -> requests.Response:
    request_headers = {"Origin": origin, "Access-Control-Request-Method": method}
    if headers:
        request_headers["Access-Control-Request-Headers"] = headers
    return requests.options(url, headers=request_headers, timeout=5)


def test_a_preflight_the_rule_allows_is_answered(server: str) -> None:
    headers = "content-type,x-goog-content-length-range,x-goog-if-generation-match,x-goog-meta-memegen-top"
    response = preflight(f"{server}/in/uploads/x", origin=PAGE, method="PUT", headers=headers)
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == PAGE
    assert response.headers["Access-Control-Allow-Methods"] == "PUT"


@pytest.mark.parametrize(
    ("path", "origin", "method", "headers"),
    [
        ("/in/uploads/x", "https://elsewhere.example", "PUT", "content-type"),  # another origin
        ("/in/uploads/x", PAGE, "DELETE", ""),  # a method the rule does not name
        ("/in/uploads/x", PAGE, "PUT", "x-evil"),  # a header the rule does not name
        ("/out/memes/x/1.jpg", PAGE, "PUT", "content-type"),  # the output bucket takes no PUT
        ("/bare/x", PAGE, "GET", ""),  # a bucket without rules answers no browser
    ],
)
def test_a_preflight_no_rule_allows_gets_no_cors_header(
    server: str, path: str, origin: str, method: str, headers: str
) -> None:
    response = preflight(f"{server}{path}", origin=origin, method=method, headers=headers)
    assert response.status_code == 403
    assert "Access-Control-Allow-Origin" not in response.headers


def test_a_get_carries_the_cors_header_only_for_an_allowed_origin(server: str) -> None:
    url = f"{server}/out/missing.jpg"
    assert requests.get(url, headers={"Origin": PAGE}, timeout=5).headers["Access-Control-Allow-Origin"] == PAGE
    assert (
        "Access-Control-Allow-Origin"
        not in requests.get(url, headers={"Origin": "https://x.example"}, timeout=5).headers
    )
    assert (
        "Access-Control-Allow-Origin"
        not in requests.get(f"{server}/bare/x", headers={"Origin": PAGE}, timeout=5).headers
    )
