"""The zoom meme through the api: the upload request's format, the signed upload, the worker, the record."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests
from google.cloud import storage
from google.oauth2 import service_account
from jsonschema import Draft202012Validator

from local.bridge import finalized_event, object_data
from memegen.cloud.api import parse_upload_request
from memegen.cloud.openapi import openapi_document
from memegen.cloud.records import record_schema
from memegen.cloud.storage import Store
from memegen.cloud.worker import Result, handle_upload
from memegen.contract import MEME_FORMATS
from memegen.errors import RequestError
from memegen.meme.engine import Engine
from memegen.settings import Settings
from tests.meme.test_zoom import MAX_BYTES, MIN_FRAMES, frames_of


def test_the_upload_request_takes_a_zoom_format_and_the_document_offers_it(settings: Settings) -> None:
    def parse(body: str) -> str:
        return parse_upload_request(body.encode(), content_type="application/json").format

    assert parse('{"content_type": "image/jpeg"}') == "jpeg"
    assert parse('{"content_type": "image/png", "format": "gif"}') == "gif"
    assert parse('{"content_type": "image/png", "format": "webp-zoom"}') == "webp-zoom"
    for wrong in ('"bmp"', '"GIF"', "1", "null"):
        with pytest.raises(RequestError, match="format must be one of"):
            parse(f'{{"content_type": "image/png", "format": {wrong}}}')
    request = openapi_document(settings)["components"]["schemas"]["UploadRequest"]
    assert request["properties"]["format"]["enum"] == list(MEME_FORMATS) and "format" not in request["required"]
    assert {"gif", "webp-zoom"} <= set(MEME_FORMATS)


def test_an_api_upload_asking_for_a_gif_gets_a_zoom_meme_and_its_record_says_so(
    empty_buckets: storage.Client,
    signer: service_account.Credentials,
    engine: Engine,
    settings: Settings,
    photos_dir: Path,
) -> None:
    store = Store(empty_buckets, settings, signing_credentials=signer)
    signed = store.new_upload(content_type="image/jpeg", format="gif")
    assert signed.headers["x-goog-meta-memegen-format"] == "gif"
    photo = (photos_dir / "obama-480p.jpg").read_bytes()
    response = requests.put(signed.url, data=photo, headers=signed.headers, timeout=10)
    assert response.status_code == 200, response.text
    blob = empty_buckets.bucket(settings.input_bucket).get_blob(f"{settings.upload_prefix}{signed.id}")
    assert blob is not None
    outcome = handle_upload(finalized_event(object_data(blob)), store=store, engine=engine, settings=settings)
    assert outcome.result is Result.MADE, outcome
    record = store.latest_record(signed.id)
    assert record is not None and record["status"] == "done", record
    Draft202012Validator(record_schema()).validate(record)
    assert record["content_type"] == "image/gif" and record["meme"].endswith(".gif")
    assert record["zoom"]["face"] == 0 and record["zoom"]["frames"] >= MIN_FRAMES
    meme = empty_buckets.bucket(settings.output_bucket).blob(record["meme"]).download_as_bytes()
    frames, _, image = frames_of(meme)
    assert image.format == "GIF" and len(frames) == record["zoom"]["frames"] and len(meme) <= MAX_BYTES

    # Another caption of the photo is a zoom meme too, its version's version as well.
    asked = signed.id, signed.delete_token
    for _ in range(2):
        version = store.new_version(asked[0], token=asked[1])
        pointer = empty_buckets.bucket(settings.input_bucket).get_blob(f"{settings.upload_prefix}{version.id}")
        assert pointer is not None
        made = handle_upload(finalized_event(object_data(pointer)), store=store, engine=engine, settings=settings)
        assert made.result is Result.MADE, made
        again = store.latest_record(version.id)
        assert again is not None and again["content_type"] == "image/gif" and "zoom" in again, again
        Draft202012Validator(record_schema()).validate(again)
        asked = version.id, version.delete_token
