"""V4 signed URLs of the buckets' objects: the browser's PUT of a photo and GET of a meme.

In the cloud there is no private key: the IAM Credentials signBlob API signs with the service
account's Google-managed key. Local runs and tests sign with a key of their own.
"""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import google.auth
import google.auth.transport.requests
from google.auth.credentials import Credentials
from google.cloud import storage

from memegen.errors import SigningUnavailable
from memegen.settings import Settings


class Signer:
    """Signs V4 URLs that reach the objects at ``api_endpoint``, living ``settings.url_ttl_seconds``.

    With ``settings.signing_service_account``, through signBlob, authorised by the runtime's access
    token (fetched once, refreshed when it expires); else with ``credentials``, which must hold a
    key; else ``sign`` raises ``SigningUnavailable``.
    """

    def __init__(self, settings: Settings, *, api_endpoint: str, credentials: Credentials | None = None) -> None:
        self._settings = settings
        self._api_endpoint = api_endpoint
        self._credentials = credentials
        self._token_lock = threading.Lock()
        self._token_credentials: Credentials | None = None

    @property
    def origin(self) -> str:
        """The origin (``scheme://host[:port]``) of every URL this signer makes, without signing one."""
        parts = urlsplit(self._api_endpoint)
        return f"{parts.scheme}://{parts.netloc}"

    def sign(self, blob: storage.Blob, *, method: str, headers: dict[str, str] | None = None) -> str:
        """A V4 signed URL for ``method`` on ``blob``; every header in ``headers`` is signed and must be sent."""
        signer: dict[str, Any]
        if self._settings.signing_service_account:
            signer = {
                "service_account_email": self._settings.signing_service_account,
                "access_token": self._access_token(),
            }
        elif self._credentials is not None:
            signer = {"credentials": self._credentials}
        else:
            raise SigningUnavailable("set settings.signing_service_account, or pass signing_credentials with a key")
        return str(
            blob.generate_signed_url(
                version="v4",
                expiration=timedelta(seconds=self._settings.url_ttl_seconds),
                method=method,
                headers=headers,
                # Where the client talks to: the emulator's address in local runs, so that a
                # browser can use the URL there too.
                api_access_endpoint=self._api_endpoint,
                **signer,
            )
        )

    def _access_token(self) -> str:
        with self._token_lock:
            credentials = self._token_credentials
            if credentials is None:
                credentials, _ = google.auth.default(scopes=["https://www.googleapis.com/auth/cloud-platform"])
                self._token_credentials = credentials
            if not credentials.valid:
                credentials.refresh(google.auth.transport.requests.Request())
            return str(credentials.token)
