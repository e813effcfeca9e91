"""The signed URLs the api hands out, and the independent V4 verifier that checks them.

The verifier (``tests.support.verify_v4``) is written from Google's documentation (canonical request,
string to sign, RSA-SHA256 with the signing key's public half), since the storage emulator does not
verify signatures: here it must refuse what a real Cloud Storage would refuse.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import rsa
from flask.testing import FlaskClient

from tests.support import (
    UrlExpired,
    new_upload,
    verify_v4,
)


def test_the_verifier_refuses_a_tampered_request(client: FlaskClient, public_key: rsa.RSAPublicKey) -> None:
    upload = new_upload(client, top="hello")
    headers = upload["upload_headers"]
    verify_v4(upload["upload_url"], method="PUT", headers=headers, public_key=public_key)
    with pytest.raises(InvalidSignature):
        verify_v4(
            upload["upload_url"], method="PUT", headers={**headers, "Content-Type": "image/png"}, public_key=public_key
        )
    with pytest.raises(InvalidSignature):
        verify_v4(upload["upload_url"], method="GET", headers=headers, public_key=public_key)
    with pytest.raises(InvalidSignature):
        bigger = {**headers, "x-goog-content-length-range": "0,999999999999"}
        verify_v4(upload["upload_url"], method="PUT", headers=bigger, public_key=public_key)
    with pytest.raises(AssertionError):
        # A signed header the client would leave out.
        verify_v4(
            upload["upload_url"],
            method="PUT",
            headers={k: v for k, v in headers.items() if k != "x-goog-meta-memegen-top"},
            public_key=public_key,
        )


def test_signed_urls_refuse_expiry_another_object_and_a_changed_signature(
    client: FlaskClient, public_key: rsa.RSAPublicKey
) -> None:
    upload = new_upload(client)
    url, headers = upload["upload_url"], upload["upload_headers"]
    query = parse_qs(urlsplit(url).query)
    signed_at = datetime.strptime(query["X-Goog-Date"][0], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    lifetime = timedelta(seconds=int(query["X-Goog-Expires"][0]))
    assert lifetime <= timedelta(minutes=15)
    verify_v4(url, method="PUT", headers=headers, public_key=public_key, now=signed_at + lifetime)
    with pytest.raises(UrlExpired):
        late = signed_at + lifetime + timedelta(seconds=1)
        verify_v4(url, method="PUT", headers=headers, public_key=public_key, now=late)
    other = url.replace(upload["id"], "f" * 32)
    with pytest.raises(InvalidSignature):
        verify_v4(other, method="PUT", headers=headers, public_key=public_key)
    signature = query["X-Goog-Signature"][0]
    changed = signature[:-1] + ("0" if signature[-1] != "0" else "1")
    with pytest.raises(InvalidSignature):
        verify_v4(url.replace(signature, changed), method="PUT", headers=headers, public_key=public_key)
