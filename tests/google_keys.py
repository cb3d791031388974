"""Service-account keys for tests: a fresh RSA key pair and the key file Google Cloud would hand out."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa


@dataclass(frozen=True)
class ServiceAccount:
    #: the key file's JSON
    info: dict[str, Any]
    #: the PEM public key that verifies what the private key signs
    public_pem: str

    def write(self, path: Path) -> Path:
        path.write_text(json.dumps(self.info))
        return path


def new_service_account(
    token_uri: str, *, project: str = "proj-test", name: str = "ccr-fast-test", key_id: str = "key-1"
) -> ServiceAccount:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public_pem = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    info = {
        "type": "service_account",
        "project_id": project,
        "private_key_id": key_id,
        "private_key": private_pem,
        "client_email": f"{name}@{project}.iam.gserviceaccount.com",
        "client_id": "1234567890",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
    }
    return ServiceAccount(info, public_pem)
