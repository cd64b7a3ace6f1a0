"""Token verification, the development issuer, JWKS, and the per-caller write limit."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from signpost.shared.auth.principal import Role
from signpost.shared.auth.ratelimit import TokenBucket
from signpost.shared.auth.tokens import DEV_ISSUER, InvalidToken, TokenVerifier, issue_dev_token


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
        ({k: v for k, v in good.items() if k != "org"}, "'org'"),
    ):
        forged = jwt.encode(claims, key, algorithm="RS256")
        with pytest.raises(InvalidToken, match=reason):
            dev_verifier(key_file).verify(forged)


def test_without_a_dev_key_every_token_is_refused(tmp_path: Path, key_file: Path) -> None:
    minted = token(key_file)
    with pytest.raises(InvalidToken, match="signpost token"):
        dev_verifier(tmp_path / "missing.pem").verify(minted)


@pytest.fixture
def jwks_server() -> Iterator[tuple[str, rsa.RSAPrivateKey]]:
    """An identity provider's JWKS document on a free loopback port."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    document = json.dumps({"keys": [{**jwk, "kid": "idp-1", "use": "sig", "alg": "RS256"}]}).encode()

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


def test_the_write_limit_refills_over_time() -> None:
    now = [0.0]
    bucket = TokenBucket(per_minute=2, clock=lambda: now[0])
    assert bucket.take("a") == 0 and bucket.take("a") == 0
    assert bucket.take("a") == pytest.approx(30.0)
    assert bucket.take("b") == 0  # callers are limited separately
    now[0] = 30.0
    assert bucket.take("a") == 0


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "signpost.platform.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_signpost_token_prints_a_token_services_accept(tmp_path: Path) -> None:
    import os

    env = {**os.environ, "SIGNPOST_DATA_DIR": str(tmp_path)}
    env.pop("SIGNPOST_AUTH_ISSUER", None)
    result = run_cli("token", "--role", "practitioner", "--org", "school-a", "--user", "Sam Senco", env=env)
    assert result.returncode == 0, result.stderr
    principal = dev_verifier(tmp_path / "dev-issuer" / "signing-key.pem").verify(result.stdout.strip())
    assert (principal.role, principal.organisation, principal.subject) == (
        Role.PRACTITIONER,
        "school-a",
        "sam-senco",
    )
    refused = run_cli(
        "token", "--role", "admin", "--org", "x", env={**env, "SIGNPOST_AUTH_ISSUER": "https://idp"}
    )
    assert refused.returncode == 2 and "identity provider" in refused.stderr
