#!/usr/bin/env python3
"""Writes a throwaway Google service-account key file for the Vertex fake.

    make_service_account.py OUT_FILE TOKEN_URI [--project PROJECT] [--email EMAIL]

The key is a fresh 2048-bit RSA key; `token_uri` points wherever the test's fake token endpoint
listens, because OAuth clients post their JWT grant to the key file's `token_uri`.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa


def make(token_uri: str, project: str = "tollgate-test", email: str | None = None) -> dict:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    email = email or f"gateway-test@{project}.iam.gserviceaccount.com"
    return {
        "type": "service_account",
        "project_id": project,
        "private_key_id": secrets.token_hex(20),
        "private_key": pem,
        "client_email": email,
        "client_id": str(secrets.randbelow(10**21)),
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
        "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
        "client_x509_cert_url": "https://www.googleapis.com/robot/v1/metadata/x509/"
        + email.replace("@", "%40"),
        "universe_domain": "googleapis.com",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_file")
    parser.add_argument("token_uri")
    parser.add_argument("--project", default="tollgate-test")
    parser.add_argument("--email")
    args = parser.parse_args(argv)
    info = make(args.token_uri, args.project, args.email)
    # A private key: readable by its owner only, as gcloud writes them.
    fd = os.open(args.out_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(info, out, indent=2)
        out.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
