"""``make run``: MemeGen on one machine, no cloud account.

Starts, each as a child process in its own process group: the storage emulator (with the input
and output buckets), the ``on_upload`` and ``api`` functions each in its own functions-framework
server, and the event bridge that stands in for Eventarc. Prints the page's address, then runs
until Ctrl-C or SIGTERM, or until a child dies, and stops every child, and what they started,
before it exits.

``python -m local.run [--api-port 8080] [--storage-port N] [--on-upload-port N] [--key .local/dev-key.json]``
(a port of 0, the default, is any free port)
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from local import stop_on_signals
from local.devkey import write_key
from local.stack import HOST, ROOT, Stack, Stopped, free_port, port_is_free, wait_until_serving
from memegen.settings import Settings


def function_command(*, target: str, source: str, signature: str, port: int) -> list[str]:
    """A functions-framework server of one function, as Cloud Functions runs it."""
    return [
        sys.executable,
        "-m",
        "functions_framework",
        f"--target={target}",
        f"--source={ROOT / source}",
        f"--signature-type={signature}",
        f"--host={HOST}",
        f"--port={port}",
    ]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the stack until stopped; 0 when stopped by a signal, 1 when a child died or failed to start."""
    parser = argparse.ArgumentParser(prog="python -m local.run", description="MemeGen on one machine.")
    parser.add_argument("--api-port", type=int, default=0, help="the page and API (0: any free port)")
    parser.add_argument("--on-upload-port", type=int, default=0)
    parser.add_argument("--storage-port", type=int, default=0)
    parser.add_argument("--key", type=Path, default=ROOT / ".local" / "dev-key.json", help="made when missing")
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    api_port, on_upload_port, storage_port = (
        port or free_port() for port in (args.api_port, args.on_upload_port, args.storage_port)
    )
    taken = [port for port in (api_port, on_upload_port, storage_port) if not port_is_free(port)]
    if taken:
        # Checked before anything starts: otherwise another server on the port (a second
        # `make run`, say) would answer the readiness checks and pass for this stack.
        print(f"cannot start: port {taken[0]} on {HOST} is taken (another MemeGen running?)", file=sys.stderr)
        return 1
    if not args.key.exists():
        write_key(args.key)
        print(f"made a development signing key: {args.key}", flush=True)

    storage_url = f"http://{HOST}:{storage_port}"
    env = {
        **os.environ,
        "STORAGE_EMULATOR_HOST": storage_url,
        "PYTHONUNBUFFERED": "1",
    }
    stack = Stack()
    stop = stop_on_signals()
    try:
        bucket_args = [f"--bucket={settings.input_bucket}", f"--bucket={settings.output_bucket}"]
        # The buckets' CORS rules of the cloud stack, for the page's origin: the browser PUTs
        # photos to the input bucket and fetches memes from the output bucket.
        page_origin = f"http://{HOST}:{api_port}"
        bucket_args += ["--cors", settings.input_bucket, "PUT", page_origin]
        bucket_args += ["--cors", settings.output_bucket, "GET,HEAD", page_origin]
        # Signed URLs are checked against the development key the api signs with, as Cloud Storage checks them.
        bucket_args += ["--verify-key", str(args.key.resolve())]
        storage = stack.start(
            "storage emulator",
            [sys.executable, "-m", "local.emulator", f"--host={HOST}", f"--port={storage_port}", *bucket_args],
            url=storage_url,
            env=env,
        )
        wait_until_serving(f"{storage.url}/", process=storage.process, name=storage.name, stop=stop)
        # One request at a time, as the function is deployed (concurrency 1): the engine's
        # interpreters are not to be shared between threads.
        on_upload = stack.start(
            "on_upload",
            function_command(
                target="on_upload", source="functions/on_upload/main.py", signature="cloudevent", port=on_upload_port
            ),
            url=f"http://{HOST}:{on_upload_port}",
            env={**env, "THREADS": "1"},
        )
        # Locally the api signs with the development key; in the cloud, through IAM.
        api = stack.start(
            "api",
            function_command(target="api", source="functions/api/main.py", signature="http", port=api_port),
            url=f"http://{HOST}:{api_port}",
            env={**env, "GOOGLE_APPLICATION_CREDENTIALS": str(args.key.resolve())},
        )
        for server in (on_upload, api):
            wait_until_serving(f"{server.url}/", process=server.process, name=server.name, stop=stop)
        stack.start(
            "bridge",
            [
                sys.executable,
                "-m",
                "local.bridge",
                f"--storage={storage_url}",
                f"--bucket={settings.input_bucket}",
                f"--prefix={settings.upload_prefix}",
                f"--target={on_upload.url}/",
            ],
            url="",
            env=env,
        )
        buckets = f"{settings.input_bucket}, {settings.output_bucket}"
        print(f"storage emulator at {storage_url} (buckets {buckets})", flush=True)
        print(f"MemeGen is running at {api.url}/ (Ctrl-C stops it)", flush=True)
        while not stop.wait(0.5):
            if (dead := stack.exited()) is not None:
                status = dead.process.returncode
                print(f"{dead.name} exited with status {status}: stopping", file=sys.stderr, flush=True)
                return 1
        return 0
    except Stopped:
        return 0
    except (RuntimeError, TimeoutError) as exc:
        print(f"cannot start: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        stack.stop()
        print("stopped", flush=True)


if __name__ == "__main__":
    sys.exit(main())
