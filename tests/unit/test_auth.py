"""API keys: the Authorization header, token generation and hashing, and the cached lookup."""

from __future__ import annotations

import base64
import hashlib

import pytest

from webhook_service.auth import TOKEN_PREFIX, Authenticator, generate_token, hash_token, token_from_header
from webhook_service.domain.tenants import KeyState, Principal
from webhook_service.errors import UnauthorizedError

TOKEN = "rwk_" + "t" * 43
ACTIVE = Principal(key_id="key-1", organisation="org-1", state=KeyState.ACTIVE)
DEACTIVATED = Principal(key_id="key-2", organisation="org-1", state=KeyState.DEACTIVATED)


class FakeStore:
    """Answers find_principal from a dict of token hashes, counting every read."""

    def __init__(self, principals: dict[str, Principal]) -> None:
        self.principals = {hash_token(token): p for token, p in principals.items()}
        self.reads = 0

    def find_principal(self, token_hash: str) -> Principal | None:
        self.reads += 1
        return self.principals.get(token_hash)


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def authenticator(store: FakeStore, clock: FakeMonotonic, ttl: float = 60.0) -> Authenticator:
    return Authenticator(store, ttl=ttl, clock=clock)


# -- token_from_header ---------------------------------------------------------------------------


@pytest.mark.parametrize("header", [f"Token {TOKEN}", f"token {TOKEN}", f"TOKEN {TOKEN}", f"  Token   {TOKEN}  "])
def test_token_from_header_token_scheme_returns_token(header: str) -> None:
    assert token_from_header(header) == TOKEN


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "Token",
        "Token ",
        "Token a b",
        f"Bearer {TOKEN}",
        f"Basic {TOKEN}",
        TOKEN,
        f"Token\t{TOKEN}",
        "Token " + "t" * 257,
    ],
)
def test_token_from_header_missing_or_malformed_raises_unauthorized(header: str | None) -> None:
    with pytest.raises(UnauthorizedError):
        token_from_header(header)


# -- tokens ---------------------------------------------------------------------------------------


def test_generate_token_any_call_carries_32_random_bytes_after_prefix() -> None:
    token = generate_token()

    body = token.removeprefix(TOKEN_PREFIX)
    assert token.startswith(TOKEN_PREFIX)
    assert len(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))) >= 32


def test_generate_token_two_calls_differ() -> None:
    assert generate_token() != generate_token()


def test_generate_token_any_call_is_accepted_by_token_from_header() -> None:
    token = generate_token()

    assert token_from_header(f"Token {token}") == token


def test_hash_token_known_input_is_sha256_hex() -> None:
    assert hash_token("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_hash_token_generated_token_is_64_lowercase_hex_of_its_sha256() -> None:
    token = generate_token()

    assert hash_token(token) == hashlib.sha256(token.encode()).hexdigest()


# -- Authenticator ------------------------------------------------------------------------------


def test_authenticate_known_token_returns_its_principal() -> None:
    auth = authenticator(FakeStore({TOKEN: ACTIVE}), FakeMonotonic())

    assert auth.authenticate(f"Token {TOKEN}") == ACTIVE


def test_authenticate_second_call_within_ttl_does_not_read_store() -> None:
    store, clock = FakeStore({TOKEN: ACTIVE}), FakeMonotonic()
    auth = authenticator(store, clock)
    auth.authenticate(f"Token {TOKEN}")
    clock.now += 59.9

    assert auth.authenticate(f"Token {TOKEN}") == ACTIVE
    assert store.reads == 1


def test_authenticate_call_after_ttl_reads_store_again() -> None:
    store, clock = FakeStore({TOKEN: ACTIVE}), FakeMonotonic()
    auth = authenticator(store, clock)
    auth.authenticate(f"Token {TOKEN}")
    clock.now += 60.0

    auth.authenticate(f"Token {TOKEN}")

    assert store.reads == 2


def test_authenticate_ttl_above_60_seconds_is_capped_at_60() -> None:
    store, clock = FakeStore({TOKEN: ACTIVE}), FakeMonotonic()
    auth = authenticator(store, clock, ttl=3600)
    auth.authenticate(f"Token {TOKEN}")
    clock.now += 61

    auth.authenticate(f"Token {TOKEN}")

    assert store.reads == 2


def test_authenticate_unknown_token_raises_unauthorized() -> None:
    auth = authenticator(FakeStore({}), FakeMonotonic())

    with pytest.raises(UnauthorizedError, match="Unknown"):
        auth.authenticate(f"Token {TOKEN}")


def test_authenticate_unknown_token_is_not_cached() -> None:
    store = FakeStore({})
    auth = authenticator(store, FakeMonotonic())
    for _ in range(2):
        with pytest.raises(UnauthorizedError):
            auth.authenticate(f"Token {TOKEN}")

    assert store.reads == 2


def test_authenticate_token_created_after_a_miss_is_accepted_at_once() -> None:
    store = FakeStore({})
    auth = authenticator(store, FakeMonotonic())
    with pytest.raises(UnauthorizedError):
        auth.authenticate(f"Token {TOKEN}")
    store.principals[hash_token(TOKEN)] = ACTIVE

    assert auth.authenticate(f"Token {TOKEN}") == ACTIVE


def test_authenticate_deactivated_key_raises_unauthorized() -> None:
    auth = authenticator(FakeStore({TOKEN: DEACTIVATED}), FakeMonotonic())

    with pytest.raises(UnauthorizedError, match="deactivated"):
        auth.authenticate(f"Token {TOKEN}")


def test_authenticate_key_deactivated_after_ttl_is_refused() -> None:
    store, clock = FakeStore({TOKEN: ACTIVE}), FakeMonotonic()
    auth = authenticator(store, clock)
    auth.authenticate(f"Token {TOKEN}")
    store.principals[hash_token(TOKEN)] = DEACTIVATED
    clock.now += 60.0

    with pytest.raises(UnauthorizedError):
        auth.authenticate(f"Token {TOKEN}")


def test_authenticate_malformed_header_does_not_read_store() -> None:
    store = FakeStore({TOKEN: ACTIVE})
    auth = authenticator(store, FakeMonotonic())

    with pytest.raises(UnauthorizedError):
        auth.authenticate(f"Bearer {TOKEN}")
    assert store.reads == 0
