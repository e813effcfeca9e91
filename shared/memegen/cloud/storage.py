"""The only module that touches the buckets: uploads in, memes and records out.

The bucket layout and object names are :mod:`memegen.contract`'s; every output object is written
once (``if_generation_match=0``). What an upload is and what its objects are called:
:mod:`memegen.cloud.uploads`; the URLs the browser uses are signed in :mod:`memegen.cloud.signing`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hmac
import json
import secrets
import time
import uuid
from collections.abc import Mapping
from typing import Any

from google.api_core.exceptions import NotFound, PreconditionFailed
from google.api_core.retry import Retry
from google.auth.credentials import Credentials
from google.cloud import storage
from google.cloud.storage.retry import DEFAULT_RETRY

from memegen.cloud.signing import Signer
from memegen.cloud.uploads import (
    NewVersion,
    SignedUpload,
    Upload,
    caption_metadata,
    format_metadata,
    meme_name,
    record_name,
    token_hash,
)
from memegen.contract import (
    DEFAULT_FORMAT,
    ID_PATTERN,
    ISSUED_GENERATION,
    JSON_TYPE,
    MAX_VERSION_BYTES,
    MEME_FORMATS,
    MEME_PREFIX,
    RECORD_NAME_PATTERN,
    RECORD_PREFIX,
    VERSION_TYPE,
    WRITER_KEY,
    record_object,
    version_marker,
    versions_prefix,
)
from memegen.errors import (
    DeleteRefused,
    ImageTooLarge,
    MemeNotFound,
    PhotoNotKept,
    TooManyVersions,
    UnsupportedImage,
    UploadGone,
)
from memegen.settings import Settings


class Store:
    """Reads uploads and writes memes and records; signs the URLs the browser uses.

    Transient storage errors (``google.api_core.exceptions.ServiceUnavailable``, connection
    errors) are retried by the client for ``retry``'s timeout (by default
    ``settings.storage_retry_seconds``) and then raised.
    """

    def __init__(
        self,
        client: storage.Client,
        settings: Settings,
        *,
        signing_credentials: Credentials | None = None,
        retry: Retry | None = None,
    ) -> None:
        self._client = client
        self._settings = settings
        self._signer = Signer(settings, api_endpoint=client.api_endpoint, credentials=signing_credentials)
        self._retry = retry or DEFAULT_RETRY.with_timeout(settings.storage_retry_seconds)
        self._input = client.bucket(settings.input_bucket)
        self._output = client.bucket(settings.output_bucket)

    # Uploads.

    def read_upload(self, name: str, generation: int) -> tuple[Upload, bytes]:
        """The upload at exactly that generation and its bytes.

        Raises ``UploadGone`` when that generation no longer exists, and ``ImageTooLarge`` for an
        object over ``settings.max_bytes``, before downloading any of it.
        """
        blob = self._input.blob(name, generation=generation)
        try:
            blob.reload(retry=self._retry)
        except NotFound as exc:
            raise UploadGone(f"{name}#{generation} no longer exists") from exc
        # The object as stored now, read as the event's copy of it was (Upload.from_resource).
        resource = {
            "name": name,
            "generation": generation,
            "size": blob.size,
            "contentType": blob.content_type,
            "metadata": blob.metadata,
        }
        upload = Upload.from_resource(resource, prefix=self._settings.upload_prefix)
        if upload.size > self._settings.max_bytes:
            raise ImageTooLarge(f"the upload is {upload.size} bytes, over the limit of {self._settings.max_bytes}")
        try:
            data = blob.download_as_bytes(retry=self._retry)
        except NotFound as exc:
            raise UploadGone(f"{name}#{generation} was deleted while being read") from exc
        if upload.content_type == VERSION_TYPE:
            return self._version_photo(upload, data)
        return upload, data

    def _version_photo(self, upload: Upload, data: bytes) -> tuple[Upload, bytes]:
        """The photo another caption is of, and the upload with its source and variant."""
        refused = UnsupportedImage("this upload is neither a photo nor another caption of one")
        try:
            pointer = json.loads(data) if len(data) <= MAX_VERSION_BYTES else None
        except ValueError as exc:
            raise refused from exc
        source = pointer.get("source") if isinstance(pointer, dict) else None
        variant = pointer.get("variant") if isinstance(pointer, dict) else None
        if not (isinstance(source, str) and ID_PATTERN.fullmatch(source) and isinstance(variant, int) and variant > 0):
            raise refused
        blob = self._input.blob(f"{self._settings.upload_prefix}{source}")
        try:
            photo = blob.download_as_bytes(retry=self._retry)
        except NotFound as exc:
            raise PhotoNotKept(
                "the photo is no longer kept (photos are deleted a day after they are uploaded): upload it again"
            ) from exc
        return dataclasses.replace(upload, source=source, variant=variant), photo

    def new_upload(
        self, *, content_type: str, top: str | None = None, bottom: str | None = None, format: str = DEFAULT_FORMAT
    ) -> SignedUpload:
        """A server-chosen upload id and a V4 signed PUT URL for ``{upload_prefix}{id}`` in the input bucket.

        The URL lives ``settings.url_ttl_seconds``; the returned headers are all signed, so the
        upload must carry exactly them: its content type, the size range (1 byte to
        ``settings.max_bytes``), the precondition that no object is there yet, the captions and
        the meme's ``format`` (a ``MEME_FORMATS`` name).
        """
        new_id = uuid.uuid4().hex
        headers = {
            "Content-Type": content_type,
            # From 1 byte: an empty upload has nothing to make a meme of.
            "x-goog-content-length-range": f"1,{self._settings.max_bytes}",
            # Signed, so the URL uploads once: used again within its lifetime, it is refused (412)
            # instead of replacing the photo and its meme.
            "x-goog-if-generation-match": "0",
        }
        metadata = caption_metadata(top, bottom) | format_metadata(format)
        headers |= {f"x-goog-meta-{key}": value for key, value in metadata.items()}
        blob = self._input.blob(f"{self._settings.upload_prefix}{new_id}")
        # A copy: the client's signer adds the Host header to the dict it is given, and a browser
        # refuses to set Host itself (it sends its own, the same).
        url = self._signer.sign(blob, method="PUT", headers=dict(headers))
        # The issued record: the api answers "pending" from it, so that it never needs to read
        # the input bucket (people's photos). Any record of a real upload has a higher generation.
        # The deletion token goes to the uploader only; the record keeps its hash, which cannot delete.
        token = secrets.token_urlsafe(32)
        self._issue(new_id, token, format=format)
        return SignedUpload(id=new_id, url=url, headers=headers, delete_token=token)

    def new_version(
        self, upload_id: str, *, token: str, top: str | None = None, bottom: str | None = None
    ) -> NewVersion:
        """Another caption of the photo of ``upload_id``: a new upload (its own id, link and deletion token).

        ``token`` is ``upload_id``'s deletion token: only its uploader asks. Without ``top`` and
        ``bottom``, the caption is the photo's next one from its bank (``choose_caption``'s
        variants); with them, the person's own. The new upload holds no photo, only which photo
        (``VERSION_TYPE``); its event makes the meme, in the format the photo's first meme was asked in.
        """
        issued = self._authorized(upload_id, token)
        source, format = issued.get("source"), issued.get("format")
        if not (isinstance(format, str) and format in MEME_FORMATS):
            format = DEFAULT_FORMAT
        if not isinstance(source, str):
            source = upload_id  # the photo itself; a version names its photo
        listed = self._client.list_blobs(self._output, prefix=versions_prefix(source), retry=self._retry)
        variant = 1 + sum(1 for _ in listed)
        if variant > self._settings.max_versions:
            raise TooManyVersions(
                f"this photo already has {self._settings.max_versions} other captions: upload it again for more"
            )
        new_id, new_token = uuid.uuid4().hex, secrets.token_urlsafe(32)
        self._issue(new_id, new_token, source=source, format=format)
        # Two requests at once may count alike: the marker is written only if absent, so one moves on.
        while not self._create(version_marker(source, variant), _json({"id": new_id}), content_type=JSON_TYPE):
            variant += 1
        pointer = self._input.blob(f"{self._settings.upload_prefix}{new_id}")
        pointer.metadata = caption_metadata(top, bottom) | format_metadata(format)
        pointer.upload_from_string(
            _json({"source": source, "variant": variant}),
            content_type=VERSION_TYPE,
            if_generation_match=0,
            retry=self._retry,
        )
        return NewVersion(id=new_id, delete_token=new_token)

    def _issue(self, new_id: str, token: str, *, source: str | None = None, format: str = DEFAULT_FORMAT) -> None:
        """The issued record: the api answers "pending" from it; it keeps the deletion token's hash."""
        issued: dict[str, Any] = {
            "status": "pending",
            "id": new_id,
            "expires": int(time.time()) + self._settings.url_ttl_seconds,
            "delete_sha256": token_hash(token),
        }
        if source is not None:
            issued["source"] = source
        if format != DEFAULT_FORMAT:
            issued["format"] = format  # kept for another caption of the photo: a zoom's is a zoom too
        self._create(record_object(new_id, ISSUED_GENERATION), _json(issued), content_type=JSON_TYPE)

    def _authorized(self, upload_id: str, token: str) -> dict[str, Any]:
        """The upload's issued record, if ``token`` is its deletion token (else ``DeleteRefused``)."""
        issued = (
            self._read_json(record_object(upload_id, ISSUED_GENERATION)) if ID_PATTERN.fullmatch(upload_id) else None
        )
        if issued is None:
            raise MemeNotFound("no such meme")
        expected = issued.get("delete_sha256")
        if not token or not isinstance(expected, str) or not hmac.compare_digest(token_hash(token), expected):
            raise DeleteRefused(
                "the meme's deletion token is missing or wrong: only its uploader may delete it or ask for another"
            )
        return issued

    # Deletion.

    def delete(self, upload_id: str, *, token: str) -> None:
        """Delete the upload, its memes and its records, every object version, if ``token`` is its deletion token.

        Nothing of the upload is left in either bucket; the records' own deletion events
        (``OBJECT_DELETE``, ``OBJECT_ARCHIVE`` on ``records/``) tell the events topic. The photo's
        other captions go with it. Raises ``MemeNotFound`` for an id the api did not issue (or
        deleted already) and ``DeleteRefused`` for a missing or wrong token. A delete cut short by
        an error can be repeated: the record that holds the token's hash goes last.
        """
        self._authorized(upload_id, token)
        # The photo's other captions show the photo too: they go with it.
        versions = [
            str(record["id"])
            for blob in self._client.list_blobs(self._output, prefix=versions_prefix(upload_id), retry=self._retry)
            if (record := self._read_json(blob.name)) is not None and ID_PATTERN.fullmatch(str(record.get("id")))
        ]
        for doomed in [*versions, upload_id]:
            self.purge(doomed)

    def upload_exists(self, upload: Upload) -> bool:
        """Whether that generation of the upload is still in the input bucket (its uploader may have deleted it)."""
        blob = self._input.blob(upload.name, generation=upload.generation)
        return bool(blob.exists(retry=self._retry))

    def purge(self, upload_id: str, *, upload: bool = True) -> None:
        """Remove every version of the upload (unless ``upload`` is false) and of its memes and records.

        The worker, which may not delete uploads, passes ``upload=False``.
        """
        if upload:
            with contextlib.suppress(NotFound):
                self._input.blob(f"{self._settings.upload_prefix}{upload_id}").delete(retry=self._retry)
        issued = record_object(upload_id, ISSUED_GENERATION)
        blobs = [
            blob
            for prefix in (f"{MEME_PREFIX}{upload_id}/", f"{RECORD_PREFIX}{upload_id}/")
            for blob in self._client.list_blobs(self._output, prefix=prefix, versions=True, retry=self._retry)
        ]
        # The issued record (the token's hash) last, so that a delete cut short can be repeated.
        for blob in sorted(blobs, key=lambda b: b.name == issued):
            with contextlib.suppress(NotFound):
                self._output.blob(blob.name, generation=blob.generation).delete(retry=self._retry)

    # Memes and records.

    def result_exists(self, upload: Upload) -> bool:
        """Whether that upload generation already has its record (a meme or a failure)."""
        return bool(self._output.blob(record_name(upload)).exists(retry=self._retry))

    def write_meme(self, upload: Upload, *, image: bytes, content_type: str, metadata: dict[str, Any]) -> bool:
        """Write the meme, then its record ``{"status": "done", "id", "meme", **metadata}``.

        Each object is written only if absent. Returns False when the record was already there
        (a duplicate event). A meme already there without its record (a run that died between
        the two writes) is kept, and the record written.
        """
        meme = meme_name(upload, content_type)
        record: dict[str, Any] = {"status": "done", "id": upload.id, "meme": meme}
        if clash := record.keys() & metadata.keys():
            raise ValueError(f"metadata must not set {sorted(clash)}")
        record.update(metadata)
        self._create(meme, image, content_type=content_type)
        return self._create(record_name(upload), _json(record), content_type="application/json")

    def write_failure(self, upload: Upload, *, reason: str) -> bool:
        """Record that the upload cannot become a meme. Returns False when its record was already there."""
        record = {"status": "failed", "id": upload.id, "error": reason}
        return self._create(record_name(upload), _json(record), content_type="application/json")

    def latest_record(self, upload_id: str) -> dict[str, Any] | None:
        """The record of the upload's highest generation, or None (also for an id that is not 32 hex digits)."""
        if not ID_PATTERN.fullmatch(upload_id):
            return None
        prefix = f"{RECORD_PREFIX}{upload_id}/"
        latest: tuple[int, storage.Blob] | None = None
        for blob in self._client.list_blobs(self._output, prefix=prefix, retry=self._retry):
            match = RECORD_NAME_PATTERN.fullmatch(blob.name[len(prefix) :])
            if match and (latest is None or int(match[1]) > latest[0]):
                latest = (int(match[1]), blob)
        if latest is None:
            return None
        return self._read_json(latest[1].name)

    def _read_json(self, name: str) -> dict[str, Any] | None:
        try:
            record: dict[str, Any] = json.loads(self._output.blob(name).download_as_bytes(retry=self._retry))
        except NotFound:
            # Listed, then deleted (a lifecycle rule, a delete): as if it had never been.
            return None
        return record

    def signed_meme_url(self, object_name: str) -> str:
        """A V4 signed GET URL of a meme in the output bucket, living ``settings.url_ttl_seconds``."""
        if not object_name.startswith(MEME_PREFIX):
            raise ValueError(f"{object_name!r} is not a meme: only objects under {MEME_PREFIX} are served")
        return self._signer.sign(self._output.blob(object_name), method="GET")

    # Internals.

    def _create(self, name: str, data: bytes, *, content_type: str, token: str | None = None) -> bool:
        """Write ``name`` only if absent; True if this call wrote it.

        The client retries a write whose response was lost, and the retry then meets its own
        object (412). Each call tags its object with a fresh token (``token`` for tests), so a
        412 over an object carrying our token is our write, not another delivery's.
        """
        token = token or uuid.uuid4().hex
        blob = self._output.blob(name)
        blob.metadata = {WRITER_KEY: token}
        try:
            blob.upload_from_string(data, content_type=content_type, if_generation_match=0, retry=self._retry)
        except PreconditionFailed:
            existing = self._output.get_blob(name, retry=self._retry)
            return existing is not None and (existing.metadata or {}).get(WRITER_KEY) == token
        return True

    @property
    def origin(self) -> str:
        """The origin (``scheme://host[:port]``) of every URL this store signs, without signing one.

        storage.googleapis.com in the cloud, the emulator on loopback in local runs: the page's
        Content-Security-Policy allows it for the photo's PUT and the meme's GET.
        """
        return self._signer.origin


def _json(record: Mapping[str, Any]) -> bytes:
    return json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
