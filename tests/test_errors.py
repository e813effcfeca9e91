"""One exception hierarchy, in memegen.errors, and the one policy every edge applies to it."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest
import requests
from google.api_core.exceptions import NotFound, ServiceUnavailable
from google.auth.exceptions import TransportError

import memegen
from memegen import errors
from memegen.errors import Policy, policy_of


def test_every_exception_of_the_library_is_defined_in_errors() -> None:
    defined = []
    for module_info in pkgutil.walk_packages(memegen.__path__, "memegen."):
        if module_info.name == "memegen.__main__":
            continue
        module = importlib.import_module(module_info.name)
        for name, value in vars(module).items():
            if inspect.isclass(value) and issubclass(value, BaseException) and value.__module__ == module.__name__:
                defined.append(f"{module.__name__}.{name}")
    assert [name for name in defined if not name.startswith("memegen.errors.")] == []
    assert "memegen.errors.MemeGenError" in defined


@pytest.mark.parametrize(
    ("exc", "policy"),
    [
        (errors.UnsupportedImage("not an image"), Policy.PERMANENT),
        (errors.ImageTooLarge("too big"), Policy.PERMANENT),
        (errors.CaptionRefused("too long"), Policy.PERMANENT),
        (errors.UploadGone("replaced"), Policy.PERMANENT),
        (errors.MemeNotFound("no such meme"), Policy.PERMANENT),
        (ServiceUnavailable("storage is down"), Policy.TRANSIENT),
        # A 404 from storage mid-event is not the user's fault: retried within the bound, like every API error.
        (NotFound("gone"), Policy.TRANSIENT),
        (TransportError("token refresh failed"), Policy.TRANSIENT),
        (requests.ConnectionError("reset"), Policy.TRANSIENT),
        (ConnectionResetError(), Policy.TRANSIENT),
        (errors.ModelError("corrupt member"), Policy.BUG),
        (errors.SettingsError("bad value"), Policy.BUG),
        (errors.SigningUnavailable("no key"), Policy.BUG),
        (KeyError("caption"), Policy.BUG),
        (ZeroDivisionError(), Policy.BUG),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, BaseException) else str(value),
)
def test_the_policy_classifies_every_kind_of_error(exc: BaseException, policy: Policy) -> None:
    assert policy_of(exc) is policy


def test_api_errors_carry_their_status_and_are_not_image_errors() -> None:
    assert [errors.RequestError.status, errors.MemeNotFound.status, errors.MethodNotAllowed.status] == [400, 404, 405]
    assert [errors.BodyTooLarge.status, errors.UnsupportedType.status] == [413, 415]
    # A malformed request is not a bad photo: the worker's InputError handling never sees one.
    assert not issubclass(errors.RequestError, errors.InputError)
