#!/usr/bin/env python3
"""A strict fake of Vertex AI's Anthropic publisher endpoints and of Google's OAuth2 token
endpoint for one service account.

    vertex_fake.py --service-account FILE [--project P] [--region us-east5] [--port 0]
                   [--accept-version VERSION]... [--token-lifetime 3600]

Prints `LISTENING 127.0.0.1:PORT` once bound. `POST /token` (and the path of the key file's
`token_uri`) exchanges a service-account JWT grant, verified against the public half of the key
file's private key, for an access token; the model endpoints accept only such tokens:

    POST /v1/projects/P/locations/R/publishers/anthropic/models/MODEL:rawPredict
    POST /v1/projects/P/locations/R/publishers/anthropic/models/MODEL:streamRawPredict
    POST /v1/projects/P/locations/R/publishers/anthropic/models/count-tokens:rawPredict

Answers follow the scenarios of `fakekit.plan`, in the Anthropic Messages format (SSE for
`:streamRawPredict`). Because the grant's audience must equal the key file's `token_uri`, write
the key file with this fake's address: pick the port first and pass `--port`.
See README.md beside this file for the list of checks.
"""

from __future__ import annotations

import argparse
import json
import re
import secrets
import sys
import threading
import time
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import fakekit
import jwt
from cryptography.hazmat.primitives import serialization
from fakekit import ApiError, Drop, Request, Response, Stream

VERTEX_VERSION = "vertex-2023-10-16"
JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"
# Google refuses grants whose lifetime is longer than an hour.
MAX_GRANT_LIFETIME = 3600
# Tolerated clock difference between the signer and this fake.
CLOCK_SKEW = 300

PREDICT_PATH = re.compile(
    r"^/(v1|v1beta1)/projects/([^/]+)/locations/([^/]+)/publishers/([^/]+)/models/([^/]+):([A-Za-z]+)$"
)


class GoogleError(Exception):
    """An error in Google's own envelope: auth, routing and quota errors come back this way."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message

    def response(self) -> Response:
        headers = []
        if self.status == 401:
            headers.append(
                (
                    "WWW-Authenticate",
                    'Bearer realm="https://accounts.google.com/", error="invalid_token"',
                )
            )
        return fakekit.json_response(
            self.status,
            {"error": {"code": self.status, "message": self.message, "status": self.code}},
            headers,
        )


class GrantError(Exception):
    """An OAuth2 token endpoint error (RFC 6749 §5.2)."""

    def __init__(self, error: str, description: str, status: int = 400):
        super().__init__(description)
        self.error, self.description, self.status = error, description, status


class Tokens:
    def __init__(self, lifetime: int):
        self.lifetime = lifetime
        self._lock = threading.Lock()
        self._expiry: dict[str, float] = {}

    def issue(self) -> str:
        token = "ya29.fake-" + secrets.token_urlsafe(32)
        with self._lock:
            self._expiry[token] = time.time() + self.lifetime
        return token

    def valid(self, token: str) -> bool:
        with self._lock:
            expiry = self._expiry.get(token)
        return expiry is not None and time.time() < expiry


class ServiceAccount:
    def __init__(self, path: str):
        with open(path) as f:
            info = json.load(f)
        for key in ("type", "client_email", "private_key", "private_key_id", "token_uri"):
            if not info.get(key):
                raise SystemExit(f"{path}: missing {key!r}")
        if info["type"] != "service_account":
            raise SystemExit(f"{path}: type is {info['type']!r}, not 'service_account'")
        private = serialization.load_pem_private_key(info["private_key"].encode(), password=None)
        # Only the public half is used: the fake checks signatures, it never makes them.
        self.public_key = private.public_key()
        self.email: str = info["client_email"]
        self.key_id: str = info["private_key_id"]
        self.token_uri: str = info["token_uri"]
        self.project: str | None = info.get("project_id")


def verify_grant(req: Request, account: ServiceAccount) -> dict[str, Any]:
    content_type = (req.header("content-type") or "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise GrantError(
            "invalid_request",
            f"Content-Type must be application/x-www-form-urlencoded, not "
            f"{content_type or 'missing'}",
        )
    form = parse_qs(req.body.decode("utf-8", errors="replace"), keep_blank_values=True)
    grant_type = (form.get("grant_type") or [""])[0]
    if grant_type != JWT_GRANT:
        raise GrantError("unsupported_grant_type", f"Invalid grant_type: {grant_type}")
    assertion = (form.get("assertion") or [""])[0]
    if not assertion:
        raise GrantError("invalid_request", "Missing required parameter: assertion")
    try:
        header = jwt.get_unverified_header(assertion)
    except jwt.DecodeError as exc:
        raise GrantError("invalid_grant", f"Invalid JWT: {exc}") from None
    if header.get("alg") != "RS256":
        raise GrantError(
            "invalid_grant", f"Invalid JWT: alg must be RS256, not {header.get('alg')!r}"
        )
    if "kid" in header and header["kid"] != account.key_id:
        raise GrantError("invalid_grant", "Invalid JWT Signature.")
    try:
        claims = jwt.decode(
            assertion,
            account.public_key,
            algorithms=["RS256"],
            audience=account.token_uri,
            issuer=account.email,
            leeway=CLOCK_SKEW,
            # PyJWT insists a present `sub` is a string; Google's token endpoint does not check
            # it for service-account grants, and widely used clients send `"sub": null`. The
            # fake checks `sub` itself below instead.
            options={"require": ["iss", "aud", "exp", "iat"], "verify_sub": False},
        )
    except jwt.InvalidSignatureError:
        raise GrantError("invalid_grant", "Invalid JWT Signature.") from None
    except jwt.InvalidAudienceError:
        raise GrantError(
            "invalid_grant",
            f"Invalid JWT: Failed audience check. The right audience is {account.token_uri}",
        ) from None
    except jwt.InvalidIssuerError:
        raise GrantError("invalid_grant", "Invalid grant: account not found") from None
    except (jwt.ExpiredSignatureError, jwt.ImmatureSignatureError):
        raise GrantError("invalid_grant", timeframe_message()) from None
    except jwt.PyJWTError as exc:
        raise GrantError("invalid_grant", f"Invalid JWT: {exc}") from None
    if claims.get("sub") is not None and not isinstance(claims["sub"], str):
        raise GrantError("invalid_grant", "Invalid JWT: sub must be a string or null")
    if not isinstance(claims["exp"], (int, float)) or not isinstance(claims["iat"], (int, float)):
        raise GrantError("invalid_grant", timeframe_message())
    if claims["exp"] - claims["iat"] > MAX_GRANT_LIFETIME:
        raise GrantError("invalid_grant", timeframe_message())
    scope = claims.get("scope")
    if not isinstance(scope, str) or CLOUD_PLATFORM not in scope.split():
        raise GrantError(
            "invalid_scope",
            f"Invalid OAuth scope or ID token audience provided; the Vertex AI "
            f"endpoints need {CLOUD_PLATFORM} (got {scope!r}).",
        )
    return claims


def timeframe_message() -> str:
    return (
        "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable "
        "timeframe. Check your iat and exp values in the JWT claim."
    )


def bearer(req: Request, tokens: Tokens) -> None:
    value = req.header("authorization") or ""
    if not value.startswith("Bearer ") or not tokens.valid(value[7:].strip()):
        raise GoogleError(
            401,
            "UNAUTHENTICATED",
            "Request had invalid authentication credentials. Expected OAuth 2 access "
            "token, login cookie or other valid authentication credential. See "
            "https://developers.google.com/identity/sign-in/web/devconsole-project.",
        )


def check_body(
    req: Request, count_tokens: bool, stream: bool, versions: frozenset[str]
) -> dict[str, Any]:
    invalid = fakekit.invalid
    content_type = req.header("content-type")
    if content_type is None or content_type.split(";")[0].strip().lower() != "application/json":
        raise invalid(f"content-type: must be application/json, not {content_type!r}")
    body, error = req.json()
    if error is not None:
        raise invalid(f"body: invalid JSON: {error}")
    if not isinstance(body, dict):
        raise invalid("body: must be a JSON object")
    version = body.get("anthropic_version")
    if version is None and not count_tokens:
        raise invalid("anthropic_version: Field required")
    if version is not None and version not in versions:
        raise invalid(f"anthropic_version: Input should be '{VERTEX_VERSION}'")
    if count_tokens:
        # The count-tokens endpoint is shared by every model, so the model travels in the body.
        if not isinstance(body.get("model"), str) or not body["model"]:
            raise invalid("model: Field required")
    elif "model" in body:
        # The model is named by the URL; Vertex refuses a second, possibly different one.
        raise invalid("model: Extra inputs are not permitted")
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise invalid(
            "messages: Field required" if messages is None else "messages: must be an array"
        )
    if not messages:
        raise invalid("messages: at least one message is required")
    if count_tokens:
        return body
    max_tokens = body.get("max_tokens")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        raise invalid(
            "max_tokens: Field required"
            if max_tokens is None
            else "max_tokens: must be an integer of at least 1"
        )
    streaming = body.get("stream", False)
    if not isinstance(streaming, bool):
        raise invalid("stream: must be a boolean")
    # The answer's framing follows the body, so the URL's method must agree with it or the caller
    # would get SSE where it expects JSON (or the reverse).
    if stream and not streaming:
        raise invalid("stream: must be true for :streamRawPredict")
    if streaming and not stream:
        raise invalid("stream: true needs :streamRawPredict, not :rawPredict")
    fakekit.check_thinking_signatures(body)
    return body


def scripted_error(err: ApiError) -> Response:
    """A scripted error: in Google's envelope when TYPE is a Google status (`RESOURCE_EXHAUSTED`),
    else in Anthropic's, as Vertex relays the model's own errors."""
    if re.fullmatch(r"[A-Z_]+", err.kind):
        response = GoogleError(err.status, err.kind, err.message).response()
    else:
        response = fakekit.json_response(err.status, err.anthropic_body())
    response.headers += err.headers
    return response


def sse_stream(plan: fakekit.Plan) -> Stream:
    turn = plan.turn
    assert turn is not None
    if plan.kind in ("broken", "midstream"):
        events = fakekit.interrupted_events(turn)
        if plan.kind == "midstream":
            assert plan.error is not None
            events.append(("error", plan.error.anthropic_body()))
    else:
        events = fakekit.stream_events(turn)
    chunks = [fakekit.sse(name, data) for name, data in events]
    return Stream(
        200,
        fakekit.paced(chunks, plan.pace),
        [("Content-Type", "text/event-stream"), ("Cache-Control", "no-cache")],
        abort=plan.kind == "broken",
    )


def make_app(args: argparse.Namespace, account: ServiceAccount):
    tokens = Tokens(args.token_lifetime)
    token_paths = {"/token", urlsplit(account.token_uri).path or "/token"}
    versions = frozenset([VERTEX_VERSION, *(args.accept_version or ())])

    def token_endpoint(req: Request, record: dict[str, Any]):
        record["scenario"] = "token"
        try:
            claims = verify_grant(req, account)
        except GrantError as err:
            record["error"] = err.description
            sys.stderr.write(f"vertex-fake: refused grant: {err.description}\n")
            return fakekit.json_response(
                err.status, {"error": err.error, "error_description": err.description}
            )
        record["claims"] = claims
        return fakekit.json_response(
            200,
            {"access_token": tokens.issue(), "expires_in": tokens.lifetime, "token_type": "Bearer"},
            [("Cache-Control", "no-cache, no-store, max-age=0, must-revalidate")],
        )

    def predict(req: Request, record: dict[str, Any]):
        match = PREDICT_PATH.match(unquote(req.path))
        if req.method != "POST" or not match:
            raise GoogleError(404, "NOT_FOUND", f"The requested URL {req.path} was not found.")
        bearer(req, tokens)
        _, project, location, publisher, model, method = match.groups()
        record["model"] = model
        resource = f"projects/{project}/locations/{location}/publishers/{publisher}/models/{model}"
        if project != args.project:
            raise GoogleError(
                403,
                "PERMISSION_DENIED",
                f"Permission 'aiplatform.endpoints.predict' denied on resource "
                f"'//aiplatform.googleapis.com/{resource}' (or it may not exist).",
            )
        if location != args.region or publisher != "anthropic":
            raise GoogleError(
                404,
                "NOT_FOUND",
                f"Publisher Model `{resource}` was not found or your project does "
                f"not have access to it.",
            )
        count_tokens = model == "count-tokens"
        if method not in ("rawPredict", "streamRawPredict") or (
            count_tokens and method != "rawPredict"
        ):
            raise GoogleError(404, "NOT_FOUND", f"The requested URL {req.path} was not found.")
        stream = method == "streamRawPredict"
        body = check_body(req, count_tokens, stream, versions)
        if count_tokens:
            record["scenario"] = "count_tokens"
            return fakekit.json_response(200, {"input_tokens": max(1, len(req.body) // 4)})
        name = fakekit.scenario_name(req.header, body)
        record["scenario"] = name
        usage = fakekit.usage_for(req.header, req.body, [b'"cache_control"'])
        plan = fakekit.plan(
            name, body, req.header, record["n"], usage, model, id_prefix="msg_vrtx_mock_"
        )
        if plan.kind == "fail" or (plan.kind == "midstream" and not stream):
            assert plan.error is not None
            return scripted_error(plan.error)
        turn = plan.turn
        assert turn is not None
        if stream:
            record["usage"] = turn.usage.anthropic(output=1 if plan.kind != "reply" else None)
            return sse_stream(plan)
        if plan.kind == "broken":
            return Drop()
        record["usage"] = turn.usage.anthropic()
        if plan.pace:
            time.sleep(plan.pace)
        return fakekit.json_response(200, fakekit.message_json(turn))

    def app(req: Request, record: dict[str, Any]):
        if req.path in token_paths and req.method == "POST":
            return token_endpoint(req, record)
        try:
            return predict(req, record)
        except (GoogleError, ApiError) as err:
            record["scenario"] = "rejected"
            record["error"] = err.message
            sys.stderr.write(f"vertex-fake: rejected {req.method} {req.target}: {err.message}\n")
            if isinstance(err, GoogleError):
                return err.response()
            return fakekit.json_response(err.status, err.anthropic_body())

    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--service-account", required=True, metavar="FILE")
    parser.add_argument("--project", help="default: the key file's project_id")
    parser.add_argument("--region", default="us-east5")
    parser.add_argument(
        "--accept-version",
        action="append",
        metavar="VERSION",
        help=f"accept this anthropic_version besides {VERTEX_VERSION} (repeatable)",
    )
    parser.add_argument("--token-lifetime", type=int, default=3600, metavar="SECONDS")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--quiet", action="store_true", help="no access log on stderr")
    args = parser.parse_args(argv)
    account = ServiceAccount(args.service_account)
    args.project = args.project or account.project
    if not args.project:
        parser.error("--project is required when the key file has no project_id")
    return fakekit.serve(make_app(args, account), args.host, args.port, "vertex-fake", args.quiet)


if __name__ == "__main__":
    sys.exit(main())
