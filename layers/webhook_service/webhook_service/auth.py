"""API keys: token generation, hashing, and the cached lookup that authenticates a request."""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable

from webhook_service.domain.tenants import Principal
from webhook_service.errors import UnauthorizedError
from webhook_service.ports import PrincipalSource

TOKEN_PREFIX = "rwk_"  # noqa: S105 - a prefix, not a secret
_SCHEME = "token"
_MAX_TOKEN_LENGTH = 256


def generate_token() -> str:
    """A new key token: 32 random bytes, URL-safe, with a prefix that secret scanners can match."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def token_from_header(header: str | None) -> str:
    """The token of an `Authorization: Token <token>` header, or UnauthorizedError."""
    if not header:
        raise UnauthorizedError("Authentication required: send `Authorization: Token <key token>`.")
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != _SCHEME or not token or len(token) > _MAX_TOKEN_LENGTH or " " in token:
        raise UnauthorizedError("Malformed Authorization header: expected `Token <key token>`.")
    return token


class Authenticator:
    """Finds the key behind a token, caching positive lookups for at most `ttl` seconds.

    Unknown tokens are not cached, so a key is usable the moment it is created; a
    deactivated key stops working within `ttl` seconds at most.
    """

    def __init__(self, store: PrincipalSource, ttl: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.ttl = min(ttl, 60.0)
        self.clock = clock
        self._cache: dict[str, tuple[float, Principal]] = {}

    def authenticate(self, header: str | None) -> Principal:
        token_hash = hash_token(token_from_header(header))
        now = self.clock()
        cached = self._cache.get(token_hash)
        if cached and cached[0] > now:
            principal = cached[1]
        else:
            found = self.store.find_principal(token_hash)
            if found is None:
                raise UnauthorizedError("Unknown API key.")
            principal = found
            if len(self._cache) > 1024:
                self._cache.clear()
            self._cache[token_hash] = (now + self.ttl, principal)
        if principal.state != "active":
            raise UnauthorizedError("This API key is deactivated.")
        return principal
