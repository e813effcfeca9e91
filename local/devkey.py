"""A development signing key: a service-account key file with a fresh RSA key, for local runs only.

In the cloud, URLs are signed through the IAM signBlob API and no key file exists. Locally, the
storage emulator does not check signatures, but google-auth needs a private key to make the same
V4 signed URLs, so ``make dev-key`` writes one to ``.local/dev-key.json`` (git-ignored). It grants
nothing anywhere: no such service account exists.

``python -m local.devkey .local/dev-key.json``
"""

from __future__ import annotations

import argparse
import json
import os
import uuid
from collections.abc import Sequence
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

DEV_EMAIL = "memegen-dev@local.iam.gserviceaccount.com"


def new_key_info(*, email: str = DEV_EMAIL) -> dict[str, str]:
    """A service-account key (the JSON Google issues) with a new 2048-bit RSA private key."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        encoding=serialization.Encoding.PEM,
        format=serialization.PrivateFormat.PKCS8,
        encryption_algorithm=serialization.NoEncryption(),
    )
    return {
        "type": "service_account",
        "project_id": "local",
        "private_key_id": uuid.uuid4().hex,
        "private_key": pem.decode("ascii"),
        "client_email": email,
        "client_id": str(uuid.uuid4().int)[:21],
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": "https://oauth2.googleapis.com/token",
    }


def write_key(path: Path, *, email: str = DEV_EMAIL) -> None:
    """Write a new key file readable by its owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # Created 0600 from the start: the key is never readable by others, not even briefly.
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        json.dump(new_key_info(email=email), file, indent=2)


def main(argv: Sequence[str] | None = None) -> None:
    """Write a new development key file."""
    parser = argparse.ArgumentParser(prog="python -m local.devkey", description="Write a development signing key.")
    parser.add_argument("path", type=Path)
    parser.add_argument("--email", default=DEV_EMAIL)
    args = parser.parse_args(argv)
    write_key(args.path, email=args.email)
    print(f"wrote {args.path} ({args.email})")


if __name__ == "__main__":
    main()
