"""Bearer tokens: RS256 JWTs from the area's identity provider, or a local development issuer.

A token names its caller in claims: `sub`, `role`, `org` (organisation id), `tenant`
(local area) and optionally `name`. In production the keys come from the issuer's
JWKS URL; in development, without an issuer, from a key file that `signpost token`
and `signpost run` create.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from contextlib import suppress
from functools import lru_cache
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import ValidationError
from signpost.shared.auth.principal import Principal, Role
from signpost.shared.settings import Settings

DEV_ISSUER = "signpost-dev"
ALGORITHMS = ["RS256"]
DEV_TOKEN_LIFETIME_S = 8 * 3600
# The identity provider's clock and ours differ a little; without leeway a fresh token
# can be "not yet valid" for a second or two.
CLOCK_SKEW_S = 30


class InvalidToken(Exception):
    """Why a token is refused, in words safe to show the caller (never the token itself)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class SigningKeysUnavailable(Exception):
    """The issuer's keys could not be fetched: our problem, not the caller's token."""


class NotASigningKey(ValueError):
    """The development key file holds no unencrypted RSA private key in PEM form."""

    def __init__(self) -> None:
        super().__init__("not an unencrypted RSA private key in PEM form")


def ensure_dev_signing_key(path: Path) -> None:
    """Create the development signing key once; racing creators all keep the first one written."""
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mode 0600
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(pem)
        # Unlike os.replace, a link never overwrites: a key replaced after a token was
        # signed with it would leave that token unverifiable.
        with suppress(FileExistsError):
            os.link(temporary, path)
    finally:
        os.unlink(temporary)


def _private_key(path: Path) -> rsa.RSAPrivateKey:
    found = path.stat()
    return _load_private_key(path, found.st_ino, found.st_mtime_ns)


@lru_cache(maxsize=8)
def _load_private_key(path: Path, inode: int, modified_ns: int) -> rsa.RSAPrivateKey:
    # Loading checks the RSA key (tens of ms); inode and mtime in the cache key mean a
    # replaced file is read afresh.
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError):  # TypeError: the key is encrypted
        raise NotASigningKey() from None
    if not isinstance(key, rsa.RSAPrivateKey):  # e.g. an EC key: RS256 signs with RSA only
        raise NotASigningKey()
    return key


def _key_id(public_key: rsa.RSAPublicKey) -> str:
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()[:16]


def issue_dev_token(
    *,
    key_file: Path,
    subject: str,
    role: Role,
    organisation: str,
    tenant: str,
    name: str | None = None,
    audience: str = "signpost",
    issued_at: int | None = None,
    lifetime_s: int = DEV_TOKEN_LIFETIME_S,
) -> str:
    ensure_dev_signing_key(key_file)
    key = _private_key(key_file)
    now = int(time.time()) if issued_at is None else issued_at
    claims: dict[str, Any] = {
        "iss": DEV_ISSUER,
        "sub": subject,
        "aud": audience,
        "iat": now,
        "exp": now + lifetime_s,
        "role": role.value,
        "org": organisation,
        "tenant": tenant,
    }
    if name:
        claims["name"] = name
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": _key_id(key.public_key())})


class TokenVerifier:
    """Checks signature, issuer, audience and expiry, then reads the caller from the claims."""

    def __init__(
        self,
        *,
        issuer: str,
        audience: str,
        jwks_url: str | None = None,
        dev_key_file: Path | None = None,
    ) -> None:
        self._issuer = issuer
        self._audience = audience
        # The key set is cached for `lifespan`, never per key forever: a key the issuer
        # withdraws stops verifying within five minutes.
        self._jwks = jwt.PyJWKClient(jwks_url, lifespan=300, timeout=5) if jwks_url else None
        self._dev_key_file = dev_key_file

    @classmethod
    def from_settings(cls, settings: Settings) -> TokenVerifier:
        if settings.auth_issuer and settings.auth_jwks_url:
            return cls(
                issuer=settings.auth_issuer, audience=settings.auth_audience, jwks_url=settings.auth_jwks_url
            )
        return cls(issuer=DEV_ISSUER, audience=settings.auth_audience, dev_key_file=settings.dev_key_file)

    @property
    def fetches_keys(self) -> bool:
        """True when verifying may fetch the issuer's JWKS over the network (blocking)."""
        return self._jwks is not None

    def verify(self, token: str) -> Principal:
        """The caller the token names; blocks on the network when `fetches_keys`."""
        key = self._verification_key(token)
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=ALGORITHMS,
                issuer=self._issuer,
                audience=self._audience,
                leeway=CLOCK_SKEW_S,
                options={"require": ["exp", "iat", "sub", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise InvalidToken("the token has expired") from None
        except jwt.ImmatureSignatureError:
            raise InvalidToken("the token is not valid yet") from None
        except jwt.InvalidIssuerError:
            raise InvalidToken("the token is from another issuer") from None
        except jwt.InvalidAudienceError:
            raise InvalidToken("the token is not for this audience") from None
        except jwt.MissingRequiredClaimError as exc:
            raise InvalidToken(f"the token has no {exc.claim!r} claim") from None
        except jwt.InvalidAlgorithmError:
            raise InvalidToken("the token's algorithm is not RS256 or does not match its key") from None
        except jwt.InvalidTokenError:
            raise InvalidToken("the token is malformed or its signature does not verify") from None
        return _principal(claims)

    def _verification_key(self, token: str) -> jwt.PyJWK | rsa.RSAPublicKey:
        if self._jwks is not None:
            try:
                # A PyJWK, not its bare key: decode then refuses a token whose `alg`
                # does not match the key's type instead of failing inside the crypto.
                return self._jwks.get_signing_key_from_jwt(token)
            except jwt.InvalidTokenError:
                raise InvalidToken("the token is malformed") from None
            # ValueError: the issuer answered with something other than JSON.
            except (jwt.PyJWKClientConnectionError, jwt.PyJWKSetError, ValueError) as exc:
                raise SigningKeysUnavailable(str(exc)) from None
            except jwt.PyJWKClientError:
                raise InvalidToken("the token's signing key is not among the issuer's keys") from None
        if self._dev_key_file is not None:
            with suppress(FileNotFoundError):
                return _private_key(self._dev_key_file).public_key()
        raise InvalidToken("no development signing key yet: `signpost token` or `signpost run` creates it")


def _principal(claims: dict[str, Any]) -> Principal:
    try:
        return Principal(
            subject=claims["sub"],
            name=claims.get("name"),
            role=claims.get("role"),
            organisation=claims.get("org"),
            tenant=claims.get("tenant"),
        )
    except ValidationError as exc:
        error = exc.errors()[0]
        claim = {"organisation": "org"}.get(str(error["loc"][0]), str(error["loc"][0]))
        raise InvalidToken(f"the token's {claim!r} claim is missing or invalid") from None
