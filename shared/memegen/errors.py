"""Every exception MemeGen raises on purpose, and the one error policy the edges apply.

The classes say what went wrong; :func:`policy_of` says what an edge (the ``on_upload``
worker, the api, the command line) does about it:

- ``PERMANENT``: retrying cannot help (the user's file, request or caption). Record it, say
  why, acknowledge.
- ``TRANSIENT``: the storage service or the network. Raise for a retry, within a bound.
- ``BUG``: anything else, deployment faults included (a missing model, bad settings). Log the
  traceback, record a generic failure, acknowledge: a retry would fail the same way.

This module imports nothing beyond the standard library at import time, so that the
infrastructure code and the training tools can use the library's contract without its
run-time dependencies.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable


class MemeGenError(Exception):
    """Base class of every error the library raises on purpose."""


# --- permanent: retrying cannot help ---------------------------------------------------------------


class PermanentError(MemeGenError):
    """A problem with what the user gave or asked for: recorded, explained, never retried."""


class InputError(PermanentError):
    """A permanent problem with the user's photo or caption."""


class UnsupportedImage(InputError):
    """The bytes are not an image format MemeGen reads."""


class NoFaceToZoom(InputError):
    """A zoom meme (an animated format) was asked for a photo with no face to zoom onto."""


class ImageTooLarge(InputError):
    """The image is over the byte or pixel limit (a decompression bomb, say)."""


class CaptionRefused(InputError):
    """A person's own caption is too long or holds control characters."""


class CaptionsExhausted(InputError):
    """Another caption was asked for, and every caption of the photo's bank has been used."""


class PhotoNotKept(InputError):
    """Another caption was asked for a photo the input bucket no longer keeps."""


class UploadGone(PermanentError):
    """The upload at that generation no longer exists (deleted or replaced): skip its event."""


class RequestError(PermanentError):
    """An HTTP request the api refuses; ``status`` is its answer's code (400: malformed)."""

    status = 400


class MemeNotFound(RequestError):
    """No such route, or no such meme (404)."""

    status = 404


class DeleteRefused(RequestError):
    """A delete without the meme's deletion token, or with another one (403)."""

    status = 403


class TokenRequired(RequestError):
    """A request that needs the meme's deletion token and carries no Bearer credentials at all (401)."""

    status = 401


class TooManyVersions(RequestError):
    """A photo already has as many other captions as the settings allow (409)."""

    status = 409


class MethodNotAllowed(RequestError):
    """The route exists but not for this method (405)."""

    status = 405

    def __init__(self, message: str, *, allowed: Iterable[str]) -> None:
        super().__init__(message)
        self.allowed = tuple(allowed)


class BodyTooLarge(RequestError):
    """The request body is over the api's limit (413)."""

    status = 413


class UnsupportedType(RequestError):
    """The request or the photo it announces has a media type MemeGen does not take (415)."""

    status = 415


# --- faults of the deployment or the machine: a retry cannot fix them either -----------------------


class ConfigurationError(MemeGenError):
    """The deployment is wrong: a setting, a model, the caption bank, the signing identity."""


class SettingsError(ConfigurationError):
    """An environment variable holds a value MemeGen cannot use."""


class ModelError(ConfigurationError):
    """A model file is missing, corrupt, or does not match its manifest."""


class CaptionBankError(ConfigurationError):
    """The caption bank is missing, not JSON, or breaks the bank's rules."""


class SigningUnavailable(ConfigurationError):
    """Neither a signing service account nor signing credentials were configured."""


class DatasetError(MemeGenError):
    """A dataset folder is missing or not in the folder-per-class layout (training and evaluation)."""


class OutputError(MemeGenError):
    """A result cannot be written where it was asked to go (a full disk, a missing folder)."""


# --- the policy ---------------------------------------------------------------------------------------


class Policy(enum.StrEnum):
    """What an edge does with an error."""

    PERMANENT = "permanent"
    TRANSIENT = "transient"
    BUG = "bug"


def transient_types() -> tuple[type[BaseException], ...]:
    """The exceptions worth a retry: the storage service (and IAM), the network, the disk.

    Imported when asked, not with the module: the cloud client libraries are run-time
    dependencies of the functions, not of every user of this module.
    """
    import requests
    from google.api_core.exceptions import GoogleAPIError
    from google.auth.exceptions import GoogleAuthError

    return (GoogleAPIError, GoogleAuthError, requests.RequestException, OSError)


def policy_of(exc: BaseException) -> Policy:
    """How every edge treats ``exc``: permanent, transient or a bug."""
    if isinstance(exc, PermanentError):
        return Policy.PERMANENT
    if isinstance(exc, MemeGenError):
        # Configuration, models, output: the deployment is wrong, and a retry changes nothing.
        return Policy.BUG
    if isinstance(exc, transient_types()):
        return Policy.TRANSIENT
    return Policy.BUG
