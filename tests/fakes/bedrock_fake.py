#!/usr/bin/env python3
"""A strict fake of Amazon Bedrock Runtime for Anthropic models: InvokeModel and
InvokeModelWithResponseStream.

    bedrock_fake.py --access-key AKID --secret-key SECRET [--region us-west-2]
                    [--session-token TOKEN] [--api-key KEY] [--accept-beta BETA]...
                    [--accept-version VERSION]... [--max-skew 900] [--port 0]

Prints `LISTENING 127.0.0.1:PORT` once bound. Every request must carry a SigV4 signature that
botocore, recomputing it from the bytes received, agrees with (or `Authorization: Bearer KEY`
when `--api-key` is given); the body must be what Bedrock accepts for Anthropic models. Answers
follow the scenarios of `fakekit.plan`; streams are AWS event-stream frames encoded here.
See README.md beside this file for the list of checks.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import calendar
import hmac
import json
import re
import struct
import sys
import time
import uuid
from collections.abc import Iterator
from hashlib import sha256
from typing import Any
from urllib.parse import unquote

import fakekit
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest, HTTPHeaders
from botocore.credentials import Credentials
from fakekit import ApiError, Drop, Request, Response, Stream

BEDROCK_VERSION = "bedrock-2023-05-31"

# The `anthropic_beta` values Bedrock accepts on InvokeModel for Anthropic models: those its user
# guide documents (pages "Request and Response", "Tool use", "Extended thinking", "Compaction",
# 1M context, tool search), plus the few that LiteLLM's per-provider beta table
# (anthropic_beta_headers_config.json, "bedrock") also forwards. Bedrock answers any other value
# with a ValidationException ("invalid beta flag"). Claude Code's own `claude-code-20250219` and
# its experimental betas are deliberately absent: a gateway must filter what it forwards.
# Extend at run time with `--accept-beta`.
ACCEPTED_BETAS = frozenset(
    {
        "computer-use-2024-10-22",
        "computer-use-2025-01-24",
        "computer-use-2025-11-24",
        "token-efficient-tools-2025-02-19",
        "interleaved-thinking-2025-05-14",
        "output-128k-2025-02-19",
        "dev-full-thinking-2025-05-14",
        "context-1m-2025-08-07",
        "context-management-2025-06-27",
        "effort-2025-11-24",
        "tool-search-tool-2025-10-19",
        "tool-examples-2025-10-29",
        "compact-2026-01-12",
        "fine-grained-tool-streaming-2025-05-14",
    }
)

# The member names of Bedrock's ResponseStream union that can arrive as exception frames.
STREAM_EXCEPTIONS = {
    "internalServerException",
    "modelStreamErrorException",
    "validationException",
    "throttlingException",
    "modelTimeoutException",
    "serviceUnavailableException",
}

EXCEPTION_BY_STATUS = {
    400: "ValidationException",
    403: "AccessDeniedException",
    404: "ResourceNotFoundException",
    408: "ModelTimeoutException",
    424: "ModelErrorException",
    429: "ThrottlingException",
    500: "InternalServerException",
    503: "ServiceUnavailableException",
}

SIGNATURE_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method. Consult the service documentation "
    "for details."
)
INVALID_TOKEN = "The security token included in the request is invalid."

PATH = re.compile(r"^/model/([^/]+)/(invoke|invoke-with-response-stream)$")
# Foundation-model ids and cross-region inference profiles of Anthropic models.
ANTHROPIC_MODEL_ID = re.compile(r"^(?:[a-z]{2,6}\.)?anthropic\.claude-[A-Za-z0-9.\-]+(?::\d+)?$")
MODEL_ARN = re.compile(
    r"^arn:aws[a-z-]*:bedrock:([a-z0-9-]+):(\d{12})?:"
    r"(?:foundation-model|inference-profile|application-inference-profile|provisioned-model)/.+$"
)


class AwsError(Exception):
    def __init__(self, status: int, kind: str, message: str, detail: str | None = None):
        super().__init__(message)
        self.status, self.kind, self.message = status, kind, message
        # What the record shows: why the fake refused, when the AWS wording hides it.
        self.detail = detail or message


def aws_error(err: AwsError, request_id: str) -> Response:
    return fakekit.json_response(
        err.status,
        {"message": err.message},
        [
            (
                "x-amzn-ErrorType",
                f"{err.kind}:http://internal.amazon.com/coral/com.amazon.bedrock/",
            ),
            ("x-amzn-RequestId", request_id),
        ],
    )


# --- SigV4 ----------------------------------------------------------------------------------


class _ListedHeadersSigV4(SigV4Auth):
    """botocore's SigV4 over exactly the headers the client listed in `SignedHeaders`.

    botocore picks the headers to sign itself (skipping e.g. `user-agent`); AWS instead trusts the
    list in the Authorization header, so a signer that covers other headers is still valid."""

    def __init__(self, credentials: Credentials, region: str, listed: HTTPHeaders):
        super().__init__(credentials, "bedrock", region)
        self._listed = listed

    def headers_to_sign(self, request: AWSRequest) -> HTTPHeaders:
        return self._listed


def _parse_authorization(value: str) -> dict[str, str]:
    algorithm, _, rest = value.strip().partition(" ")
    if algorithm != "AWS4-HMAC-SHA256":
        raise AwsError(
            400, "IncompleteSignatureException", f"Unsupported authorization type: {algorithm!r}"
        )
    fields: dict[str, str] = {}
    for part in rest.split(","):
        key, sep, val = part.strip().partition("=")
        if sep:
            fields[key] = val
    for key in ("Credential", "SignedHeaders", "Signature"):
        if key not in fields:
            raise AwsError(
                400,
                "IncompleteSignatureException",
                f"Authorization header requires '{key}' parameter. Authorization={value}",
            )
    return fields


def _amz_epoch(stamp: str) -> int:
    return calendar.timegm(time.strptime(stamp, "%Y%m%dT%H%M%SZ"))


def verify_sigv4(req: Request, args: argparse.Namespace) -> None:
    fields = _parse_authorization(req.header("authorization") or "")
    scope = fields["Credential"].split("/")
    if len(scope) != 5 or scope[4] != "aws4_request":
        raise AwsError(
            400,
            "IncompleteSignatureException",
            f"Credential should be of the form AKID/date/region/service/aws4_request: "
            f"{fields['Credential']}",
        )
    access_key, scope_date, scope_region, scope_service, _ = scope
    if access_key != args.access_key:
        raise AwsError(
            403, "UnrecognizedClientException", INVALID_TOKEN, f"unknown access key {access_key!r}"
        )
    if scope_region != args.region:
        raise AwsError(
            403,
            "InvalidSignatureException",
            f"Credential should be scoped to a valid region. (got {scope_region!r}, "
            f"this endpoint serves {args.region!r})",
        )
    if scope_service != "bedrock":
        raise AwsError(
            403,
            "InvalidSignatureException",
            f"Credential should be scoped to correct service: 'bedrock'. (got {scope_service!r})",
        )

    amz_date = req.header("x-amz-date")
    if amz_date is None:
        raise AwsError(
            400,
            "IncompleteSignatureException",
            "Authorization header requires existence of either a 'X-Amz-Date' or a "
            "'Date' header (this fake supports X-Amz-Date only).",
        )
    try:
        signed_at = _amz_epoch(amz_date)
    except ValueError:
        raise AwsError(
            400,
            "IncompleteSignatureException",
            f"X-Amz-Date must be in the ISO8601 basic format: {amz_date!r}",
        ) from None
    if scope_date != amz_date[:8]:
        raise AwsError(
            403,
            "InvalidSignatureException",
            f"Date in Credential scope does not match YYYYMMDD from ISO-8601 version "
            f"of date from HTTP: '{scope_date}' != '{amz_date[:8]}'",
        )
    if args.max_skew and abs(time.time() - signed_at) > args.max_skew:
        raise AwsError(
            403,
            "InvalidSignatureException",
            f"Signature expired: {amz_date} is outside the allowed clock skew of "
            f"{args.max_skew} s from now.",
        )

    names = fields["SignedHeaders"].split(";")
    if names != sorted(n.lower() for n in names):
        raise AwsError(
            403,
            "InvalidSignatureException",
            SIGNATURE_MISMATCH,
            f"SignedHeaders must be lowercase and sorted: {fields['SignedHeaders']}",
        )
    if "host" not in names:
        raise AwsError(
            403,
            "InvalidSignatureException",
            "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.",
        )
    listed = HTTPHeaders()
    for name in names:
        values = req.header_values(name)
        if not values:
            raise AwsError(
                403,
                "InvalidSignatureException",
                SIGNATURE_MISMATCH,
                f"SignedHeaders names {name!r}, which the request does not carry",
            )
        for value in values:
            listed[name] = value

    token = req.header("x-amz-security-token")
    if token != args.session_token:
        raise AwsError(
            403,
            "UnrecognizedClientException",
            INVALID_TOKEN,
            "x-amz-security-token does not match --session-token",
        )
    if token is not None and "x-amz-security-token" not in names:
        raise AwsError(
            403,
            "InvalidSignatureException",
            SIGNATURE_MISMATCH,
            "x-amz-security-token must be signed",
        )

    body_hash = sha256(req.body).hexdigest()
    declared_hash = req.header("x-amz-content-sha256")
    if declared_hash is not None and declared_hash != body_hash:
        # botocore (like AWS) signs with the declared hash, so a stale one would pass unnoticed.
        raise AwsError(
            403,
            "InvalidSignatureException",
            "The provided 'x-amz-content-sha256' header does not match what was computed.",
        )

    # The URL's host only matters to botocore when `host` is not signed, which was ruled out.
    received = HTTPHeaders()
    for name, value in req.headers:
        received[name] = value
    aws_request = AWSRequest(
        method=req.method,
        url=f"http://{req.header('host')}{req.target}",
        headers=received,
        data=req.body,
    )
    aws_request.context["timestamp"] = amz_date
    signer = _ListedHeadersSigV4(
        Credentials(args.access_key, args.secret_key, args.session_token), args.region, listed
    )
    canonical = signer.canonical_request(aws_request)
    string_to_sign = signer.string_to_sign(aws_request, canonical)
    expected = signer.signature(string_to_sign, aws_request)
    if not hmac.compare_digest(expected, fields["Signature"]):
        # AWS answers with the canonical forms it used, which is what makes a mismatch debuggable.
        raise AwsError(
            403,
            "InvalidSignatureException",
            f"{SIGNATURE_MISMATCH}\n\nThe Canonical String for this request should have "
            f"been\n'{canonical}'\n\nThe String-to-Sign should have been\n"
            f"'{string_to_sign}'\n",
            f"signature mismatch; canonical request:\n{canonical}",
        )


def authenticate(req: Request, args: argparse.Namespace) -> str:
    authorization = req.header("authorization")
    if authorization is None:
        raise AwsError(403, "MissingAuthenticationTokenException", "Missing Authentication Token")
    if authorization.startswith("Bearer "):
        if not args.api_key or not hmac.compare_digest(authorization[7:].strip(), args.api_key):
            raise AwsError(
                403, "UnrecognizedClientException", INVALID_TOKEN, "wrong bearer API key"
            )
        return "bearer"
    verify_sigv4(req, args)
    return "sigv4"


# --- the request body -------------------------------------------------------------------------


def validation(message: str) -> AwsError:
    return AwsError(400, "ValidationException", message)


def malformed(what: str) -> AwsError:
    return validation(f"Malformed input request: {what}, please reformat your input and try again.")


def check_model_id(model_id: str, region: str) -> None:
    arn = MODEL_ARN.match(model_id)
    if arn:
        if arn.group(1) != region:
            raise validation(
                f"The provided model identifier is invalid: ARN region "
                f"{arn.group(1)!r} is not {region!r}."
            )
        return
    if not ANTHROPIC_MODEL_ID.match(model_id):
        raise validation(
            f"The provided model identifier is invalid: {model_id!r} "
            f"(this fake serves Anthropic models only)."
        )


def check_body(
    req: Request, accepted_betas: frozenset[str], versions: frozenset[str]
) -> dict[str, Any]:
    content_type = req.header("content-type")
    if (
        content_type is not None
        and content_type.split(";")[0].strip().lower() != "application/json"
    ):
        raise validation(
            f"The provided content type {content_type!r} is not supported; use application/json."
        )
    body, error = req.json()
    if error is not None:
        raise malformed(f"invalid JSON ({error})")
    if not isinstance(body, dict):
        raise malformed(f"expected type: JSONObject, found: {type(body).__name__}")
    # Bedrock takes the model from the URL and the mode from the operation; it rejects both keys.
    for key in ("model", "stream"):
        if key in body:
            raise malformed(f"#: extraneous key [{key}] is not permitted")
    if "anthropic_version" not in body:
        raise malformed("#: required key [anthropic_version] not found")
    if body["anthropic_version"] not in versions:
        raise malformed(
            f"#/anthropic_version: {body['anthropic_version']!r} is not a valid enum "
            f"value (expected {BEDROCK_VERSION!r})"
        )
    betas = body.get("anthropic_beta")
    if betas is not None:
        if not isinstance(betas, list) or not all(isinstance(b, str) for b in betas):
            raise malformed("#/anthropic_beta: expected type: JSONArray of strings")
        unknown = [b for b in betas if b not in accepted_betas]
        if unknown:
            raise validation(f"invalid beta flag: {', '.join(unknown)}")
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise malformed(
            "#: required key [messages] not found"
            if messages is None
            else "#/messages: expected type: JSONArray"
        )
    if not messages:
        raise malformed("#/messages: expected minimum item count: 1, found: 0")
    max_tokens = body.get("max_tokens")
    if max_tokens is None:
        raise malformed("#: required key [max_tokens] not found")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        raise malformed("#/max_tokens: expected an integer of at least 1")
    try:
        fakekit.check_thinking_signatures(body)
    except ApiError as err:
        raise validation(err.message) from None
    return body


# --- answers ----------------------------------------------------------------------------------


def eventstream_frame(headers: list[tuple[str, str]], payload: bytes) -> bytes:
    """One AWS event-stream message.

    # Format
    total length (u32) | headers length (u32) | CRC32 of those 8 bytes |
    headers (name length u8, name, type 7 = string, value length u16, value) |
    payload | CRC32 of everything before it. All integers big-endian.
    """
    encoded = b"".join(
        struct.pack(">B", len(n)) + n + b"\x07" + struct.pack(">H", len(v)) + v
        for n, v in ((k.encode(), val.encode()) for k, val in headers)
    )
    total = 12 + len(encoded) + len(payload) + 4
    prelude = struct.pack(">II", total, len(encoded))
    message = prelude + struct.pack(">I", binascii.crc32(prelude)) + encoded + payload
    return message + struct.pack(">I", binascii.crc32(message))


def chunk_frame(event: dict[str, Any]) -> bytes:
    data = json.dumps(event, separators=(",", ":")).encode()
    payload = json.dumps({"bytes": base64.b64encode(data).decode()}, separators=(",", ":"))
    return eventstream_frame(
        [
            (":event-type", "chunk"),
            (":content-type", "application/json"),
            (":message-type", "event"),
        ],
        payload.encode(),
    )


def exception_frame(kind: str, message: str) -> bytes:
    return eventstream_frame(
        [
            (":exception-type", kind),
            (":content-type", "application/json"),
            (":message-type", "exception"),
        ],
        json.dumps({"message": message}).encode(),
    )


def exception_type(err: ApiError) -> str:
    """The Bedrock exception for a scripted error: its TYPE when that is already a Bedrock name
    (`ThrottlingException`), else the one Bedrock uses for the status."""
    if err.kind.endswith("Exception"):
        return err.kind[0].upper() + err.kind[1:]
    return EXCEPTION_BY_STATUS.get(
        err.status, "ServiceUnavailableException" if err.status >= 500 else "ValidationException"
    )


def exception_message(err: ApiError) -> str:
    if err.status == 429:
        return "Too many requests, please wait before trying again."
    return err.message


def response_model(model_id: str) -> str:
    """The Anthropic model name Bedrock puts in `model`: no region prefix, vendor or version."""
    name = model_id.rsplit("/", 1)[-1]
    name = re.sub(r"^(?:[a-z]{2,6}\.)?anthropic\.", "", name)
    return re.sub(r"-v\d+(?::\d+)?$", "", name)


def invocation_metrics(usage: fakekit.Usage, latency_ms: int) -> dict[str, int]:
    return {
        "inputTokenCount": usage.input,
        "outputTokenCount": usage.output,
        "invocationLatency": latency_ms,
        "firstByteLatency": min(latency_ms, 5),
        "cacheReadInputTokenCount": usage.cache_read,
        "cacheWriteInputTokenCount": usage.cache_write,
    }


def stream_chunks(plan: fakekit.Plan, started: float) -> Iterator[bytes]:
    """The frames of a streamed answer, built as they are sent so the metrics see real timing."""
    turn = plan.turn
    assert turn is not None
    if plan.kind in ("broken", "midstream"):
        for _, data in fakekit.interrupted_events(turn):
            yield chunk_frame(data)
        if plan.kind == "midstream":
            assert plan.error is not None
            kind = exception_type(plan.error)
            frame_kind = kind[0].lower() + kind[1:]
            if frame_kind not in STREAM_EXCEPTIONS:
                frame_kind = "modelStreamErrorException"
            yield exception_frame(frame_kind, exception_message(plan.error))
        return
    events = fakekit.stream_events(turn, ping=False)
    for i, (_, data) in enumerate(events):
        if i == len(events) - 1:
            # Bedrock appends its own metrics to the last chunk (message_stop).
            latency = max(1, int((time.monotonic() - started) * 1000))
            data = {
                **data,
                "amazon-bedrock-invocationMetrics": invocation_metrics(turn.usage, latency),
            }
        yield chunk_frame(data)


def make_app(args: argparse.Namespace):
    accepted = ACCEPTED_BETAS | frozenset(args.accept_beta or ())
    versions = frozenset([BEDROCK_VERSION, *(args.accept_version or ())])

    def app(req: Request, record: dict[str, Any]):
        started = time.monotonic()
        request_id = str(uuid.uuid4())
        try:
            record["auth"] = authenticate(req, args)
            match = PATH.match(req.path)
            if req.method != "POST" or not match:
                raise AwsError(
                    404, "UnknownOperationException", f"Unknown operation {req.method} {req.path}"
                )
            model_id = unquote(match.group(1))
            record["model_id"] = model_id
            stream = match.group(2) == "invoke-with-response-stream"
            check_model_id(model_id, args.region)
            body = check_body(req, accepted, versions)
            name = fakekit.scenario_name(req.header, body)
            record["scenario"] = name
            try:
                usage = fakekit.usage_for(req.header, req.body, [b'"cache_control"'])
                plan = fakekit.plan(
                    name,
                    body,
                    req.header,
                    record["n"],
                    usage,
                    response_model(model_id),
                    id_prefix="msg_bdrk_mock_",
                )
            except ApiError as err:
                raise validation(err.message) from None
        except AwsError as err:
            record["scenario"] = "rejected"
            record["error"] = err.detail
            sys.stderr.write(f"bedrock-fake: rejected {req.method} {req.target}: {err.detail}\n")
            return aws_error(err, request_id)

        if plan.kind == "fail" or (plan.kind == "midstream" and not stream):
            assert plan.error is not None
            return aws_error(
                AwsError(
                    plan.error.status, exception_type(plan.error), exception_message(plan.error)
                ),
                request_id,
            )
        turn = plan.turn
        assert turn is not None
        if not stream:
            if plan.kind == "broken":
                return Drop()
            record["usage"] = turn.usage.anthropic()
            if plan.pace:
                time.sleep(plan.pace)
            latency = max(1, int((time.monotonic() - started) * 1000))
            return fakekit.json_response(
                200,
                fakekit.message_json(turn),
                [
                    ("x-amzn-RequestId", request_id),
                    ("X-Amzn-Bedrock-Invocation-Latency", str(latency)),
                    ("X-Amzn-Bedrock-Input-Token-Count", str(turn.usage.input)),
                    ("X-Amzn-Bedrock-Output-Token-Count", str(turn.usage.output)),
                    ("X-Amzn-Bedrock-Cache-Read-Input-Token-Count", str(turn.usage.cache_read)),
                    ("X-Amzn-Bedrock-Cache-Write-Input-Token-Count", str(turn.usage.cache_write)),
                ],
            )
        # A cut stream has reported message_start's usage (output 1) and nothing more.
        record["usage"] = turn.usage.anthropic(output=1 if plan.kind != "reply" else None)
        return Stream(
            200,
            fakekit.paced(stream_chunks(plan, started), plan.pace),
            [
                ("Content-Type", "application/vnd.amazon.eventstream"),
                ("x-amzn-RequestId", request_id),
                ("X-Amzn-Bedrock-Content-Type", "application/json"),
            ],
            abort=plan.kind == "broken",
        )

    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--access-key", required=True)
    parser.add_argument("--secret-key", required=True)
    parser.add_argument("--session-token", help="require this x-amz-security-token (signed)")
    parser.add_argument("--region", default="us-west-2")
    parser.add_argument("--api-key", help="also accept `Authorization: Bearer KEY`")
    parser.add_argument(
        "--accept-beta",
        action="append",
        metavar="BETA",
        help="accept this anthropic_beta value too (repeatable)",
    )
    parser.add_argument(
        "--accept-version",
        action="append",
        metavar="VERSION",
        help=f"accept this anthropic_version besides {BEDROCK_VERSION} (repeatable)",
    )
    parser.add_argument(
        "--max-skew", type=int, default=900, help="seconds x-amz-date may differ from now (0: any)"
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--quiet", action="store_true", help="no access log on stderr")
    args = parser.parse_args(argv)
    return fakekit.serve(make_app(args), args.host, args.port, "bedrock-fake", args.quiet)


if __name__ == "__main__":
    sys.exit(main())
