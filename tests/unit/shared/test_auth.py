"""Token verification, the development issuer, JWKS, and the per-caller write limit."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Annotated, Any

import httpx
import jwt
import pytest
import structlog
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fastapi import Depends, FastAPI
from signpost.shared.auth.dependencies import PrincipalDep, require_roles
from signpost.shared.auth.principal import Principal, Role
from signpost.shared.auth.ratelimit import TokenBucket, rate_limited_write
from signpost.shared.auth.tokens import (
    DEV_ISSUER,
    InvalidToken,
    SigningKeysUnavailable,
    TokenVerifier,
    ensure_dev_signing_key,
    issue_dev_token,
)
from signpost.shared.settings import Settings


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    return tmp_path / "dev" / "signing-key.pem"


def token(key_file: Path, **overrides: object) -> str:
    values: dict[str, object] = {
        "key_file": key_file,
        "subject": "u-1",
        "role": Role.AGENCY,
        "organisation": "la-inclusion-service",
        "tenant": "E06000023",
        "name": "Jo",
    }
    values.update(overrides)
    return issue_dev_token(**values)  # type: ignore[arg-type]


def dev_verifier(key_file: Path) -> TokenVerifier:
    return TokenVerifier(issuer=DEV_ISSUER, audience="signpost", dev_key_file=key_file)


def test_a_dev_token_names_its_caller(key_file: Path) -> None:
    principal = dev_verifier(key_file).verify(token(key_file))
    assert (principal.subject, principal.role, principal.organisation, principal.tenant, principal.name) == (
        "u-1",
        Role.AGENCY,
        "la-inclusion-service",
        "E06000023",
        "Jo",
    )
    assert key_file.stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda k: token(k, issued_at=int(time.time()) - 10_000, lifetime_s=60), "expired"),
        (lambda k: token(k, issued_at=int(time.time()) + 600), "not valid yet"),
        (lambda k: token(k, audience="someone-else"), "not for this audience"),
        (lambda k: token(k)[:-4] + "AAAA", "signature does not verify"),
        (lambda k: (token(k), "not.a.jwt")[1], "malformed"),  # a key exists; the token is junk
    ],
)
def test_bad_tokens_are_refused_with_a_reason(key_file: Path, make, reason: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidToken, match=reason):
        dev_verifier(key_file).verify(make(key_file))


def test_claims_must_name_a_known_role_and_an_organisation(key_file: Path) -> None:
    good = jwt.decode(token(key_file), options={"verify_signature": False})
    from signpost.shared.auth.tokens import _private_key

    key = _private_key(key_file)
    for claims, reason in (
        ({**good, "role": "superuser"}, "'role'"),
        ({k: v for k, v in good.items() if k != "role"}, "'role'"),
        ({k: v for k, v in good.items() if k != "tenant"}, "'tenant'"),
        ({k: v for k, v in good.items() if k != "org"}, "'org'"),
    ):
        forged = jwt.encode(claims, key, algorithm="RS256")
        with pytest.raises(InvalidToken, match=reason):
            dev_verifier(key_file).verify(forged)


def test_a_little_clock_skew_is_forgiven(key_file: Path) -> None:
    assert dev_verifier(key_file).verify(token(key_file, issued_at=int(time.time()) + 10)).subject == "u-1"


def test_racing_creators_share_one_key(key_file: Path) -> None:
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(ensure_dev_signing_key, [key_file] * 8))
    first = key_file.read_bytes()
    ensure_dev_signing_key(key_file)
    assert key_file.read_bytes() == first
    assert [path.name for path in key_file.parent.iterdir()] == [key_file.name]  # no temporary files left


def test_without_a_dev_key_every_token_is_refused(tmp_path: Path, key_file: Path) -> None:
    minted = token(key_file)
    with pytest.raises(InvalidToken, match="signpost token"):
        dev_verifier(tmp_path / "missing.pem").verify(minted)


@pytest.fixture
def jwks_server() -> Iterator[tuple[str, rsa.RSAPrivateKey]]:
    """An identity provider's JWKS document on a free loopback port."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    # Identity providers often publish EC keys too.
    ec_jwk = json.loads(
        jwt.algorithms.ECAlgorithm.to_jwk(ec.generate_private_key(ec.SECP256R1()).public_key())
    )
    document = json.dumps(
        {
            "keys": [
                {**jwk, "kid": "idp-1", "use": "sig", "alg": "RS256"},
                {**ec_jwk, "kid": "idp-ec", "use": "sig", "alg": "ES256"},
            ]
        }
    ).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.end_headers()
            self.wfile.write(document)

        def log_message(self, *_: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/jwks", key
    finally:
        server.shutdown()


def test_tokens_from_the_identity_provider_verify_against_its_jwks(
    jwks_server: tuple[str, rsa.RSAPrivateKey],
) -> None:
    url, key = jwks_server
    verifier = TokenVerifier(issuer="https://idp.example", audience="signpost", jwks_url=url)
    now = int(time.time())
    claims = {
        "iss": "https://idp.example",
        "aud": "signpost",
        "sub": "s",
        "iat": now,
        "exp": now + 60,
        "role": "practitioner",
        "org": "school-a",
        "tenant": "E06000023",
    }
    assert (
        verifier.verify(jwt.encode(claims, key, algorithm="RS256", headers={"kid": "idp-1"})).organisation
        == "school-a"
    )
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(InvalidToken):
        verifier.verify(jwt.encode(claims, stranger, algorithm="RS256", headers={"kid": "idp-1"}))
    with pytest.raises(InvalidToken, match="another issuer"):
        verifier.verify(
            jwt.encode(
                {**claims, "iss": "https://evil.example"}, key, algorithm="RS256", headers={"kid": "idp-1"}
            )
        )
    with pytest.raises(InvalidToken, match="not among the issuer's keys"):
        verifier.verify(jwt.encode(claims, key, algorithm="RS256", headers={"kid": "idp-unknown"}))
    with pytest.raises(InvalidToken, match="does not match its key"):
        verifier.verify(jwt.encode(claims, key, algorithm="RS256", headers={"kid": "idp-ec"}))


def free_loopback_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_an_unreachable_identity_provider_is_not_blamed_on_the_token(key_file: Path) -> None:
    verifier = TokenVerifier(
        issuer="https://idp.example",
        audience="signpost",
        jwks_url=f"http://127.0.0.1:{free_loopback_port()}/jwks",
    )
    with pytest.raises(SigningKeysUnavailable):
        verifier.verify(token(key_file))


def test_the_write_limit_refills_over_time() -> None:
    now = [0.0]
    bucket = TokenBucket(per_minute=2, clock=lambda: now[0])
    a, b = ("org", "a"), ("org", "b")
    assert bucket.take(a) == 0 and bucket.take(a) == 0
    assert bucket.take(a) == pytest.approx(30.0)
    assert bucket.take(b) == 0  # callers are limited separately
    now[0] = 30.0
    assert bucket.take(a) == 0


def auth_app(settings: Settings, *, clock: list[float] | None = None) -> FastAPI:
    """The wiring a service has (verifier, tenant, write limiter), around three endpoints."""
    app = FastAPI()
    app.state.runtime = SimpleNamespace(settings=settings)
    app.state.token_verifier = TokenVerifier.from_settings(settings)
    now = clock or [0.0]
    app.state.write_limiter = TokenBucket(per_minute=2, clock=lambda: now[0])

    @app.get("/whoami")
    async def whoami(principal: PrincipalDep) -> dict[str, Any]:
        return {"subject": principal.subject, "logged": structlog.contextvars.get_contextvars()}

    @app.get("/agencies-only")
    async def agencies_only(
        principal: Annotated[Principal, Depends(require_roles(Role.AGENCY, Role.ADMIN))],
    ) -> str:
        return principal.organisation

    @app.post("/writes", dependencies=[Depends(rate_limited_write)])
    async def write() -> str:
        return "ok"

    return app


@pytest.fixture
def settings(key_file: Path) -> Settings:
    return Settings(_env_file=None, auth_dev_key_file=key_file, tenant="E06000023")


async def call(app: FastAPI, method: str, path: str, bearer: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        return await client.request(method, path, headers=headers)


async def test_endpoints_say_who_may_call_and_why_not(settings: Settings, key_file: Path) -> None:
    app = auth_app(settings)
    structlog.contextvars.clear_contextvars()

    missing = await call(app, "GET", "/whoami")
    assert (missing.status_code, missing.headers["www-authenticate"]) == (401, "Bearer")
    assert "Authorization: Bearer" in missing.json()["detail"]

    expired = await call(app, "GET", "/whoami", token(key_file, issued_at=1_000_000, lifetime_s=60))
    assert expired.status_code == 401 and expired.json()["detail"] == "the token has expired"
    assert expired.headers["www-authenticate"] == 'Bearer error="invalid_token"'

    me = await call(app, "GET", "/whoami", token(key_file))
    assert me.status_code == 200
    assert me.json() == {
        "subject": "u-1",
        "logged": {"role": "agency", "organisation": "la-inclusion-service"},  # never the name
    }

    practitioner = token(key_file, role=Role.PRACTITIONER, organisation="school-a")
    refused = await call(app, "GET", "/agencies-only", practitioner)
    assert refused.status_code == 403 and refused.json()["detail"].endswith("agency, admin")
    assert (await call(app, "GET", "/agencies-only", token(key_file))).json() == "la-inclusion-service"

    elsewhere = await call(app, "GET", "/whoami", token(key_file, tenant="E06000024"))
    assert elsewhere.status_code == 403 and "E06000023" in elsewhere.json()["detail"]

    schemes = app.openapi()["components"]["securitySchemes"]
    assert schemes["HTTPBearer"]["scheme"] == "bearer"


async def test_writes_beyond_the_limit_get_429_with_retry_after(settings: Settings, key_file: Path) -> None:
    now = [0.0]
    app = auth_app(settings, clock=now)
    jo, sam = token(key_file), token(key_file, subject="u-2")
    assert [(await call(app, "POST", "/writes", jo)).status_code for _ in range(2)] == [200, 200]
    refused = await call(app, "POST", "/writes", jo)
    assert (refused.status_code, refused.headers["retry-after"]) == (429, "30")
    assert (await call(app, "POST", "/writes", sam)).status_code == 200
    now[0] = 30.0
    assert (await call(app, "POST", "/writes", jo)).status_code == 200


async def test_callers_whose_colon_joined_parts_read_alike_have_their_own_write_limits(
    settings: Settings, key_file: Path
) -> None:
    """Organisation "a" with subject "b:c" and organisation "a:b" with subject "c" shared a bucket."""
    app = auth_app(settings)
    first = token(key_file, organisation="a", subject="b:c")
    second = token(key_file, organisation="a:b", subject="c")
    assert [(await call(app, "POST", "/writes", first)).status_code for _ in range(3)] == [200, 200, 429]
    assert (await call(app, "POST", "/writes", second)).status_code == 200


async def test_an_unreachable_identity_provider_is_503(settings: Settings, key_file: Path) -> None:
    remote = settings.model_copy(
        update={
            "auth_issuer": "https://idp.example",
            "auth_jwks_url": f"http://127.0.0.1:{free_loopback_port()}/jwks",
        }
    )
    answer = await call(auth_app(remote), "GET", "/whoami", token(key_file))
    assert answer.status_code == 503 and "identity provider" in answer.json()["detail"]


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "signpost.platform.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_signpost_token_prints_a_token_services_accept(tmp_path: Path) -> None:
    env = dict(os.environ)  # no SIGNPOST_* in it: tests/unit/conftest.py
    env["SIGNPOST_DATA_DIR"] = str(tmp_path)
    result = run_cli("token", "--role", "practitioner", "--org", "school-a", "--user", "Sam Senco", env=env)
    assert result.returncode == 0, result.stderr
    principal = dev_verifier(tmp_path / "dev-issuer" / "signing-key.pem").verify(result.stdout.strip())
    assert (principal.role, principal.organisation, principal.subject) == (
        Role.PRACTITIONER,
        "school-a",
        "sam-senco",
    )
    identity_provider = {
        "SIGNPOST_AUTH_ISSUER": "https://idp.example",
        "SIGNPOST_AUTH_JWKS_URL": "https://idp.example/jwks",
    }
    refused = run_cli("token", "--role", "admin", "--org", "x", env={**env, **identity_provider})
    assert refused.returncode == 2 and "identity provider" in refused.stderr and not refused.stdout


def test_signpost_token_is_refused_in_production(tmp_path: Path) -> None:
    env = dict(os.environ)  # no SIGNPOST_* in it: tests/unit/conftest.py
    production = {
        "SIGNPOST_ENVIRONMENT": "production",
        "SIGNPOST_DATA_DIR": str(tmp_path),
        "SIGNPOST_KAFKA_BOOTSTRAP": "kafka:9092",
        "SIGNPOST_MONGODB_URL": "mongodb://m/?replicaSet=rs0",
        "SIGNPOST_TOPIC_REPLICATION_FACTOR": "3",
        "SIGNPOST_PSEUDONYM_KEY": "an-areas-own-secret-too-long-to-guess",
        "SIGNPOST_FRONT_DOOR_PHONE": "0117 496 0000",
        "SIGNPOST_AUTH_ISSUER": "https://idp.area.test",
        "SIGNPOST_AUTH_JWKS_URL": "https://idp.area.test/jwks",
    }
    refused = run_cli("token", "--role", "ops", "--org", "la-digital", env={**env, **production})
    assert refused.returncode == 2 and "identity provider" in refused.stderr and not refused.stdout
    assert not (tmp_path / "dev-issuer").exists()
