"""Which fields of published data are secret-like, and the data without them."""

from __future__ import annotations

import re
from typing import Any

# Secret-like field names (see is_secret_field): a word anywhere in the name, or at its end.
_SECRET_WORDS = frozenset(
    {"secret", "secrets", "password", "passwords", "passwd", "passphrase", "authorization", "credential", "credentials"}
)
_SECRET_ENDINGS = (("token",), ("token", "hash"), ("apikey",), ("api", "key"), ("private", "key"), ("privatekey",))
_NAME_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")


def name_words(name: str) -> tuple[str, ...]:
    """A field name's words, lowercased: split at anything not a letter or digit and where
    camelCase changes case (`X-Api-Key`, `apiKey` and `api_key` all give `api`, `key`)."""
    return tuple(word.lower() for word in _NAME_WORD.findall(name))


def is_secret_field(name: str) -> bool:
    """Whether an event's data field of this name is dropped (the README states the rule).

    A name is secret-like when one of its words is secret(s), password(s), passwd,
    passphrase, authorization or credential(s), or when it ends with the word token, the
    words token hash, api key or private key, or the word apikey or privatekey. Case and
    separators do not matter. So `client_secret`, `accessToken`, `X-Api-Key` go, while
    `session`, `tokens_used`, `token_count`, `key`, `public_key` stay.
    """
    words = name_words(name)
    return any(word in _SECRET_WORDS for word in words) or any(
        words[-len(ending) :] == ending for ending in _SECRET_ENDINGS
    )


def redact(value: Any) -> Any:
    """The data of an event never carries a secret-like field (is_secret_field), however
    deep; values are never inspected."""
    if isinstance(value, dict):
        return {k: redact(v) for k, v in value.items() if not is_secret_field(k)}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value
