"""The api keeps its published contract: every answer is what its OpenAPI document says.

The fuzzing test runs schemathesis, every check on, against the real local stack: the storage server, and the
``api`` function served by functions-framework over HTTP, as ``make run`` and the cloud serve it. Every phase
runs (the document's examples, coverage, fuzzing, and the stateful phase that follows the document's links),
positive and negative data alike: statuses, media types, schemas and headers as documented; valid requests
accepted, invalid ones refused; no server error.

So that the links lead somewhere real, the test does what the uploader's browser and the event bridge do: each
meme the stateful phase creates (an upload, or another caption) gets its photo PUT to the signed URL and is made
by the real worker, and its uploader keeps its deletion token. Its status then answers "done", its share page
and image are there, its token asks for another caption and deletes it; the test fails unless the stateful
phase reached each of those operations with a real id and saw it do its work there.

``MEMEGEN_CONTRACT_EXAMPLES`` (default 20) sets the examples an operation, ``MEMEGEN_CONTRACT_SEED`` another seed.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
import requests
import schemathesis
from google.cloud import storage
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from schemathesis.engine import events
from schemathesis.generation.meta import TestPhase

from local.bridge import finalized_event, object_data
from local.run import function_command
from local.stack import HOST, ROOT, free_port, wait_until_serving
from memegen.cloud.api import parse_upload_request, parse_version_request
from memegen.cloud.openapi import openapi_document
from memegen.cloud.storage import Store
from memegen.cloud.worker import Result, handle_upload
from memegen.contract import DELETE_AUTH_SCHEME, DELETE_TOKEN_PATTERN, JSON_TYPE, OPENAPI_PATH
from memegen.errors import RequestError
from memegen.meme.engine import Engine
from memegen.settings import Settings
from tests.support import data_dir

EXAMPLES = int(os.environ.get("MEMEGEN_CONTRACT_EXAMPLES", "20"))
SEED = int(os.environ.get("MEMEGEN_CONTRACT_SEED", "38"))
# The operations the answer of a new meme links to, and the answer each gives when it does its work.
LINKED = {
    "GET /v1/memes/{id}": 200,
    "GET /m/{id}": 200,
    "GET /m/{id}/image": 302,
    "POST /v1/memes/{id}/versions": 201,
    "DELETE /v1/memes/{id}": 204,
}
NEW_MEMES = ("POST /v1/uploads", "POST /v1/memes/{id}/versions")
# Every check schemathesis 4.32 has for OpenAPI: each must have judged answers in the run.
CHECKS = {
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "response_headers_conformance",
    "positive_data_acceptance",
    "negative_data_rejection",
    "use_after_free",
    "ensure_resource_availability",
    "missing_required_header",
    "ignored_auth",
    "object_level_authorization",
    "unsupported_method",
    "allow_header_conformance",
    "max_response_time",
}
# A fuzzing dictionary, as a fuzzer is seeded with the inputs that break parsers and routers: what random text
# reaches too rarely to be sure of in a few hundred requests. Drawn for strings anywhere (ids, captions,
# media types), each where it fits the generation mode: a value the document refuses only in negative cases.
HOSTILE = [
    "\n",  # a newline in a path: the framework's router matches no path holding one
    f"{'0' * 31}\n",
    "a\r\nb",
    "\x00",
    "\t",
    "\u2028",
    "%0A",
    "..",
    "../uploads",
    "/",
    " ",
    "😀",
    "x" * 5000,
]


# The document's caption limits are the api's, to the character.

# Where the two could part: the edges of the pattern (controls, line separators, surrogates, a character a
# font draws beyond the Basic Multilingual Plane, one that upper case makes two), and of the length.
_EDGES = ["\n", "\t", "\x1f", "\x85", "\u2028", "\ud800", "\U0001f16b", "\U0001f600", "ß", "ŉ", "\u3000", " ", "Ж"]
CAPTIONS = st.one_of(
    st.none(),
    st.text(alphabet=st.one_of(st.characters(), st.sampled_from(_EDGES)), max_size=20),
    st.text(alphabet=st.sampled_from(["a", "Ж", " ", "\t", "😀"]), min_size=115, max_size=125),
)


# A busy machine makes a deadline flaky; the first example also builds the document.
@hypothesis_settings(max_examples=300, deadline=None)
@given(top=CAPTIONS, bottom=CAPTIONS)
def test_the_api_takes_a_caption_exactly_when_the_document_says_it_is_valid(
    top: str | None, bottom: str | None
) -> None:
    schemas = openapi_document(Settings.from_env())["components"]["schemas"]
    for name, parse, body in (
        ("UploadRequest", parse_upload_request, {"content_type": "image/jpeg", "top": top, "bottom": bottom}),
        ("VersionRequest", parse_version_request, {"top": top, "bottom": bottom}),
    ):
        # jsonschema-rs reads patterns as ECMA-262 does, as the document means them (Python's re would take a
        # "$" before a final newline for the end). It cannot hold a lone surrogate, which the pattern refuses:
        # its class has no surrogate code unit.
        lone_surrogate = any("\ud800" <= char <= "\udfff" for value in (top, bottom) for char in value or "")
        valid = not lone_surrogate and jsonschema_rs.validator_for(schemas[name]).is_valid(body)
        try:
            parse(json.dumps(body).encode(), content_type=JSON_TYPE)
        except RequestError as exc:
            assert not valid, f"{name}: the document says {body!r} is valid, the api refuses it: {exc}"
        else:
            assert valid, f"{name}: the document says {body!r} is invalid, the api takes it"


# Schemathesis against the stack.


@pytest.fixture(scope="module")
def api_url(
    storage_client: storage.Client, signing_key_file: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The ``api`` function served by functions-framework on a free port, signing with the key the storage server
    checks."""
    port = free_port()
    url = f"http://{HOST}:{port}"
    # storage_client pointed STORAGE_EMULATOR_HOST at the storage server for the session.
    env = {**os.environ, "GOOGLE_APPLICATION_CREDENTIALS": str(signing_key_file)}
    env.pop("MEMEGEN_SIGNING_SERVICE_ACCOUNT", None)
    command = function_command(target="api", source="functions/api/main.py", signature="http", port=port)
    with (tmp_path_factory.mktemp("api") / "api.log").open("wb") as log:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until_serving(f"{url}/", process=process, timeout=60)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def a_photo() -> bytes:
    """A small real portrait: the worker finds its face, so every format makes a meme, the zoom memes too.

    A photo without a face fails as a zoom meme (NoFaceToZoom): with one, the links to a zoom meme's
    image led only to 404s, and a fresh clone's run never reached a made meme's image.
    """
    return (data_dir("MEMEGEN_PHOTOS", "the test photos") / "obama-240p.jpg").read_bytes()


@dataclass
class Uploader:
    """What the browser and the event bridge do with each new meme the stateful phase creates; what followed."""

    store: Store
    input_bucket: storage.Bucket
    engine: Engine
    settings: Settings
    photo: bytes = field(default_factory=a_photo)
    # The deletion token of each meme the api made, kept as its uploader keeps it.
    tokens: dict[str, str] = field(default_factory=dict)
    # How each request that named one of those memes was answered: (operation, status) -> count.
    reached: Counter[tuple[str, int]] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def after_call(self, case: schemathesis.Case, response: Any) -> None:
        """Note the answer; for a new meme of the stateful phase, its photo and its meme."""
        label = case.operation.label
        with self.lock:
            if str((case.path_parameters or {}).get("id")) in self.tokens:
                self.reached[(label, response.status_code)] += 1
        if response.status_code != 201 or label not in NEW_MEMES:
            return
        created = response.json()
        assert DELETE_TOKEN_PATTERN.fullmatch(created["delete_token"]), created
        with self.lock:
            self.tokens[created["id"]] = created["delete_token"]
        if case.meta is None or case.meta.phase.name != TestPhase.STATEFUL:
            return  # the other phases' memes stay pending: the worker's time goes where the links are followed
        if "upload_url" in created:  # another caption needs no photo: it has its photo's
            put = requests.put(created["upload_url"], data=self.photo, headers=created["upload_headers"], timeout=30)
            assert put.status_code == 200, put.text
        arrived = self.input_bucket.get_blob(f"{self.settings.upload_prefix}{created['id']}")
        assert arrived is not None, created
        event = finalized_event(object_data(arrived))
        outcome = handle_upload(event, store=self.store, engine=self.engine, settings=self.settings)
        # Made, or failed with a reason its status gives (a photo whose bank has no caption left, say).
        assert outcome.result in (Result.MADE, Result.FAILED), outcome


def fuzz_config() -> schemathesis.Config:
    """Every phase and every check, positive and negative data, a fixed seed, nothing written to disk."""
    return schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "cache": {"enabled": False},
            "generation": {
                "mode": "all",
                "max-examples": EXAMPLES,
                "database": "none",
                "dictionaries": {"string": {"dictionary": "hostile", "probability": 0.2}},
            },
            "dictionaries": {"hostile": {"values": HOSTILE}},
            # Every check is on by default but the response time's, which needs a limit: a generous one,
            # so that it catches a request that hangs and never a busy machine.
            "checks": {"max_response_time": 30},
            "phases": {
                "examples": {"enabled": True},
                "coverage": {"enabled": True},
                "fuzzing": {"enabled": True},
                # Twice the scenarios: the share page and image come last in a meme's chain of links, and with
                # EXAMPLES alone two runs in seven reached their answer only once.
                "stateful": {"enabled": True, "generation": {"max-examples": 2 * EXAMPLES}},
            },
        }
    )


@dataclass
class Run:
    """What one fuzzing run did and found."""

    requests: Counter[str] = field(default_factory=Counter)  # by phase
    answers: Counter[tuple[str, int]] = field(default_factory=Counter)  # (operation, status)
    checks: Counter[str] = field(default_factory=Counter)  # how often each check judged an answer
    failures: list[str] = field(default_factory=list)  # one line each, and its request
    errors: list[str] = field(default_factory=list)  # what kept it from testing
    finished: bool = False


def fuzz(schema: Any) -> Run:
    """Run schemathesis's engine over ``schema``, as its command line would, and collect what it found."""
    run = Run()
    for event in schemathesis.engine.from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            recorder = event.recorder
            run.requests[str(event.phase)] += len(recorder.interactions)
            for case_id, interaction in recorder.interactions.items():
                if interaction.response is not None:
                    label = recorder.cases[case_id].value.operation.label
                    run.answers[(label, interaction.response.status_code)] += 1
            for case_id, checks in recorder.checks.items():
                case = recorder.cases[case_id].value
                for check in checks:
                    run.checks[check.name] += 1
                    if check.failure_info is not None:
                        failure = check.failure_info.failure
                        first = (failure.message or "").split("\n", 1)[0]
                        run.failures.append(
                            f"[{event.phase}] {check.name}: {failure.title}: {first}\n    {case.as_curl_command()}"
                        )
        elif isinstance(event, events.NonFatalError):
            run.errors.append(f"{event.label}: {event.value!r}")
        elif isinstance(event, events.FatalError):
            run.errors.append(f"fatal: {event.exception!r}")
        elif isinstance(event, events.EngineFinished):
            run.finished = True
            run.failures += [f"[after the run] {failure.title}: {failure.message}" for failure in event.failures]
    return run


@pytest.mark.slow
def test_every_answer_is_what_the_document_says_under_fuzzing(
    api_url: str,
    empty_buckets: storage.Client,
    store: Store,
    settings: Settings,
    engine: Engine,
    capsys: pytest.CaptureFixture[str],
) -> None:
    uploader = Uploader(store, empty_buckets.bucket(settings.input_bucket), engine, settings)
    schema = schemathesis.openapi.from_url(api_url + OPENAPI_PATH, config=fuzz_config())

    # The token of the meme a request names, where its uploader has it, as the document's links carry it.
    # Through an auth provider, schemathesis takes it for a real credential (not one it generated) and
    # checks that the api refuses the same request without it and with a wrong one.
    @schema.auth(refresh_interval=None)
    class UploaderToken:
        def get(self, case: schemathesis.Case, context: schemathesis.AuthContext) -> str | None:
            return uploader.tokens.get(str((case.path_parameters or {}).get("id")))

        def set(self, case: schemathesis.Case, data: str, context: schemathesis.AuthContext) -> None:
            case.headers["Authorization"] = f"{DELETE_AUTH_SCHEME} {data}"

    @schema.hook
    def after_call(context: schemathesis.HookContext, case: schemathesis.Case, response: Any) -> None:
        uploader.after_call(case, response)

    run = fuzz(schema)

    statuses = {label: {s: n for (op, s), n in sorted(uploader.reached.items()) if op == label} for label in LINKED}
    operations = sorted({label for label, _ in run.answers})
    with capsys.disabled():
        print(
            f"\nschemathesis: {sum(run.requests.values())} requests {dict(run.requests)}, {len(run.failures)} failures,"
            f" {len(run.errors)} errors; answers by operation:",
            *(f"  {op}: {dict((s, n) for (o, s), n in sorted(run.answers.items()) if o == op)}" for op in operations),
            f"{len(uploader.tokens)} memes made; answers to the requests that named one:",
            *(f"  {label}: {answers}" for label, answers in statuses.items()),
            f"checks run: {dict(sorted(run.checks.items()))}",
            sep="\n",
        )
    assert run.finished and not run.errors, run.errors
    assert set(run.checks) >= CHECKS, f"checks that never ran: {CHECKS - set(run.checks)}"
    distinct = list(dict.fromkeys(run.failures))
    assert not distinct, f"{len(run.failures)} failures:\n" + "\n".join(distinct[:20])
    # The links took the stateful phase to every operation on a meme with its real id (and token), and each
    # did its work there: a meme shown, shared, captioned again and deleted.
    missed = {label: answers for label, answers in statuses.items() if LINKED[label] not in answers}
    assert not missed, f"operations the links never led to with a real id, or never to their work: {missed}"
