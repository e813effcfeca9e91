"""Cloud Function ``api``: the upload page, signed upload URLs and meme status (``memegen.cloud.api`` does the work)."""

from __future__ import annotations

import functools
import os

import flask
import functions_framework
import werkzeug.exceptions
from google.cloud import storage
from google.oauth2 import service_account

from memegen.cloud.api import handle
from memegen.cloud.storage import Store
from memegen.settings import Settings


@functools.cache
def services() -> tuple[Settings, Store]:
    """Settings and the storage client, built by an instance's first request and kept for the rest.

    In the cloud URLs are signed through IAM (``signing_service_account``); locally
    GOOGLE_APPLICATION_CREDENTIALS names the development key of local/devkey.py.
    """
    settings = Settings.from_env()
    key_file = None if settings.signing_service_account else os.environ.get("GOOGLE_APPLICATION_CREDENTIALS")
    signer = service_account.Credentials.from_service_account_file(key_file) if key_file else None
    return settings, Store(storage.Client(), settings, signing_credentials=signer)


@functions_framework.http
def api(request: flask.Request) -> flask.Response:
    """HTTP: the page, uploads, a meme's status, versions and deletion, share links, the OpenAPI document."""
    settings, store = services()
    return handle(request, store=store, settings=settings)


@functions_framework.errorhandler(werkzeug.exceptions.NotFound)
def unrouted(error: werkzeug.exceptions.NotFound) -> flask.Response:
    """A path the framework's own routes do not match, answered by the api like any other: JSON, never HTML.

    The framework routes every path to the function but for two of its own (``/robots.txt`` and
    ``/favicon.ico``) and paths its ``path`` converter cannot match (a newline in them, ``%0A``): Flask
    would answer those with its HTML page, where the document promises the api's JSON error.
    """
    settings, store = services()
    return handle(flask.request, store=store, settings=settings)
