"""AWS credentials the gateway looks up for a `bedrock` provider: a profile of the shared files,
and the chain (`credentials = "chain"`) through the ECS container endpoint, EC2 IMDSv2 and STS
web identity, each played by a small local server. The strict Bedrock fake recomputes every
SigV4 signature with botocore and requires its session token, so an answer means the request was
signed with exactly the credentials the source handed out.
"""

from __future__ import annotations

import hmac
import json
import sys
import threading
import time
import urllib.parse
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import anthropic
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest, HTTPHeaders
from botocore.credentials import Credentials as BotoCredentials

from tollgate_shared_fixtures import (
    BEDROCK_ACCESS_KEY,
    BEDROCK_REGION,
    BEDROCK_SECRET_KEY,
    ConfiguredGateway,
    FakeUpstream,
    gateway_toml,
)

pytestmark = pytest.mark.timeout(120)

SESSION_TOKEN = "FwoGZXIvYXdzEPfake//session+token=="
CONTAINER_AUTH = "container-auth-token-123"
IMDS_TOKEN = "imds-session-token-abc"
ROLE = "tollgate-role"
MODEL_ID = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"


# The long-lived keys of the profile that assumes the role; only STS accepts them.
BASE_ACCESS_KEY = "AKIDBASEPROFILE00001"
BASE_SECRET_KEY = "base-profile-secret"
ASSUMED_ROLE = "arn:aws:iam::123456789012:role/bedrock-invoke"
EXTERNAL_ID = "tollgate-ext-7"


class _ListedHeaders(SigV4Auth):
    """botocore's SigV4 over exactly the headers the signer listed, as AWS verifies it."""

    def __init__(self, listed: HTTPHeaders):
        super().__init__(BotoCredentials(BASE_ACCESS_KEY, BASE_SECRET_KEY), "sts", BEDROCK_REGION)
        self._listed = listed

    def headers_to_sign(self, request: AWSRequest) -> HTTPHeaders:
        return self._listed


def sts_signature_problem(handler: BaseHTTPRequestHandler, body: bytes) -> str | None:
    """Why STS would refuse the request's signature, or None when botocore computes the same."""
    auth = handler.headers.get("authorization") or ""
    algorithm, _, rest = auth.partition(" ")
    fields = dict(p.strip().split("=", 1) for p in rest.split(",") if "=" in p)
    if algorithm != "AWS4-HMAC-SHA256" or not {"Credential", "SignedHeaders", "Signature"} <= set(fields):
        return f"not a SigV4 Authorization header: {auth!r}"
    key, _date, region, service, _ = fields["Credential"].split("/")
    if (key, region, service) != (BASE_ACCESS_KEY, BEDROCK_REGION, "sts"):
        return f"signed by {key} for {service} in {region}"
    listed = HTTPHeaders()
    for name in fields["SignedHeaders"].split(";"):
        if handler.headers.get(name) is None:
            return f"signed header {name} is missing"
        listed[name] = handler.headers[name]
    if "host" not in listed:
        return "host is not signed"
    received = HTTPHeaders()
    for name, value in handler.headers.items():
        received[name] = value
    request = AWSRequest(
        method="POST", url=f"http://{handler.headers['host']}{handler.path}",
        headers=received, data=body,
    )  # fmt: skip
    request.context["timestamp"] = handler.headers.get("x-amz-date") or ""
    signer = _ListedHeaders(listed)
    expected = signer.signature(
        signer.string_to_sign(request, signer.canonical_request(request)), request
    )
    return None if hmac.compare_digest(expected, fields["Signature"]) else "signature mismatch"


def expiration(seconds: int) -> str:
    at = datetime.now(timezone.utc) + timedelta(seconds=seconds)
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


class CredentialServer:
    """ECS container endpoint, IMDSv2 and STS in one local server; counts what it hands out."""

    def __init__(self) -> None:
        self.secret = BEDROCK_SECRET_KEY
        self.lifetime = 3600
        self.hits: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def reply(self, status: int, body: str, ctype: str = "application/json") -> None:
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def creds(self) -> str:
                return json.dumps(
                    {
                        "Code": "Success",
                        "AccessKeyId": BEDROCK_ACCESS_KEY,
                        "SecretAccessKey": outer.secret,
                        "Token": SESSION_TOKEN,
                        "Expiration": expiration(outer.lifetime),
                    }
                )

            def do_PUT(self) -> None:
                if self.path == "/latest/api/token" and self.headers.get(
                    "x-aws-ec2-metadata-token-ttl-seconds"
                ):
                    outer.hits.append("imds-token")
                    return self.reply(200, IMDS_TOKEN, "text/plain")
                self.reply(400, "")

            def do_GET(self) -> None:
                if self.path == "/ecs/creds":
                    if self.headers.get("authorization") != CONTAINER_AUTH:
                        return self.reply(401, '{"message":"bad token"}')
                    outer.hits.append("ecs")
                    return self.reply(200, self.creds())
                if self.path.startswith("/latest/meta-data/iam/security-credentials/"):
                    if self.headers.get("x-aws-ec2-metadata-token") != IMDS_TOKEN:
                        return self.reply(401, "")
                    role = self.path.rsplit("/", 1)[1]
                    if not role:
                        return self.reply(200, ROLE + "\n", "text/plain")
                    if role != ROLE:
                        return self.reply(404, "")
                    outer.hits.append("imds")
                    return self.reply(200, self.creds())
                self.reply(404, "")

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length)
                form = dict(urllib.parse.parse_qsl(raw.decode()))
                if form.get("Action") == "AssumeRole":
                    return self.assume_role(raw, form)
                if (
                    form.get("Action") != "AssumeRoleWithWebIdentity"
                    or form.get("WebIdentityToken") != "web-identity-jwt"
                ):
                    refusal = "<ErrorResponse><Error><Message>bad token</Message></Error>"
                    return self.reply(400, refusal + "</ErrorResponse>", "text/xml")
                outer.hits.append("sts")
                self.reply(
                    200,
                    "<AssumeRoleWithWebIdentityResponse><AssumeRoleWithWebIdentityResult>"
                    f"<Credentials><AccessKeyId>{BEDROCK_ACCESS_KEY}</AccessKeyId>"
                    f"<SecretAccessKey>{outer.secret}</SecretAccessKey>"
                    f"<SessionToken>{SESSION_TOKEN}</SessionToken>"
                    f"<Expiration>{expiration(outer.lifetime)}</Expiration></Credentials>"
                    "</AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>",
                    "text/xml",
                )

            def assume_role(self, raw: bytes, form: dict[str, str]) -> None:
                # What STS checks: a SigV4 signature for service sts by a known key, then the
                # role's trust (here: one role, one external id).
                problem = sts_signature_problem(self, raw)
                if problem:
                    refusal = f"<ErrorResponse><Error><Code>SignatureDoesNotMatch</Code><Message>{problem}</Message></Error>"
                    return self.reply(403, refusal + "</ErrorResponse>", "text/xml")
                if form.get("RoleArn") != ASSUMED_ROLE or form.get("ExternalId") != EXTERNAL_ID:
                    refusal = "<ErrorResponse><Error><Code>AccessDenied</Code><Message>not authorized to perform sts:AssumeRole</Message></Error>"
                    return self.reply(403, refusal + "</ErrorResponse>", "text/xml")
                outer.hits.append(f"assume-role:{form.get('RoleSessionName')}")
                self.reply(
                    200,
                    "<AssumeRoleResponse><AssumeRoleResult>"
                    f"<Credentials><AccessKeyId>{BEDROCK_ACCESS_KEY}</AccessKeyId>"
                    f"<SecretAccessKey>{outer.secret}</SecretAccessKey>"
                    f"<SessionToken>{SESSION_TOKEN}</SessionToken>"
                    f"<Expiration>{expiration(outer.lifetime)}</Expiration></Credentials>"
                    "</AssumeRoleResult></AssumeRoleResponse>",
                    "text/xml",
                )

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def creds_server():
    server = CredentialServer()
    yield server
    server.close()


@pytest.fixture(scope="module")
def fake_with_token(tmp_path_factory):
    """The Bedrock fake requiring temporary credentials: key, secret and session token."""
    fake = FakeUpstream(
        "bedrock_fake.py",
        [
            "--access-key", BEDROCK_ACCESS_KEY, "--secret-key", BEDROCK_SECRET_KEY,
            "--region", BEDROCK_REGION, "--session-token", SESSION_TOKEN,
        ],  # fmt: skip
        tmp_path_factory.mktemp("bedrock-token-fake"),
    )
    yield fake
    fake.close()


@pytest.fixture
def start_gateway(tmp_path_factory, monkeypatch):
    """Starts a gateway with one bedrock provider (`extra` keys) under `env`."""
    started: list[ConfiguredGateway] = []

    def start(fake: FakeUpstream, env: dict[str, str], **extra: Any) -> ConfiguredGateway:
        home = tmp_path_factory.mktemp("home")
        # No developer's own ~/.aws, no real instance metadata: only what the test sets.
        monkeypatch.setenv("HOME", str(home))
        for name in (
            "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
            "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE", "AWS_WEB_IDENTITY_TOKEN_FILE",
            "AWS_ROLE_ARN", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
            "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_AUTHORIZATION_TOKEN",
        ):  # fmt: skip
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        config = gateway_toml(
            providers=[
                {
                    "name": "bedrock",
                    "kind": "bedrock",
                    "region": BEDROCK_REGION,
                    "endpoint": fake.url,
                    **extra,
                }
            ],
        )
        gw = ConfiguredGateway(config, tmp_path_factory.mktemp("gateway"))
        started.append(gw)
        return gw

    yield start
    for gw in started:
        gw.close()


def ask(gw: ConfiguredGateway) -> anthropic.types.Message:
    key = gw.create_key("alice", "platform", name="aws-credentials")
    with anthropic.Anthropic(
        api_key=key["key"],
        base_url=gw.url,
        max_retries=0,
        timeout=30.0,
        http_client=anthropic.DefaultHttpxClient(trust_env=False),
    ) as client:
        return client.messages.create(
            model=MODEL_ID,
            max_tokens=32,
            messages=[{"role": "user", "content": "[[say:signed]] hi"}],
        )


def assert_signed_with_token(fake: FakeUpstream) -> None:
    seen = fake.model_requests()
    assert seen and all(r["status"] == 200 for r in seen), fake.summary()
    for r in seen:
        headers = {k: v for k, v in r["headers"]}
        assert headers.get("x-amz-security-token") == SESSION_TOKEN, headers
        assert f"Credential={BEDROCK_ACCESS_KEY}/" in headers["authorization"]


def test_named_profile_from_the_shared_files(start_gateway, bedrock_fake, tmp_path):
    credentials = tmp_path / "credentials"
    credentials.write_text(
        "[default]\naws_access_key_id = AKIDWRONGDEFAULT0001\naws_secret_access_key = nope\n\n"
        f"[gateway]\naws_access_key_id = {BEDROCK_ACCESS_KEY}\n"
        f"aws_secret_access_key = {BEDROCK_SECRET_KEY}\n"
    )
    bedrock_fake.clear()
    gw = start_gateway(
        bedrock_fake, {"AWS_SHARED_CREDENTIALS_FILE": str(credentials)}, profile="gateway"
    )
    assert ask(gw).content[0].text == "signed"
    assert [r["status"] for r in bedrock_fake.model_requests()] == [200]


def test_chain_takes_aws_profile(start_gateway, bedrock_fake, tmp_path):
    config = tmp_path / "config"
    config.write_text(
        f"[profile team]\naws_access_key_id = {BEDROCK_ACCESS_KEY}\n"
        f"aws_secret_access_key = {BEDROCK_SECRET_KEY}\n"
    )
    bedrock_fake.clear()
    gw = start_gateway(
        bedrock_fake,
        {"AWS_CONFIG_FILE": str(config), "AWS_PROFILE": "team"},
        credentials="chain",
    )
    assert ask(gw).content[0].text == "signed"


def test_a_missing_profile_stops_the_start(bedrock_fake, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    config = gateway_toml(
        providers=[
            {"name": "bedrock", "kind": "bedrock", "region": BEDROCK_REGION,
             "endpoint": bedrock_fake.url, "profile": "absent"},
        ]  # fmt: skip
    )
    with pytest.raises(BaseException) as exc:
        ConfiguredGateway(config, tmp_path / "gw")
    assert "profile" in str(exc.value) and "absent" in str(exc.value), exc.value


def container_env(creds_server):
    """The environment ECS and EKS give a task: its credentials' address and their token."""
    return {
        "AWS_CONTAINER_CREDENTIALS_FULL_URI": f"{creds_server.url}/ecs/creds",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN": CONTAINER_AUTH,
    }


@pytest.mark.parametrize(
    ("lifetime", "fetches"),
    [
        # An hour of validity: fetched once, used twice.
        (3600, ["ecs"]),
        # Inside the five-minute renewal margin: fetched again before the second use.
        (120, ["ecs", "ecs"]),
    ],
    ids=["cached", "renewed-near-expiry"],
)
def test_container_credentials_are_cached_until_near_expiry(
    lifetime, fetches, start_gateway, fake_with_token, creds_server
):
    creds_server.hits.clear()
    creds_server.lifetime = lifetime
    fake_with_token.clear()
    try:
        gw = start_gateway(fake_with_token, container_env(creds_server), credentials="chain")
        assert ask(gw).content[0].text == "signed"
        assert ask(gw).content[0].text == "signed"
        assert_signed_with_token(fake_with_token)
        assert creds_server.hits == fetches, creds_server.hits
    finally:
        creds_server.lifetime = 3600


def test_instance_metadata_v2(start_gateway, fake_with_token, creds_server):
    creds_server.hits.clear()
    fake_with_token.clear()
    gw = start_gateway(
        fake_with_token,
        {
            "AWS_EC2_METADATA_DISABLED": "false",
            "AWS_EC2_METADATA_SERVICE_ENDPOINT": creds_server.url,
        },
        credentials="chain",
    )
    assert ask(gw).content[0].text == "signed"
    assert creds_server.hits == ["imds-token", "imds"], creds_server.hits
    assert_signed_with_token(fake_with_token)


def test_web_identity(start_gateway, fake_with_token, creds_server, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("web-identity-jwt\n")
    creds_server.hits.clear()
    fake_with_token.clear()
    gw = start_gateway(
        fake_with_token,
        {
            "AWS_WEB_IDENTITY_TOKEN_FILE": str(token_file),
            "AWS_ROLE_ARN": "arn:aws:iam::123456789012:role/tollgate",
            "AWS_ENDPOINT_URL_STS": creds_server.url,
        },
        credentials="chain",
    )
    assert ask(gw).content[0].text == "signed"
    assert creds_server.hits == ["sts"], creds_server.hits
    assert_signed_with_token(fake_with_token)


def test_wrong_credentials_from_the_chain_are_refused(
    start_gateway, fake_with_token, creds_server
):
    creds_server.hits.clear()
    creds_server.secret = "not-the-secret"
    fake_with_token.clear()
    try:
        gw = start_gateway(fake_with_token, container_env(creds_server), credentials="chain")
        with pytest.raises(anthropic.APIStatusError) as exc:
            ask(gw)
    finally:
        creds_server.secret = BEDROCK_SECRET_KEY
    assert exc.value.status_code == 502, exc.value.body
    assert "refused the gateway's credentials" in exc.value.body["error"]["message"]
    seen = fake_with_token.model_requests()
    assert [r["status"] for r in seen] == [403], fake_with_token.summary()


def test_an_unreachable_credential_endpoint_is_a_502(start_gateway, fake_with_token):
    fake_with_token.clear()
    started = time.monotonic()
    gw = start_gateway(
        fake_with_token,
        {"AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://127.0.0.1:9/creds"},
        credentials="chain",
    )
    with pytest.raises(anthropic.APIStatusError) as exc:
        ask(gw)
    assert exc.value.status_code == 502, exc.value.body
    assert "AWS credentials" in exc.value.body["error"]["message"], exc.value.body
    assert fake_with_token.model_requests() == []
    assert time.monotonic() - started < 30


def credential_helper(tmp_path, lifetime: int, exit_code: int = 0) -> tuple[str, Any]:
    """A `credential_process` command (a Python script, as SSO and vault helpers are programs of
    their own) that logs each run and prints temporary credentials valid for `lifetime` s."""
    runs = tmp_path / "runs.log"
    # A path with a space: the command goes through the shell, quoted as in a terminal.
    (tmp_path / "cred helper").mkdir()
    script = tmp_path / "cred helper" / "helper.py"
    script.write_text(
        "import json, sys\n"
        f"open({str(runs)!r}, 'a').write('run\\n')\n"
        f"if {exit_code}:\n"
        "    print('the helper session has expired; sign in again', file=sys.stderr)\n"
        f"    sys.exit({exit_code})\n"
        "print(json.dumps({'Version': 1,"
        f" 'AccessKeyId': {BEDROCK_ACCESS_KEY!r}, 'SecretAccessKey': {BEDROCK_SECRET_KEY!r},"
        f" 'SessionToken': {SESSION_TOKEN!r}, 'Expiration': {expiration(lifetime)!r}}}))\n"
    )
    config = tmp_path / "config"
    config.write_text(f"[profile helper]\ncredential_process = \"{sys.executable}\" '{script}'\n")

    def count() -> int:
        return len(runs.read_text().splitlines()) if runs.exists() else 0

    return str(config), count


@pytest.mark.parametrize(
    ("lifetime", "runs"),
    [(3600, 1), (120, 2)],
    ids=["cached", "renewed-near-expiry"],
)
def test_a_credential_process_profile_signs_with_what_it_prints(
    lifetime, runs, start_gateway, fake_with_token, tmp_path
):
    config, count = credential_helper(tmp_path, lifetime)
    fake_with_token.clear()
    gw = start_gateway(fake_with_token, {"AWS_CONFIG_FILE": config}, profile="helper")
    assert count() == 0, "the helper ran before any request needed it"
    assert ask(gw).content[0].text == "signed"
    assert ask(gw).content[0].text == "signed"
    assert_signed_with_token(fake_with_token)
    assert count() == runs


def test_the_chain_runs_the_credential_process_of_aws_profile(
    start_gateway, fake_with_token, tmp_path
):
    config, count = credential_helper(tmp_path, 3600)
    fake_with_token.clear()
    gw = start_gateway(
        fake_with_token,
        {"AWS_CONFIG_FILE": config, "AWS_PROFILE": "helper"},
        credentials="chain",
    )
    assert ask(gw).content[0].text == "signed"
    assert_signed_with_token(fake_with_token)
    assert count() == 1


def test_a_failing_credential_process_is_a_502_naming_the_profile_and_its_reason(
    start_gateway, fake_with_token, tmp_path
):
    config, count = credential_helper(tmp_path, 3600, exit_code=2)
    fake_with_token.clear()
    gw = start_gateway(fake_with_token, {"AWS_CONFIG_FILE": config}, profile="helper")
    with pytest.raises(anthropic.APIStatusError) as exc:
        ask(gw)
    assert exc.value.status_code == 502, exc.value.body
    message = exc.value.body["error"]["message"]
    assert "profile 'helper'" in message and "exit status: 2" in message, message
    assert "the helper session has expired; sign in again" in message, message
    assert fake_with_token.model_requests() == []
    assert count() == 1


def role_config(tmp_path, **extra: str) -> str:
    """A config file whose profile `bedrock` assumes ASSUMED_ROLE with the keys of `base`."""
    config = tmp_path / "config"
    settings = "".join(f"{k} = {v}\n" for k, v in extra.items())
    config.write_text(
        f"[profile base]\naws_access_key_id = {BASE_ACCESS_KEY}\n"
        f"aws_secret_access_key = {BASE_SECRET_KEY}\n\n"
        f"[profile bedrock]\nrole_arn = {ASSUMED_ROLE}\nsource_profile = base\n"
        f"external_id = {EXTERNAL_ID}\n{settings}"
    )
    return str(config)


@pytest.mark.parametrize(
    ("lifetime", "assumed"),
    [(3600, 1), (120, 2)],
    ids=["cached", "renewed-near-expiry"],
)
def test_a_role_profile_is_assumed_with_its_source_profile_keys(
    lifetime, assumed, start_gateway, fake_with_token, creds_server, tmp_path
):
    creds_server.hits.clear()
    creds_server.lifetime = lifetime
    fake_with_token.clear()
    try:
        gw = start_gateway(
            fake_with_token,
            {
                "AWS_CONFIG_FILE": role_config(tmp_path, role_session_name="gw-bedrock"),
                "AWS_ENDPOINT_URL_STS": creds_server.url,
            },
            profile="bedrock",
        )
        assert creds_server.hits == [], "the role was assumed before any request needed it"
        assert ask(gw).content[0].text == "signed"
        assert ask(gw).content[0].text == "signed"
    finally:
        creds_server.lifetime = 3600
    assert_signed_with_token(fake_with_token)
    assert creds_server.hits == ["assume-role:gw-bedrock"] * assumed, creds_server.hits


def test_a_role_profile_can_take_its_source_keys_from_the_environment(
    start_gateway, fake_with_token, creds_server, tmp_path
):
    creds_server.hits.clear()
    fake_with_token.clear()
    config = tmp_path / "config"
    config.write_text(
        f"[profile bedrock]\nrole_arn = {ASSUMED_ROLE}\ncredential_source = Environment\n"
        f"external_id = {EXTERNAL_ID}\n"
    )
    gw = start_gateway(
        fake_with_token,
        {
            "AWS_CONFIG_FILE": str(config),
            "AWS_ENDPOINT_URL_STS": creds_server.url,
            "AWS_ACCESS_KEY_ID": BASE_ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": BASE_SECRET_KEY,
        },
        profile="bedrock",
    )
    assert ask(gw).content[0].text == "signed"
    assert_signed_with_token(fake_with_token)
    # Without role_session_name the session is named after the gateway and the time.
    assert len(creds_server.hits) == 1, creds_server.hits
    assert creds_server.hits[0].startswith("assume-role:tollgate-"), creds_server.hits


def test_the_chain_assumes_the_role_of_aws_profile(
    start_gateway, fake_with_token, creds_server, tmp_path
):
    creds_server.hits.clear()
    fake_with_token.clear()
    gw = start_gateway(
        fake_with_token,
        {
            "AWS_CONFIG_FILE": role_config(tmp_path),
            "AWS_PROFILE": "bedrock",
            "AWS_ENDPOINT_URL_STS": creds_server.url,
        },
        credentials="chain",
    )
    assert ask(gw).content[0].text == "signed"
    assert_signed_with_token(fake_with_token)
    assert len(creds_server.hits) == 1, creds_server.hits


def test_a_refused_assume_role_is_a_502_with_the_sts_message(
    start_gateway, fake_with_token, creds_server, tmp_path
):
    creds_server.hits.clear()
    fake_with_token.clear()
    config = tmp_path / "config"
    config.write_text(
        f"[profile base]\naws_access_key_id = {BASE_ACCESS_KEY}\n"
        "aws_secret_access_key = not-the-base-secret\n\n"
        f"[profile bedrock]\nrole_arn = {ASSUMED_ROLE}\nsource_profile = base\n"
        f"external_id = {EXTERNAL_ID}\n"
    )
    gw = start_gateway(
        fake_with_token,
        {"AWS_CONFIG_FILE": str(config), "AWS_ENDPOINT_URL_STS": creds_server.url},
        profile="bedrock",
    )
    with pytest.raises(anthropic.APIStatusError) as exc:
        ask(gw)
    assert exc.value.status_code == 502, exc.value.body
    message = exc.value.body["error"]["message"]
    assert "profile 'bedrock'" in message and ASSUMED_ROLE in message, message
    assert "STS refused: signature mismatch" in message, message
    assert "not-the-base-secret" not in message
    assert fake_with_token.model_requests() == []
    assert creds_server.hits == []


def test_a_role_profile_with_mfa_stops_the_start(bedrock_fake, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv(
        "AWS_CONFIG_FILE", role_config(tmp_path, mfa_serial="arn:aws:iam::1:mfa/me")
    )
    config = gateway_toml(
        providers=[
            {"name": "bedrock", "kind": "bedrock", "region": BEDROCK_REGION,
             "endpoint": bedrock_fake.url, "profile": "bedrock"},
        ]  # fmt: skip
    )
    with pytest.raises(BaseException) as exc:
        ConfiguredGateway(config, tmp_path / "gw")
    assert "mfa_serial" in str(exc.value) and "'bedrock'" in str(exc.value), exc.value
